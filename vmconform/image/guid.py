"""EFI_GUID values and their on-disk encoding (UEFI 2.11 Appendix A, "GUID and Time Formats").

An EFI_GUID is stored mixed-endian: the first three fields (32, 16 and 16 bits) little-endian, the
remaining eight bytes in the order they are written in the text form. Deterministic GUIDs are
name-based (RFC 4122 version 5) under a fixed vmconform namespace, so a seed string always yields the
same disk, partition and volume identifiers.
"""

from __future__ import annotations

import struct
import uuid

Guid = uuid.UUID
"""A GUID value; `uuid.UUID` already is an immutable, hashable value type."""

VMCONFORM_NAMESPACE = uuid.UUID("6f1c6a52-3b7e-5d1a-9c0e-7a6d2f1b9e40")

ESP_TYPE_GUID = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
"""EFI System Partition (UEFI §5.3.3, table "Defined GPT Partition Entry - Partition Type GUIDs")."""

UNUSED_ENTRY_GUID = uuid.UUID(int=0)

_FIELDS = struct.Struct("<IHH8s")


def guid_to_bytes(guid: Guid) -> bytes:
    """Encode a GUID in the 16-byte EFI_GUID (mixed-endian) layout."""
    raw = guid.bytes  # big-endian, as in the text form
    data1, data2, data3 = struct.unpack(">IHH", raw[:8])
    return _FIELDS.pack(data1, data2, data3, raw[8:])


def guid_from_bytes(data: bytes) -> Guid:
    """Decode a 16-byte EFI_GUID (mixed-endian) into a GUID."""
    if len(data) != 16:
        raise ValueError(f"an EFI_GUID is 16 bytes, got {len(data)}")
    data1, data2, data3, tail = _FIELDS.unpack(data)
    return uuid.UUID(bytes=struct.pack(">IHH", data1, data2, data3) + tail)


def guid_from_seed(seed: str, purpose: str) -> Guid:
    """A deterministic GUID for `purpose` (e.g. "disk", "partition/1") under `seed`."""
    return uuid.uuid5(VMCONFORM_NAMESPACE, f"{seed}\x00{purpose}")
