"""U-Boot's variable store on the host: the file ``\\ubootefi.var`` on the image's ESP, read after the VM ran.

U-Boot built with ``CONFIG_EFI_VARIABLE_FILE_STORE`` keeps its non-volatile UEFI variables in that file, in the
format EBBR's chapter "EFI Variable Storage" defines (U-Boot: ``include/efi_variable.h``, ``struct efi_var_file``
and ``struct efi_var_entry``), every integer little-endian:

* a 24-byte header: Reserved (u64, 0), Magic ``UbEfiVa`` (7 bytes), Revision (1), Length (u32: header and
  entries; the file may be longer), Crc32 (u32: CRC-32 of the entries, bytes 24..Length);
* entries from byte 24 up to Length, each padded with NULs to a multiple of 8 bytes: DataSize (u32),
  Attributes (u32), TimeStamp (u64), VendorGuid (16 bytes), the name in UTF-16LE ending in a NUL, then DataSize
  bytes of data.

The reader trusts none of it: the file is read at most `MAX_FILE_BYTES`, Length must lie inside the bytes read,
the CRC must match (U-Boot itself refuses the file otherwise), each entry's name and data must end before Length,
and every step moves forward by at least 32 bytes, so a file costs time in proportion to its size. Anything
wrong is a `VarFileError` with one line naming the file, the byte and what to do. The file is found through
`vmconform.check`'s read-only GPT and FAT readers under their cost budgets: nothing is mounted, and nothing
outside the image file is read.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from vmconform.varstore import HostVariable

__all__ = [
    "FILE_NAME",
    "MAX_FILE_BYTES",
    "UbootVariable",
    "VarFileError",
    "find_uboot_variable",
    "parse_var_file",
    "read_esp_var_file",
    "read_uboot_variable",
    "uboot_store_evidence",
]

FILE_NAME = "ubootefi.var"  # EFI_VAR_FILE_NAME: in the root folder of the ESP U-Boot booted from
MAGIC = b"UbEfiVa"
REVISION = 1
MAX_FILE_BYTES = 1 << 20
"""The most read of a store file: U-Boot's whole variable buffer (CONFIG_EFI_VAR_BUF_SIZE) is 128 KiB by default."""
_HEADER = struct.Struct("<Q7sBII")  # Reserved, Magic, Revision, Length, Crc32
_ENTRY = struct.Struct("<IIQ16s")  # DataSize, Attributes, TimeStamp, VendorGuid
_ESP_GUID = UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
_MAX_ESPS = 8


class VarFileError(ValueError):
    """A store file (or the image holding it) that cannot be read; the message is one line."""


@dataclass(frozen=True)
class UbootVariable:
    """One entry of a U-Boot variable file."""

    offset: int  # of the entry in the file
    name: str
    guid: UUID
    attributes: int
    timestamp: int
    data: bytes


def parse_var_file(raw: bytes, where: str = FILE_NAME) -> tuple[UbootVariable, ...]:
    """The entries of a U-Boot variable file's bytes; VarFileError (one line naming `where`) when they are not one."""
    if len(raw) > MAX_FILE_BYTES:
        raise VarFileError(f"{where}: {len(raw)} bytes, over the {MAX_FILE_BYTES} bytes a U-Boot store can hold")
    if len(raw) < _HEADER.size:
        raise VarFileError(f"{where}: {len(raw)} bytes, shorter than the {_HEADER.size}-byte header of a U-Boot store")
    reserved, magic, revision, length, crc = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise VarFileError(f"{where}: no U-Boot store (magic {magic!r} at byte 8, expected {MAGIC!r})")
    if revision != REVISION:
        raise VarFileError(f"{where}: file format revision {revision}, only revision {REVISION} is known")
    if reserved:
        raise VarFileError(f"{where}: Reserved is {reserved:#x}, not 0 (U-Boot refuses such a file)")
    if not _HEADER.size <= length <= len(raw):
        raise VarFileError(f"{where}: the header's Length {length} lies outside {_HEADER.size}..{len(raw)} (the file)")
    got = zlib.crc32(raw[_HEADER.size : length])
    if got != crc:
        raise VarFileError(
            f"{where}: Crc32 {crc:#010x} in the header, {got:#010x} over the entries (U-Boot refuses that)"
        )
    out: list[UbootVariable] = []
    pos = _HEADER.size
    while pos < length:
        if pos + _ENTRY.size > length:
            raise VarFileError(f"{where}: the entry at byte {pos} has no room for its {_ENTRY.size}-byte header")
        size, attributes, timestamp, guid = _ENTRY.unpack_from(raw, pos)
        name_at = pos + _ENTRY.size
        end = _name_end(raw, name_at, length)
        if end < 0:
            raise VarFileError(f"{where}: the name of the entry at byte {pos} has no NUL before Length {length}")
        data_at = end + 2
        if size > length - data_at:
            raise VarFileError(f"{where}: the entry at byte {pos} has DataSize {size}, past Length {length}")
        name = raw[name_at:end].decode("utf-16-le", errors="replace")
        out.append(UbootVariable(pos, name, UUID(bytes_le=guid), attributes, timestamp, raw[data_at : data_at + size]))
        pos = (data_at + size + 7) & ~7
    return tuple(out)


