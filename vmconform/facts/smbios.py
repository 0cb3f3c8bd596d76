"""SMBIOS 3 as the probe dumps it: the 64-bit entry point and the structure table.

Implements DMTF DSP0134 (SMBIOS 3.x) §5.2.2 "SMBIOS 3.0 (64-bit) Entry Point" and §6.1 structure layout
(type, length, handle, formatted area, then a string set ending in a double NUL), with the string fields
of types 0 (BIOS), 1 (System) and 4 (Processor) that a report names.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["SmbiosError", "Smbios3EntryPoint", "SmbiosStructure", "parse_entry_point", "parse_structures"]


class SmbiosError(ValueError):
    """Not a valid SMBIOS 3 entry point or structure table."""


@dataclass(frozen=True)
class Smbios3EntryPoint:
    version: tuple[int, int, int]  # major, minor, docrev
    revision: int
    max_size: int
    table_address: int
    checksum_ok: bool


def parse_entry_point(data: bytes) -> Smbios3EntryPoint:
    if len(data) < 24 or data[:5] != b"_SM3_":
        raise SmbiosError("not an SMBIOS 3 entry point (anchor '_SM3_')")
    length = data[6]
    major, minor, docrev, revision = data[7], data[8], data[9], data[10]
    max_size, address = struct.unpack_from("<IQ", data, 12)
    return Smbios3EntryPoint((major, minor, docrev), revision, max_size, address, sum(data[:length]) % 256 == 0)


@dataclass(frozen=True)
class SmbiosStructure:
    type: int
    handle: int
    formatted: bytes  # the whole formatted area, header included
    strings: tuple[str, ...]

    def string(self, offset: int) -> str | None:
        """The string whose 1-based number is the byte at `offset` of the formatted area (None if 0/absent)."""
        if offset >= len(self.formatted) or not self.formatted[offset]:
            return None
        number = self.formatted[offset]
        return self.strings[number - 1] if number <= len(self.strings) else None


def parse_structures(data: bytes) -> tuple[SmbiosStructure, ...]:
    """The structures up to the end-of-table structure (type 127) or the end of `data`."""
    out: list[SmbiosStructure] = []
    pos = 0
    while pos + 4 <= len(data):
        kind, length, handle = struct.unpack_from("<BBH", data, pos)
        if length < 4 or pos + length > len(data):
            raise SmbiosError(f"structure at {pos:#x} has length {length}")
        end = data.find(b"\0\0", pos + length)
        if end < 0:
            raise SmbiosError(f"structure at {pos:#x} has no string-set terminator")
        raw = data[pos + length : end]
        strings = tuple(s.decode("ascii", "replace") for s in raw.split(b"\0")) if raw else ()
        out.append(SmbiosStructure(kind, handle, data[pos : pos + length], strings))
        pos = end + 2
        if kind == 127:
            break
    return tuple(out)
