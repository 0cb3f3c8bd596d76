"""Whole-disk layouts: a `DiskSpec` (sector size, size, partitions, seed) planned into LBAs and
rendered into a `SparseImage` with a protective MBR, primary and backup GPTs and FAT ESPs; or, for the
images the spec forbids but UEFI firmware reads anyway, a legacy MBR (UEFI §5.2.1) or one FAT volume
on the whole disk (a "superfloppy").

Everything variable (disk GUID, partition GUIDs, volume serials, timestamps) derives from the seed,
so one spec always renders to identical bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from vmconform.image.fat import EspFile, FatVolume, FatVolumeSpec, write_fat
from vmconform.image.fat_entries import FatTimestamp
from vmconform.image.fat_geometry import FatGeometry, plan_fat
from vmconform.image.gpt import (
    GPT_DEFAULT_ENTRIES,
    GPT_ENTRY_SIZE,
    UNUSED_ENTRY,
    GptGeometry,
    GptHeader,
    GptPartitionEntry,
    partition_entry_array,
)
from vmconform.image.guid import ESP_TYPE_GUID, Guid, guid_from_seed
from vmconform.image.mbr import MbrPartitionRecord, ProtectiveMbr, lba_to_chs
from vmconform.image.sparse import SparseImage

MiB = 1 << 20
DEFAULT_DISK_SIZE = 64 * MiB
PARTITION_ALIGNMENT = 1 * MiB
SUPPORTED_SECTOR_SIZES = (512, 1024, 2048, 4096)
LINUX_FILESYSTEM_TYPE_GUID = Guid("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
BASIC_DATA_TYPE_GUID = Guid("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
LINUX_SWAP_TYPE_GUID = Guid("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F")
LINUX_ROOT_AARCH64_TYPE_GUID = Guid("B921B045-1DF0-41C3-AF44-4C6F280D3FAE")
"""Discoverable Partitions Specification: root partition for arm64."""
LINUX_ROOT_ARM_TYPE_GUID = Guid("69DAD710-2CE4-4E3C-B16C-21A1D49ABED3")
Partitioning = Literal["gpt", "mbr", "none"]

# Legacy MBR partition types (OSType) used when `DiskSpec.partitioning == "mbr"`.
MBR_EFI_SYSTEM = 0xEF
_MBR_TYPES = {
    ESP_TYPE_GUID: MBR_EFI_SYSTEM,
    BASIC_DATA_TYPE_GUID: 0x07,
    LINUX_SWAP_TYPE_GUID: 0x82,
}


@dataclass(frozen=True)
class EspPartition:
    """A FAT-formatted partition, by default an EFI System Partition holding the disk's files.

    start_lba None: the next 1 MiB boundary after the previous partition. size_bytes None: up to the
    last 1 MiB boundary of the usable space (only sensible for the last partition). files None: the
    `DiskSpec.files`. GUIDs and the volume serial None: derived from the seed. entry_index None: the
    next GPT entry (1-based); give a larger one to leave unused entries before it.
    """

    files: tuple[EspFile, ...] | None = None
    size_bytes: int | None = None
    start_lba: int | None = None
    fat: FatVolumeSpec = field(default_factory=FatVolumeSpec)
    partition_type_guid: Guid = ESP_TYPE_GUID
    unique_partition_guid: Guid | None = None
    name: str = "EFI System Partition"
    attributes: int = 0
    volume_serial: int | None = None
    entry_index: int | None = None

    def __post_init__(self) -> None:
        if self.files is not None:
            object.__setattr__(self, "files", tuple(self.files))


@dataclass(frozen=True)
class DataPartition:
    """An unformatted partition (contents left zero), e.g. to put the ESP second or last."""

    size_bytes: int | None = None
    start_lba: int | None = None
    partition_type_guid: Guid = LINUX_FILESYSTEM_TYPE_GUID
    unique_partition_guid: Guid | None = None
    name: str = "Linux filesystem"
    attributes: int = 0
    entry_index: int | None = None


Partition = EspPartition | DataPartition


@dataclass(frozen=True)
class DiskSpec:
    """A GPT disk. The defaults give the reference image: 64 MiB, 512-byte sectors, one ESP at LBA 2048.

    partitioning "mbr": a legacy MBR (at most 4 partitions, 32-bit LBAs; the ESP gets OSType 0xEF) and
    no GPT. "none": exactly one EspPartition, formatted over the whole disk from LBA 0.
    """

    files: tuple[EspFile, ...] = ()
    seed: str = "vmconform"
    size_bytes: int = DEFAULT_DISK_SIZE
    sector_size: int = 512
    partitions: tuple[Partition, ...] = (EspPartition(),)
    number_of_partition_entries: int = GPT_DEFAULT_ENTRIES
    size_of_partition_entry: int = GPT_ENTRY_SIZE
    disk_guid: Guid | None = None
    partitioning: Partitioning = "gpt"

    def __post_init__(self) -> None:
        # Accept lists for convenience; keep the value immutable and hashable.
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "partitions", tuple(self.partitions))


@dataclass(frozen=True)
class PlacedPartition:
    """A partition with its final LBAs, GPT entry and (for an ESP) FAT geometry.

    `number` is 1-based: the GPT entry (or MBR record) the partition occupies.
    """

    number: int
    spec: Partition
    entry: GptPartitionEntry
    fat_geometry: FatGeometry | None

    @property
    def start_lba(self) -> int:
        return self.entry.starting_lba

    @property
    def end_lba(self) -> int:
        return self.entry.ending_lba

    @property
    def size_lbas(self) -> int:
        return self.entry.ending_lba - self.entry.starting_lba + 1


@dataclass(frozen=True)
class DiskLayout:
    """A `DiskSpec` resolved to LBAs: the GPT geometry, the disk GUID and each partition's place.

    `gpt` is None for the "mbr" and "none" partitionings.
    """

    spec: DiskSpec
    gpt: GptGeometry | None
    disk_guid: Guid
    partitions: tuple[PlacedPartition, ...]

    @property
    def sector_size(self) -> int:
        return self.spec.sector_size

    def offset(self, lba: int) -> int:
        return lba * self.spec.sector_size

    @property
    def last_lba(self) -> int:
        return self.spec.size_bytes // self.spec.sector_size - 1

    @property
    def esp(self) -> PlacedPartition:
        """The first partition with the ESP type GUID."""
        for placed in self.partitions:
            if placed.entry.partition_type_guid == ESP_TYPE_GUID:
                return placed
        raise LookupError("this layout has no partition with the ESP type GUID")


@dataclass(frozen=True)
class BuiltDisk:
    """The rendered image with what went where (for defects and checks that need exact locations)."""

    image: SparseImage
    layout: DiskLayout
    volumes: tuple[FatVolume | None, ...]
    """One per partition, None for a `DataPartition`."""

    def volume(self, placed: PlacedPartition) -> FatVolume:
        """The FAT volume of `placed` (ValueError for a data partition)."""
        volume = self.volumes[self.layout.partitions.index(placed)]
        if volume is None:
            raise ValueError(f"partition {placed.number} is not FAT-formatted")
        return volume


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _seeded_u32(seed: str, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{purpose}".encode()).digest()[:4], "little")


def _usable_range(spec: DiskSpec) -> tuple[GptGeometry | None, int, int]:
    """The GPT geometry (or None) and the first and last LBAs partitions may use."""
    ss = spec.sector_size
    total = spec.size_bytes // ss
    if spec.partitioning == "gpt":
        gpt = GptGeometry(ss, total, spec.number_of_partition_entries, spec.size_of_partition_entry)
        return gpt, gpt.first_usable_lba, gpt.last_usable_lba
    if spec.partitioning == "mbr":
        return None, 1, min(total - 1, 0xFFFFFFFF)
    if spec.partitioning == "none":
        return None, 0, total - 1
    raise ValueError(f"partitioning must be 'gpt', 'mbr' or 'none', got {spec.partitioning!r}")


def plan_disk(spec: DiskSpec) -> DiskLayout:
    """Resolve `spec` to LBAs; raises ValueError (saying what to change) if it cannot be laid out."""
    ss = spec.sector_size
    if ss not in SUPPORTED_SECTOR_SIZES:
        raise ValueError(f"sector_size must be one of {SUPPORTED_SECTOR_SIZES}, got {ss}")
    if spec.size_bytes <= 0 or spec.size_bytes % ss:
        raise ValueError(f"size_bytes ({spec.size_bytes}) must be a positive multiple of the sector size {ss}")
    if not spec.partitions:
        raise ValueError("a DiskSpec needs at least one partition; use the default (one EspPartition)")
    gpt, first_usable, last_usable = _usable_range(spec)
    if spec.partitioning == "none":
        if len(spec.partitions) != 1 or not isinstance(spec.partitions[0], EspPartition):
            raise ValueError("partitioning 'none' formats the whole disk: give exactly one EspPartition")
        whole = spec.partitions[0]
        if whole.start_lba not in (None, 0) or whole.size_bytes not in (None, spec.size_bytes):
            raise ValueError("partitioning 'none': the EspPartition covers the whole disk; leave start and size unset")
    if spec.partitioning == "mbr" and len(spec.partitions) > 4:
        raise ValueError(f"a legacy MBR holds 4 partitions, got {len(spec.partitions)}; use partitioning 'gpt'")
    align = max(1, PARTITION_ALIGNMENT // ss)
    next_free = first_usable
    max_entries = spec.number_of_partition_entries if spec.partitioning == "gpt" else 4
    used_indices: set[int] = set()
    next_index = 1
    placed: list[PlacedPartition] = []
    for position, part in enumerate(spec.partitions, start=1):
        number = part.entry_index if part.entry_index is not None else next_index
        if not 1 <= number <= max_entries or number in used_indices:
            raise ValueError(
                f"partition {position}: entry_index {number} is taken or outside 1..{max_entries}; "
                "give each partition a distinct entry_index in range"
            )
        used_indices.add(number)
        next_index = number + 1
        if spec.partitioning == "none":
            start, end = 0, last_usable
        else:
            start = part.start_lba if part.start_lba is not None else _align_up(next_free, align)
            if part.size_bytes is None:
                if position != len(spec.partitions):
                    raise ValueError(
                        f"partition {number} has no size_bytes, but only the last partition can take the rest "
                        "of the disk; give it a size_bytes"
                    )
                end = (last_usable + 1) // align * align - 1
                if end < start:
                    end = last_usable
            else:
                if part.size_bytes <= 0 or part.size_bytes % ss:
                    raise ValueError(
                        f"partition {number}: size_bytes ({part.size_bytes}) must be a positive multiple of {ss}"
                    )
                end = start + part.size_bytes // ss - 1
        if start < first_usable or end > last_usable or end < start:
            raise ValueError(
                f"partition {number} (LBA {start}..{end}) does not fit in the usable LBAs "
                f"{first_usable}..{last_usable} of a {spec.size_bytes}-byte disk; "
                "enlarge the disk or shrink/move the partition"
            )
        for other in placed:
            if start <= other.end_lba and other.start_lba <= end:
                raise ValueError(
                    f"partition {number} (LBA {start}..{end}) overlaps partition {other.number} "
                    f"(LBA {other.start_lba}..{other.end_lba}); move or shrink one of them"
                )
        unique = part.unique_partition_guid
        if unique is None:
            unique = guid_from_seed(spec.seed, f"partition/{number}")
        entry = GptPartitionEntry(part.partition_type_guid, unique, start, end, part.attributes, part.name)
        entry.to_bytes(spec.size_of_partition_entry)  # validates the name length early
        geometry = None
        if isinstance(part, EspPartition):
            fat = part.fat
            try:
                geometry = plan_fat(
                    end - start + 1,
                    ss,
                    fat.sectors_per_cluster,
                    fat.reserved_sectors,
                    fat.num_fats,
                    fat_type=fat.fat_type,
                    root_entry_count=fat.root_entry_count,
                    min_clusters=fat.min_clusters,
                )
            except ValueError as err:
                raise ValueError(f"partition {number} ({part.name}): {err}") from None
        placed.append(PlacedPartition(number, part, entry, geometry))
        next_free = end + 1
    if len(placed) > max_entries:
        raise ValueError(
            f"{len(placed)} partitions need more than the {max_entries} GPT entries; raise number_of_partition_entries"
        )
    if spec.files and not any(isinstance(p, EspPartition) and p.files is None for p in spec.partitions):
        raise ValueError(
            "DiskSpec.files would be dropped: every EspPartition has its own files (or there is none); "
            "move the files into an EspPartition or leave one EspPartition's files as None"
        )
    disk_guid = spec.disk_guid if spec.disk_guid is not None else guid_from_seed(spec.seed, "disk")
    return DiskLayout(spec, gpt, disk_guid, tuple(placed))


def _legacy_mbr(layout: DiskLayout) -> ProtectiveMbr:
    """A legacy MBR (UEFI §5.2.1) with one record per partition, in entry order."""
    records = [MbrPartitionRecord(0, 0, 0)] * 4
    for placed in layout.partitions:
        os_type = _MBR_TYPES.get(placed.entry.partition_type_guid, 0x83)
        records[placed.number - 1] = MbrPartitionRecord(
            os_type=os_type,
            starting_lba=placed.start_lba,
            size_in_lba=placed.size_lbas,
            starting_chs=lba_to_chs(placed.start_lba),
            ending_chs=lba_to_chs(placed.end_lba),
        )
    signature = _seeded_u32(layout.spec.seed, "mbr-disk-signature")
    return ProtectiveMbr(records=tuple(records), unique_mbr_disk_signature=signature)


def render_disk(layout: DiskLayout) -> BuiltDisk:
    """Write the layout's MBR, GPTs and file systems into a new sparse image."""
    spec, gpt, ss = layout.spec, layout.gpt, layout.sector_size
    image = SparseImage(spec.size_bytes)

    if gpt is not None:
        image.write(0, ProtectiveMbr.for_disk(gpt.last_lba).to_bytes(ss))
        entries = [UNUSED_ENTRY] * max((p.number for p in layout.partitions), default=0)
        for placed in layout.partitions:
            entries[placed.number - 1] = placed.entry
        array = partition_entry_array(entries, gpt.number_of_partition_entries, gpt.size_of_partition_entry)
        primary = GptHeader.primary(gpt, layout.disk_guid, array)
        backup = primary.as_backup(gpt.backup_array_lba)
        image.write(layout.offset(gpt.primary_header_lba), primary.to_bytes(ss))
        image.write(layout.offset(gpt.primary_array_lba), array)
        image.write(layout.offset(gpt.backup_array_lba), array)
        image.write(layout.offset(gpt.backup_header_lba), backup.to_bytes(ss))
    elif spec.partitioning == "mbr":
        image.write(0, _legacy_mbr(layout).to_bytes(ss))

    timestamp = FatTimestamp.from_seed(spec.seed)
    volumes: list[FatVolume | None] = []
    for placed in layout.partitions:
        part = placed.spec
        if not isinstance(part, EspPartition) or placed.fat_geometry is None:
            volumes.append(None)
            continue
        files = spec.files if part.files is None else part.files
        serial = part.volume_serial
        if serial is None:
            serial = _seeded_u32(spec.seed, f"volume-serial/{placed.number}")
        hidden = placed.start_lba if part.fat.hidden_sectors is None else part.fat.hidden_sectors
        try:
            volume = write_fat(
                image,
                layout.offset(placed.start_lba),
                placed.fat_geometry,
                files,
                spec=part.fat,
                hidden_sectors=hidden,
                volume_id=serial,
                timestamp=timestamp,
            )
        except ValueError as err:
            raise ValueError(f"partition {placed.number} ({part.name}): {err}") from None
        volumes.append(volume)
    return BuiltDisk(image, layout, tuple(volumes))


def build_disk(spec: DiskSpec) -> SparseImage:
    """Render `spec` to a sparse image (the reference image with the default spec)."""
    return render_disk(plan_disk(spec)).image