def _name_end(raw: bytes, start: int, stop: int) -> int:
    """Where the UTF-16 NUL ending the name at `start` is (a 2-byte aligned 00 00 before `stop`); -1: none."""
    at = raw.find(b"\0\0", start, stop)
    while at >= 0 and (at - start) % 2:
        at = raw.find(b"\0\0", at + 1, stop)
    return at


def find_uboot_variable(raw: bytes, name: str, guid: UUID, where: str = FILE_NAME) -> HostVariable | str:
    """The variable `name`/`guid` in a U-Boot variable file's bytes, or one line saying why there is none."""
    try:
        entries = parse_var_file(raw, where)
    except VarFileError as e:
        return str(e)
    for entry in entries:
        if entry.name == name and entry.guid == guid:
            return HostVariable(entry.attributes, entry.data)
    return f"{where} holds no variable {name} ({guid}) ({len(entries)} others)"


def read_esp_var_file(image: Path, sector_size: int | None = None) -> tuple[bytes, str] | None:
    """The bytes of ``\\ubootefi.var`` on the image's first ESP that has one, and where it was found
    ("partition N"); None when no ESP of the image has the file. VarFileError (one line) when the image cannot
    be read that far: not a disk, no GPT, a cost budget spent, a file over `MAX_FILE_BYTES`."""
    from vmconform.check.bpb import Bpb
    from vmconform.check.budget import Budget, BudgetExceeded, Limits
    from vmconform.check.fatfs import FatFs
    from vmconform.check.gpt import GptHeader, detect_sector_size, entries_of
    from vmconform.check.source import DiskError, open_image

    try:
        with open_image(image) as (src, _fmt):
            ss = sector_size or detect_sector_size(src)[0]
            last = max(src.size // ss - 1, 1)
            entries = None
            for lba in (1, last):
                header = GptHeader.read(src, lba, ss)
                if header is None or header.problems(ss, lba):
                    continue
                array = header.read_array(src, ss)
                if header.array_ok(array) and array is not None:
                    entries = entries_of(array, header.entry_size)
                    break
            if entries is None:
                raise VarFileError(f"{image}: no valid GPT (primary or backup), so no ESP to look for {FILE_NAME} on")
            budget = Budget(Limits.for_allocated(src.allocated))
            esps = [e for e in entries if e.type_guid == _ESP_GUID][:_MAX_ESPS]
            for esp in esps:
                bpb = Bpb.parse(src.read(esp.first * ss, 512))
                if bpb is None or bpb.problems():
                    continue
                fs = FatFs(src, esp.first * ss, bpb, budget)
                found, _stored = fs.lookup((FILE_NAME,))
                if found is None or found.is_dir:
                    continue
                where = f"{image}: \\{FILE_NAME} on partition {esp.index}"
                if found.size > MAX_FILE_BYTES:
                    raise VarFileError(f"{where} is {found.size} bytes, over the {MAX_FILE_BYTES} a U-Boot store holds")
                data, problem = fs.read_file(found, MAX_FILE_BYTES)
                if data is None:
                    raise VarFileError(f"{where} cannot be read: {problem}")
                return bytes(data), f"partition {esp.index}"
            return None
    except DiskError as e:
        raise VarFileError(str(e)) from None
    except BudgetExceeded as e:
        raise VarFileError(f"{image}: looking for {FILE_NAME}: {e.evidence}") from None


def read_uboot_variable(image: Path, name: str, guid: UUID, sector_size: int | None = None) -> HostVariable | str:
    """The variable `name`/`guid` in the image's ``\\ubootefi.var``, or one line saying why there is none (no such
    file on its ESP, the file or image unreadable, not in the file), as `vmconform.varstore.read_variable` does."""
    try:
        found = read_esp_var_file(image, sector_size)
    except VarFileError as e:
        return f"the host could not read {FILE_NAME} from the image: {e}"
    if found is None:
        return f"the host found no \\{FILE_NAME} on the image's ESP"
    raw, where = found
    return find_uboot_variable(raw, name, guid, f"\\{FILE_NAME} ({where})")


def uboot_store_evidence(image: Path, name: str, guid: UUID, sector_size: int | None = None) -> str:
    """One line for a verdict's evidence: what the host found of variable `name` in the image's ``\\ubootefi.var``
    (its attributes and data, or why it is absent)."""
    var = read_uboot_variable(image, name, guid, sector_size)
    if isinstance(var, str):
        return var if var.startswith("the host") else f"the host read the image's ESP: {var}"
    return (
        f"the host found {name} in \\{FILE_NAME} on the image's ESP: attributes {var.attributes:#x}, data {var.data!r}"
    )
