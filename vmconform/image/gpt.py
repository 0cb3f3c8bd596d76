"""GUID Partition Table: header, partition entries, entry array and disk geometry (UEFI 2.11 §5.3,
"GUID Partition Table (GPT) Disk Layout": §5.3.1 layout, §5.3.2 header, §5.3.3 partition entries).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from vmconform.image.guid import UNUSED_ENTRY_GUID, Guid, guid_to_bytes

GPT_SIGNATURE = b"EFI PART"
GPT_REVISION_1_0 = 0x00010000
GPT_HEADER_SIZE = 92
GPT_ENTRY_SIZE = 128
GPT_DEFAULT_ENTRIES = 128
GPT_MIN_ARRAY_BYTES = 16384
"""§5.3.2: at least 16,384 bytes are reserved for each partition entry array."""
PARTITION_NAME_BYTES = 72

_HEADER = struct.Struct("<8sIIII QQQQ 16s QIII")
_ENTRY = struct.Struct("<16s16sQQQ72s")

# Partition attribute bits (§5.3.3, table "Defined GPT Partition Entry - Attributes").
ATTR_REQUIRED_PARTITION = 1 << 0
ATTR_NO_BLOCK_IO_PROTOCOL = 1 << 1
ATTR_LEGACY_BIOS_BOOTABLE = 1 << 2


def crc32(data: bytes) -> int:
    """The CRC32 the GPT uses (the ISO 3309 / zlib polynomial)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class GptGeometry:
    """Where the GPT structures sit on a disk of `total_lbas` blocks (§5.3.1)."""

    block_size: int
    total_lbas: int
    number_of_partition_entries: int
    size_of_partition_entry: int

    def __post_init__(self) -> None:
        size = self.size_of_partition_entry
        if size < GPT_ENTRY_SIZE or size & (size - 1):
            raise ValueError(f"SizeOfPartitionEntry must be 128 * 2^n, got {size}")
        if self.number_of_partition_entries < 1:
            raise ValueError("NumberOfPartitionEntries must be at least 1")
        if self.first_usable_lba > self.last_usable_lba:
            raise ValueError(
                f"a disk of {self.total_lbas} blocks of {self.block_size} bytes has no room for the two "
                "GPTs and any partition; make the disk larger"
            )

    @property
    def last_lba(self) -> int:
        return self.total_lbas - 1

    @property
    def array_blocks(self) -> int:
        """Blocks reserved for one partition entry array (at least 16 KiB, §5.3.2)."""
        array_bytes = self.number_of_partition_entries * self.size_of_partition_entry
        return _ceil_div(max(array_bytes, GPT_MIN_ARRAY_BYTES), self.block_size)

    @property
    def primary_header_lba(self) -> int:
        return 1

    @property
    def primary_array_lba(self) -> int:
        return 2

    @property
    def first_usable_lba(self) -> int:
        return self.primary_array_lba + self.array_blocks

    @property
    def backup_header_lba(self) -> int:
        return self.last_lba

    @property
    def backup_array_lba(self) -> int:
        return self.last_lba - self.array_blocks

    @property
    def last_usable_lba(self) -> int:
        return self.backup_array_lba - 1


@dataclass(frozen=True)
class GptPartitionEntry:
    """One GPT Partition Entry (§5.3.3). EndingLBA is inclusive."""

    partition_type_guid: Guid
    unique_partition_guid: Guid
    starting_lba: int
    ending_lba: int
    attributes: int = 0
    partition_name: str = ""

    def to_bytes(self, entry_size: int = GPT_ENTRY_SIZE) -> bytes:
        name = self.partition_name.encode("utf-16-le")
        if len(name) > PARTITION_NAME_BYTES:
            raise ValueError(
                f"partition name {self.partition_name!r} is {len(name) // 2} UTF-16 code units; "
                f"the GPT holds at most {PARTITION_NAME_BYTES // 2}; use a shorter name"
            )
        packed = _ENTRY.pack(
            guid_to_bytes(self.partition_type_guid),
            guid_to_bytes(self.unique_partition_guid),
            self.starting_lba,
            self.ending_lba,
            self.attributes,
            name,
        )
        return packed + bytes(entry_size - len(packed))


