"""The protective MBR at LBA 0 of a GPT disk (UEFI 2.11 §5.2.3 "Protective MBR", with the legacy MBR
and partition record layout of §5.2.1, tables 5.1 and 5.2).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MBR_SIZE = 512
MBR_SIGNATURE = 0xAA55
GPT_PROTECTIVE_OS_TYPE = 0xEE
_RECORDS_OFFSET = 446
_RECORD = struct.Struct("<B3sB3sII")  # BootIndicator, StartingCHS, OSType, EndingCHS, StartingLBA, SizeInLBA

# The CHS geometry every tool assumes for LBA -> CHS translation.
_HEADS = 255
_SECTORS_PER_TRACK = 63
CHS_NOT_REPRESENTABLE = b"\xff\xff\xff"


def lba_to_chs(lba: int) -> bytes:
    """The 3-byte CHS address of `lba` (head, sector | cylinder high bits, cylinder low), or FF FF FF."""
    cylinder, rest = divmod(lba, _HEADS * _SECTORS_PER_TRACK)
    head, sector0 = divmod(rest, _SECTORS_PER_TRACK)
    if cylinder > 1023:
        return CHS_NOT_REPRESENTABLE
    return bytes((head, (sector0 + 1) | ((cylinder >> 8) << 6), cylinder & 0xFF))


@dataclass(frozen=True)
class MbrPartitionRecord:
    """One 16-byte legacy MBR partition record."""

    os_type: int
    starting_lba: int
    size_in_lba: int
    boot_indicator: int = 0
    starting_chs: bytes = b"\x00\x00\x00"
    ending_chs: bytes = b"\x00\x00\x00"

    def to_bytes(self) -> bytes:
        return _RECORD.pack(
            self.boot_indicator,
            self.starting_chs,
            self.os_type,
            self.ending_chs,
            self.starting_lba,
            self.size_in_lba,
        )


@dataclass(frozen=True)
class ProtectiveMbr:
    """LBA 0: boot code, four partition records and the 0xAA55 signature."""

    records: tuple[MbrPartitionRecord, ...]
    boot_code: bytes = b""
    unique_mbr_disk_signature: int = 0
    signature: int = MBR_SIGNATURE

    @classmethod
    def for_disk(cls, last_lba: int) -> ProtectiveMbr:
        """The §5.2.3 protective MBR: one 0xEE record from LBA 1 covering the disk (capped at 2^32-1)."""
        record = MbrPartitionRecord(
            os_type=GPT_PROTECTIVE_OS_TYPE,
            starting_lba=1,
            size_in_lba=min(last_lba, 0xFFFFFFFF),
            starting_chs=lba_to_chs(1),
            ending_chs=lba_to_chs(last_lba),
        )
        return cls(records=(record,))

    def to_bytes(self, block_size: int = MBR_SIZE) -> bytes:
        """The whole logical block 0 (the MBR in its first 512 bytes, zeros after)."""
        if len(self.records) > 4:
            raise ValueError(f"an MBR holds at most 4 partition records, got {len(self.records)}")
        if len(self.boot_code) > 440:
            raise ValueError(f"MBR boot code is at most 440 bytes, got {len(self.boot_code)}")
        out = bytearray(max(block_size, MBR_SIZE))
        out[: len(self.boot_code)] = self.boot_code
        struct.pack_into("<I", out, 440, self.unique_mbr_disk_signature)
        for i, record in enumerate(self.records):
            out[_RECORDS_OFFSET + 16 * i : _RECORDS_OFFSET + 16 * (i + 1)] = record.to_bytes()
        struct.pack_into("<H", out, 510, self.signature)
        return bytes(out)
