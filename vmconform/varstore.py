"""Variable stores on the host: reading a VM's UEFI variables out of its store after it powered off.

The EDK2 store (a VARS pflash image) is read two ways: record by record (`find_variable_records`: every
record of one variable, in any state, found by its UTF-16 name; phase 2 of a flow deletes its variable, so
"it reached the file" must look at deleted records too) and through virt-firmware's varstore reader
(`read_variable`: the live variable, as the field's own tool sees it). `is_edk2_store` tells a VARS template
that is really a variable store from any other file (a CODE image given as vars, say).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

__all__ = ["HostVariable", "VarRecord", "find_variable_records", "is_edk2_store", "read_variable"]

# EDK2 variable store (MdeModulePkg/Include/Guid/VariableFormat.h): VARIABLE_HEADER /
# AUTHENTICATED_VARIABLE_HEADER start with StartId 0x55AA, State, Reserved, Attributes.
_START_ID = 0x55AA
_STATES = {0x3F: "added", 0x3E: "added, delete in transition", 0x3D: "deleted", 0x3C: "deleted",
           0x7F: "header valid only"}  # fmt: skip


@dataclass(frozen=True)
class VarRecord:
    """One record of a variable in an EDK2 vars store file."""

    offset: int
    state: int
    attributes: int
    data: bytes

    @property
    def state_name(self) -> str:
        return _STATES.get(self.state, f"state {self.state:#04x}")


def find_variable_records(store: bytes, name: str, guid: UUID) -> tuple[VarRecord, ...]:
    """The records of variable `name`/`guid` in an EDK2 variable store (authenticated or plain format)."""
    needle = name.encode("utf-16-le") + b"\0\0"
    out: list[VarRecord] = []
    pos = store.find(needle)
    while pos >= 0:
        # authenticated header: 60 bytes (StartId, State, Reserved, Attributes, MonotonicCount, TimeStamp,
        # PubKeyIndex, NameSize, DataSize, VendorGuid); plain header: 32 bytes (..., NameSize, DataSize, Guid)
        for header, sizes_at in ((60, 36), (32, 8)):
            start = pos - header
            if start < 0:
                continue
            start_id, state, _, attributes = struct.unpack_from("<HBBI", store, start)
            name_size, data_size = struct.unpack_from("<II", store, start + sizes_at)
            vendor = UUID(bytes_le=store[start + sizes_at + 8 : start + sizes_at + 24])
            if start_id == _START_ID and name_size == len(needle) and vendor == guid:
                data = store[pos + len(needle) : pos + len(needle) + data_size]
                out.append(VarRecord(start, state, attributes, data))
                break
        pos = store.find(needle, pos + 2)
    return tuple(out)


@dataclass(frozen=True)
class HostVariable:
    """A live variable as virt-firmware reads it out of an EDK2 vars file on the host."""

    attributes: int
    data: bytes


def read_variable(vars_path: Path, name: str, guid: UUID) -> HostVariable | str:
    """The live variable `name`/`guid` in the vars file, read with virt-firmware's EDK2 varstore reader; or a
    one-line reason when there is none (not in the store, no store at all, or the reader refused the file)."""
    import contextlib
    import io
    import logging

    from virt.firmware.varstore import edk2  # type: ignore[import-untyped]

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # it logs "varstore not found" and exits on files without a store
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            varlist = edk2.Edk2VarStore(str(vars_path)).get_varlist()
    except SystemExit:
        return f"virt-firmware finds no EDK2 variable store in {vars_path}"
    except Exception as e:  # noqa: BLE001 - a foreign file may break the reader in any way
        return f"virt-firmware cannot read {vars_path}: {type(e).__name__}: {e}"
    finally:
        logger.setLevel(level)
    var = varlist.get(name)
    if var is None or str(var.guid).lower() != str(guid).lower():
        return f"{vars_path} holds no live variable {name} ({guid}) (virt-firmware lists {len(varlist)} others)"
    return HostVariable(int(var.attr), bytes(var.data))


# EFI_FIRMWARE_VOLUME_HEADER: Signature "_FVH" at offset 40; the variable store's FileSystemGuid.
_FVH_SIGNATURE_AT = 40
_NV_FV_GUIDS = (UUID("fff12b8d-7696-4c8b-a985-2747075b4f50"),)  # EFI_SYSTEM_NV_DATA_FV_GUID


_BLANK_PROBE = 64 * 1024  # a blank store is erased flash: EDK2 formats it on first boot (Debian's VARS templates)


def is_edk2_store(path: Path) -> str | None:
    """None when `path` can serve as an EDK2 variable store; else one line saying why it cannot.

    A store is an EDK2 firmware volume of the non-volatile-data type (header signature '_FVH' at offset 40)
    or blank (erased: its first 64 KiB all 0x00 or all 0xFF; EDK2 formats it on first boot, and Debian ships
    its VARS templates that way). Reads at most 64 KiB, however large the file.
    """
    try:
        with path.open("rb") as f:
            head = f.read(_BLANK_PROBE)
    except OSError as e:
        return f"{path}: cannot read ({e.strerror})"
    if len(head) >= 56 and head[_FVH_SIGNATURE_AT : _FVH_SIGNATURE_AT + 4] == b"_FVH":
        guid = UUID(bytes_le=head[16:32])
        if guid in _NV_FV_GUIDS:
            return None
        return f"{path} is a firmware volume of type {guid}, not a variable store (a CODE image given as VARS?)"
    if head and (head.count(0) == len(head) or head.count(0xFF) == len(head)):
        return None
    return f"{path} is no EDK2 variable store (neither a firmware volume with '_FVH' at offset 40 nor blank flash)"