UNUSED_ENTRY = GptPartitionEntry(UNUSED_ENTRY_GUID, UNUSED_ENTRY_GUID, 0, 0)


def partition_entry_array(
    entries: Sequence[GptPartitionEntry], number_of_entries: int, entry_size: int = GPT_ENTRY_SIZE
) -> bytes:
    """The packed array: `entries` first, then unused (all-zero) entries up to `number_of_entries`."""
    if len(entries) > number_of_entries:
        raise ValueError(
            f"{len(entries)} partitions do not fit in a GPT of {number_of_entries} entries; "
            "raise the number of partition entries"
        )
    used = b"".join(entry.to_bytes(entry_size) for entry in entries)
    return used + bytes(entry_size * (number_of_entries - len(entries)))


@dataclass(frozen=True)
class GptHeader:
    """The GPT Header (§5.3.2). `header_crc32=None` means "compute it" when serialising."""

    my_lba: int
    alternate_lba: int
    first_usable_lba: int
    last_usable_lba: int
    disk_guid: Guid
    partition_entry_lba: int
    number_of_partition_entries: int
    size_of_partition_entry: int
    partition_entry_array_crc32: int
    signature: bytes = GPT_SIGNATURE
    revision: int = GPT_REVISION_1_0
    header_size: int = GPT_HEADER_SIZE
    header_crc32: int | None = None
    reserved: int = 0

    def _pack(self, header_crc32: int) -> bytes:
        return _HEADER.pack(
            self.signature,
            self.revision,
            self.header_size,
            header_crc32,
            self.reserved,
            self.my_lba,
            self.alternate_lba,
            self.first_usable_lba,
            self.last_usable_lba,
            guid_to_bytes(self.disk_guid),
            self.partition_entry_lba,
            self.number_of_partition_entries,
            self.size_of_partition_entry,
            self.partition_entry_array_crc32,
        )

    def computed_header_crc32(self) -> int:
        """CRC32 over HeaderSize bytes with the HeaderCRC32 field zeroed."""
        body = self._pack(0).ljust(self.header_size, b"\x00")[: self.header_size]
        return crc32(body)

    def to_bytes(self, block_size: int) -> bytes:
        """The whole logical block holding this header (zeros after HeaderSize)."""
        if not GPT_HEADER_SIZE <= self.header_size <= block_size:
            raise ValueError(f"HeaderSize must be in [92, {block_size}], got {self.header_size}")
        crc = self.computed_header_crc32() if self.header_crc32 is None else self.header_crc32
        return self._pack(crc).ljust(block_size, b"\x00")

    def as_backup(self, backup_array_lba: int) -> GptHeader:
        """The backup header: MyLBA and AlternateLBA swapped, pointing at the backup entry array."""
        return replace(
            self,
            my_lba=self.alternate_lba,
            alternate_lba=self.my_lba,
            partition_entry_lba=backup_array_lba,
            header_crc32=None,
        )

    @classmethod
    def primary(cls, geometry: GptGeometry, disk_guid: Guid, entry_array: bytes) -> GptHeader:
        """The primary header at LBA 1 for `geometry`, with the CRC of `entry_array`."""
        return cls(
            my_lba=geometry.primary_header_lba,
            alternate_lba=geometry.backup_header_lba,
            first_usable_lba=geometry.first_usable_lba,
            last_usable_lba=geometry.last_usable_lba,
            disk_guid=disk_guid,
            partition_entry_lba=geometry.primary_array_lba,
            number_of_partition_entries=geometry.number_of_partition_entries,
            size_of_partition_entry=geometry.size_of_partition_entry,
            partition_entry_array_crc32=crc32(entry_array),
        )
