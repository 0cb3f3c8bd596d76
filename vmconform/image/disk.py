"""Whole-disk layouts: a `DiskSpec` (sector size, size, partitions, seed) planned into LBAs and
rendered into a `SparseImage` with a protective MBR, primary and backup GPTs and FAT32 ESPs.

Everything variable (disk GUID, partition GUIDs, volume serials, timestamps) derives from the seed,
so one spec always renders to identical bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from vmconform.image.fat import (
    EspFile,
    Fat32Geometry,
    Fat32Volume,
    FatTimestamp,
    FatVolumeSpec,
    plan_fat32,
    write_fat32,
)
from vmconform.image.gpt import (
    GPT_DEFAULT_ENTRIES,
    GPT_ENTRY_SIZE,
    GptGeometry,
    GptHeader,
    GptPartitionEntry,
    partition_entry_array,
)
from vmconform.image.guid import ESP_TYPE_GUID, Guid, guid_from_seed
from vmconform.image.mbr import ProtectiveMbr
from vmconform.image.sparse import SparseImage

MiB = 1 << 20
DEFAULT_DISK_SIZE = 64 * MiB
PARTITION_ALIGNMENT = 1 * MiB
SUPPORTED_SECTOR_SIZES = (512, 1024, 2048, 4096)
LINUX_FILESYSTEM_TYPE_GUID = Guid("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
BASIC_DATA_TYPE_GUID = Guid("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")


@dataclass(frozen=True)
class EspPartition:
    """A FAT32-formatted partition, by default an EFI System Partition holding the disk's files.

    start_lba None: the next 1 MiB boundary after the previous partition. size_bytes None: up to the
    last 1 MiB boundary of the usable space (only sensible for the last partition). files None: the
    `DiskSpec.files`. GUIDs and the volume serial None: derived from the seed.
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


Partition = EspPartition | DataPartition


@dataclass(frozen=True)
class DiskSpec:
    """A GPT disk. The defaults give the reference image: 64 MiB, 512-byte sectors, one ESP at LBA 2048."""

    files: tuple[EspFile, ...] = ()
    seed: str = "vmconform"
    size_bytes: int = DEFAULT_DISK_SIZE
    sector_size: int = 512
    partitions: tuple[Partition, ...] = (EspPartition(),)
    number_of_partition_entries: int = GPT_DEFAULT_ENTRIES
    size_of_partition_entry: int = GPT_ENTRY_SIZE
    disk_guid: Guid | None = None

    def __post_init__(self) -> None:
        # Accept lists for convenience; keep the value immutable and hashable.
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "partitions", tuple(self.partitions))


