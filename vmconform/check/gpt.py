"""GPT structures for `vmconform check` (UEFI 2.11 §5.3): headers, entry arrays, the sector size.

Every read is bounded (an entry array of at most 16 MiB) and every parse tolerates short data.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass

from vmconform.check.source import Source

MAX_ARRAY_BYTES = 16 << 20


def guid(raw: bytes) -> uuid.UUID:
    """A mixed-endian GUID as stored by UEFI (short input padded with zeros)."""
    return uuid.UUID(bytes_le=raw[:16].ljust(16, b"\0"))


@dataclass(frozen=True)
class GptHeader:
    lba: int
    signature: bytes
    revision: int
    header_size: int
    header_crc: int
    crc_ok: bool
    reserved: int
    my_lba: int
    alternate_lba: int
    first_usable: int
    last_usable: int
    disk_guid: uuid.UUID
    entry_lba: int
    n_entries: int
    entry_size: int
    array_crc: int

    @classmethod
    def read(cls, src: Source, lba: int, ss: int) -> GptHeader | None:
        block = src.read(lba * ss, ss)
        if len(block) < 92:
            return None
        fields = struct.unpack_from("<8sIIII QQQQ 16s QIII", block)
        size = fields[2]
        crc_ok = (
            92 <= size <= len(block)
            and (zlib.crc32(block[:16] + b"\0\0\0\0" + block[20:size]) & 0xFFFFFFFF) == fields[3]
        )
        return cls(
            lba,
            fields[0],
            fields[1],
            size,
            fields[3],
            crc_ok,
            fields[4],
            fields[5],
            fields[6],
            fields[7],
            fields[8],
            guid(fields[9]),
            fields[10],
            fields[11],
            fields[12],
            fields[13],
        )

    def problems(self, ss: int, my_lba: int) -> list[str]:
        if self.signature != b"EFI PART":
            return [f"no 'EFI PART' signature (found {self.signature!r})"]
        out = []
        if self.revision != 0x00010000:
            out.append(f"Revision {self.revision:#010x} (want 0x00010000)")
        if not 92 <= self.header_size <= ss:
            out.append(f"HeaderSize {self.header_size} outside 92..{ss}")
        elif not self.crc_ok:
            out.append(f"HeaderCRC32 {self.header_crc:#010x} does not match the header")
        if self.reserved:
            out.append(f"Reserved field {self.reserved:#x} (must be 0)")
        if self.my_lba != my_lba:
            out.append(f"MyLBA {self.my_lba} (want {my_lba})")
        return out

    @property
    def array_bytes(self) -> int:
        return self.n_entries * self.entry_size

    def array_problems(self) -> list[str]:
        """What keeps the entry array from being read at all."""
        out = []
        size = self.entry_size
        if size < 128 or size % 128 or (size // 128) & (size // 128 - 1):
            out.append(f"SizeOfPartitionEntry {size} is not 128 * 2^n")
        if self.n_entries == 0:
            out.append("NumberOfPartitionEntries is 0")
        if self.array_bytes > MAX_ARRAY_BYTES:
            out.append(f"an entry array of {self.array_bytes} bytes (over {MAX_ARRAY_BYTES >> 20} MiB) is not read")
        return out

    def layout_problems(self, ss: int, last_lba: int, primary: bool) -> list[str]:
        out = self.array_problems()
        blocks = -(-max(self.array_bytes, 1) // ss)
        reserve = -(-16384 // ss)
        if not self.first_usable <= self.last_usable < last_lba:
            out.append(
                f"usable LBAs {self.first_usable}..{self.last_usable} invalid on a disk whose last LBA is {last_lba}"
            )
        if primary:
            if not 2 <= self.entry_lba or self.entry_lba + blocks > self.first_usable:
                out.append(
                    f"entry array at LBA {self.entry_lba} ({blocks} blocks) not between LBA 2 and "
                    f"FirstUsableLBA {self.first_usable}"
                )
            if self.first_usable < 2 + reserve:
                out.append(f"FirstUsableLBA {self.first_usable} leaves less than 16 KiB for the entry array")
        else:
            if self.entry_lba <= self.last_usable or self.entry_lba + blocks > self.my_lba:
                out.append(
                    f"entry array at LBA {self.entry_lba} ({blocks} blocks) not between LastUsableLBA "
                    f"{self.last_usable} and the header"
                )
            if self.my_lba - self.last_usable - 1 < reserve:
                out.append(f"LastUsableLBA {self.last_usable} leaves less than 16 KiB for the backup entry array")
        return out

    def read_array(self, src: Source, ss: int) -> bytes | None:
        if self.array_problems():
            return None
        data = src.read(self.entry_lba * ss, self.array_bytes)
        return data if len(data) == self.array_bytes else None

    def array_ok(self, array: bytes | None) -> bool:
        return array is not None and zlib.crc32(array) & 0xFFFFFFFF == self.array_crc


_UNUSED = bytes(16)


@dataclass(frozen=True)
class GptEntry:
    """A used partition entry. The type and the name stay raw until asked for: an array may hold 131,072."""

    index: int
    type_raw: bytes
    first: int
    last: int
    attributes: int
    name_raw: bytes

    @property
    def type_guid(self) -> uuid.UUID:
        return guid(self.type_raw)

    @property
    def name(self) -> str:
        return self.name_raw.decode("utf-16-le", errors="replace").split("\0", 1)[0]


def entries_of(array: bytes, size: int) -> list[GptEntry]:
    """The used entries (type GUID not zero) of an entry array of `size`-byte entries."""
    out: list[GptEntry] = []
    if size < 128:
        return out
    for i in range(len(array) // size):
        at = i * size
        type_raw = array[at : at + 16]
        if type_raw == _UNUSED:
            continue
        first, last, attrs = struct.unpack_from("<QQQ", array, at + 32)
        out.append(GptEntry(i + 1, type_raw, first, last, attrs, array[at + 56 : at + 128]))
    return out


def detect_sector_size(src: Source) -> tuple[int, str]:
    """The logical block size: where a GPT header is, else the FAT boot sector's, else 512."""
    for ss in (512, 4096, 1024, 2048):
        if src.read(ss, 8) == b"EFI PART":
            return ss, f"GPT header at byte {ss}"
    for ss in (512, 4096, 1024, 2048):
        if src.size >= 2 * ss and src.read((src.size // ss - 1) * ss, 8) == b"EFI PART":
            return ss, f"backup GPT header in the last {ss}-byte block"
    bps = struct.unpack("<H", src.read(11, 2).ljust(2, b"\0"))[0]
    if src.read(510, 2) == b"\x55\xaa" and bps in (1024, 2048, 4096) and src.read(0, 1) in (b"\xeb", b"\xe9"):
        return bps, "BytsPerSec of the FAT boot sector at LBA 0"
    return 512, "no GPT found; assumed"