@dataclass(frozen=True)
class PlacedPartition:
    """A partition with its final LBAs, GPT entry and (for an ESP) FAT geometry. `number` is 1-based."""

    number: int
    spec: Partition
    entry: GptPartitionEntry
    fat_geometry: Fat32Geometry | None

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
    """A `DiskSpec` resolved to LBAs: the GPT geometry, the disk GUID and each partition's place."""

    spec: DiskSpec
    gpt: GptGeometry
    disk_guid: Guid
    partitions: tuple[PlacedPartition, ...]

    @property
    def sector_size(self) -> int:
        return self.spec.sector_size

    def offset(self, lba: int) -> int:
        return lba * self.spec.sector_size

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
    volumes: tuple[Fat32Volume | None, ...]
    """One per partition, None for a `DataPartition`."""


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _seeded_u32(seed: str, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{purpose}".encode()).digest()[:4], "little")


def plan_disk(spec: DiskSpec) -> DiskLayout:
    """Resolve `spec` to LBAs; raises ValueError (saying what to change) if it cannot be laid out."""
    ss = spec.sector_size
    if ss not in SUPPORTED_SECTOR_SIZES:
        raise ValueError(f"sector_size must be one of {SUPPORTED_SECTOR_SIZES}, got {ss}")
    if spec.size_bytes <= 0 or spec.size_bytes % ss:
        raise ValueError(
            f"size_bytes ({spec.size_bytes}) must be a positive multiple of the sector size {ss}"
        )
    if not spec.partitions:
        raise ValueError("a DiskSpec needs at least one partition; use the default (one EspPartition)")
    gpt = GptGeometry(
        ss, spec.size_bytes // ss, spec.number_of_partition_entries, spec.size_of_partition_entry
    )
    align = max(1, PARTITION_ALIGNMENT // ss)
    next_free = gpt.first_usable_lba
    placed: list[PlacedPartition] = []
    for number, part in enumerate(spec.partitions, start=1):
        start = part.start_lba if part.start_lba is not None else _align_up(next_free, align)
        if part.size_bytes is None:
            if number != len(spec.partitions):
                raise ValueError(
                    f"partition {number} has no size_bytes, but only the last partition can take the rest "
                    "of the disk; give it a size_bytes"
                )
            end = (gpt.last_usable_lba + 1) // align * align - 1
            if end < start:
                end = gpt.last_usable_lba
        else:
            if part.size_bytes <= 0 or part.size_bytes % ss:
                raise ValueError(
                    f"partition {number}: size_bytes ({part.size_bytes}) must be a positive multiple of {ss}"
                )
            end = start + part.size_bytes // ss - 1
        if start < gpt.first_usable_lba or end > gpt.last_usable_lba or end < start:
            raise ValueError(
                f"partition {number} (LBA {start}..{end}) does not fit in the usable LBAs "
                f"{gpt.first_usable_lba}..{gpt.last_usable_lba} of a {spec.size_bytes}-byte disk; "
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
            try:
                geometry = plan_fat32(
                    end - start + 1,
                    ss,
                    part.fat.sectors_per_cluster,
                    part.fat.reserved_sectors,
                    part.fat.num_fats,
                )
            except ValueError as err:
                raise ValueError(f"partition {number} ({part.name}): {err}") from None
        placed.append(PlacedPartition(number, part, entry, geometry))
        next_free = end + 1
    if len(placed) > spec.number_of_partition_entries:
        raise ValueError(
            f"{len(placed)} partitions need more than the {spec.number_of_partition_entries} GPT entries; "
            "raise number_of_partition_entries"
        )
    if spec.files and not any(isinstance(p, EspPartition) and p.files is None for p in spec.partitions):
        raise ValueError(
            "DiskSpec.files would be dropped: every EspPartition has its own files (or there is none); "
            "move the files into an EspPartition or leave one EspPartition's files as None"
        )
    disk_guid = spec.disk_guid if spec.disk_guid is not None else guid_from_seed(spec.seed, "disk")
    return DiskLayout(spec, gpt, disk_guid, tuple(placed))


def render_disk(layout: DiskLayout) -> BuiltDisk:
    """Write the layout's MBR, GPTs and file systems into a new sparse image."""
    spec, gpt, ss = layout.spec, layout.gpt, layout.sector_size
    image = SparseImage(spec.size_bytes)

    image.write(0, ProtectiveMbr.for_disk(gpt.last_lba).to_bytes(ss))
    array = partition_entry_array(
        [p.entry for p in layout.partitions], gpt.number_of_partition_entries, gpt.size_of_partition_entry
    )
    primary = GptHeader.primary(gpt, layout.disk_guid, array)
    backup = primary.as_backup(gpt.backup_array_lba)
    image.write(layout.offset(gpt.primary_header_lba), primary.to_bytes(ss))
    image.write(layout.offset(gpt.primary_array_lba), array)
    image.write(layout.offset(gpt.backup_array_lba), array)
    image.write(layout.offset(gpt.backup_header_lba), backup.to_bytes(ss))

    timestamp = FatTimestamp.from_seed(spec.seed)
    volumes: list[Fat32Volume | None] = []
    for placed in layout.partitions:
        part = placed.spec
        if not isinstance(part, EspPartition) or placed.fat_geometry is None:
            volumes.append(None)
            continue
        files = spec.files if part.files is None else part.files
        serial = part.volume_serial
        if serial is None:
            serial = _seeded_u32(spec.seed, f"volume-serial/{placed.number}")
        try:
            volume = write_fat32(
                image,
                layout.offset(placed.start_lba),
                placed.fat_geometry,
                files,
                spec=part.fat,
                hidden_sectors=placed.start_lba,
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
