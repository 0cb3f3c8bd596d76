"""Named defects: how a malformed image differs from its layout (UEFI 2.11 §5.2.3 protective MBR, §5.3
GPT, §3.5.1.1 removable-media boot file; fatgen103 for the FAT defects).

A defect changes the image in up to three ways, applied in this order:
`spec` (a `DiskSpec` field: a type GUID, an attribute bit, the partitioning, the FAT type),
`payload` (what is stored at the boot file's path: resolved by the case catalogue, which knows the
probe), and `edit` (byte edits after `render_disk`, located through `BuiltDisk.layout` and the FAT
volumes' allocations). Edits that touch the GPT recompute every CRC they do not mean to break.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from vmconform.image.disk import (
    BASIC_DATA_TYPE_GUID,
    MBR_EFI_SYSTEM,
    BuiltDisk,
    DataPartition,
    DiskSpec,
    EspPartition,
    Partition,
    PlacedPartition,
)
from vmconform.image.fat import FatVolume
from vmconform.image.fat_entries import ATTR_DIRECTORY, DirectoryEntry, FatTimestamp
from vmconform.image.gpt import ATTR_NO_BLOCK_IO_PROTOCOL, GptPartitionEntry
from vmconform.image.guid import ESP_TYPE_GUID, guid_from_seed
from vmconform.image.mbr import GPT_PROTECTIVE_OS_TYPE, MbrPartitionRecord, ProtectiveMbr, lba_to_chs
from vmconform.image.sparse import SparseImage

MiB = 1 << 20

Payload = Literal["probe", "none", "empty", "pe-x64", "pe-other-arm", "pe-truncated", "garbage"]
"""What the boot file holds: the probe; no boot file at all; 0 bytes; the probe relabelled as an x86-64
image; the probe as a PE of the other Arm architecture (PE32 0x01C2 at the AArch64 path, PE32+ 0xAA64
at the AArch32 path); the probe cut inside its section; random bytes."""


Edit = Callable[[BuiltDisk, tuple[str, ...]], SparseImage]
"""(the rendered disk, the boot file's path components) -> the edited image (the same object or a new one)."""


@dataclass(frozen=True)
class Defect:
    name: str
    summary: str
    spec: Callable[[DiskSpec], DiskSpec] | None = None
    payload: Payload = "probe"
    edit: Edit | None = None


# ---------------------------------------------------------------------------------------------------
# Spec transforms


def _map_esp(spec: DiskSpec, change: Callable[[EspPartition], Partition]) -> DiskSpec:
    parts = tuple(
        change(p) if isinstance(p, EspPartition) and p.partition_type_guid == ESP_TYPE_GUID else p
        for p in spec.partitions
    )
    return replace(spec, partitions=parts)


def _no_block_io(spec: DiskSpec) -> DiskSpec:
    return _map_esp(spec, lambda p: replace(p, attributes=p.attributes | ATTR_NO_BLOCK_IO_PROTOCOL))


def _basic_data_guid(spec: DiskSpec) -> DiskSpec:
    return _map_esp(spec, lambda p: replace(p, partition_type_guid=BASIC_DATA_TYPE_GUID, name="Basic data partition"))


def _fat16(spec: DiskSpec) -> DiskSpec:
    return _map_esp(spec, lambda p: replace(p, fat=replace(p.fat, fat_type=16)))


def _few_clusters(spec: DiskSpec) -> DiskSpec:
    """A 16 MiB ESP formatted FAT32 anyway: 32,000-odd clusters (what `mkfs.vfat -F32` does on small disks)."""
    return _map_esp(spec, lambda p: replace(p, size_bytes=16 * MiB, fat=replace(p.fat, min_clusters=0)))


def _mbr_only(spec: DiskSpec) -> DiskSpec:
    return replace(spec, partitioning="mbr")


def _superfloppy(spec: DiskSpec) -> DiskSpec:
    return replace(spec, partitioning="none", partitions=(EspPartition(),))


# ---------------------------------------------------------------------------------------------------
# GPT edits


def _gpt(built: BuiltDisk) -> tuple[int, int, int]:
    """(block size, primary header LBA, backup header LBA) of a GPT disk."""
    gpt = built.layout.gpt
    if gpt is None:
        raise ValueError("this defect needs a GPT disk; apply it to a layout with partitioning 'gpt'")
    return built.layout.sector_size, gpt.primary_header_lba, gpt.backup_header_lba


def _header_crc(block: bytes) -> int:
    size = struct.unpack_from("<I", block, 12)[0]
    return zlib.crc32(block[:16] + b"\0\0\0\0" + block[20:size]) & 0xFFFFFFFF


def _flip_header_crc(image: SparseImage, lba: int, ss: int) -> None:
    offset = lba * ss + 16
    (crc,) = struct.unpack("<I", image.read(offset, 4))
    image.write(offset, struct.pack("<I", crc ^ 0x00000001))


def primary_crc(built: BuiltDisk, boot_path: tuple[str, ...] = ()) -> SparseImage:
    ss, primary, _backup = _gpt(built)
    _flip_header_crc(built.image, primary, ss)
    return built.image


def backup_crc(built: BuiltDisk, boot_path: tuple[str, ...] = ()) -> SparseImage:
    ss, _primary, backup = _gpt(built)
    _flip_header_crc(built.image, backup, ss)
    return built.image


def both_crc(built: BuiltDisk, boot_path: tuple[str, ...] = ()) -> SparseImage:
    ss, primary, backup = _gpt(built)
    _flip_header_crc(built.image, primary, ss)
    _flip_header_crc(built.image, backup, ss)
    return built.image


def array_crc(built: BuiltDisk, boot_path: tuple[str, ...] = ()) -> SparseImage:
    """The primary header's PartitionEntryArrayCRC32 is wrong; its HeaderCRC32 is recomputed (valid)."""
    ss, primary, _backup = _gpt(built)
    block = bytearray(built.image.read(primary * ss, ss))
    (array_crc32,) = struct.unpack_from("<I", block, 88)
    struct.pack_into("<I", block, 88, array_crc32 ^ 0x00000001)
    struct.pack_into("<I", block, 16, _header_crc(bytes(block)))
    built.image.write(primary * ss, bytes(block))
    return built.image


def rewrite_entries(built: BuiltDisk, entries: dict[int, GptPartitionEntry]) -> None:
    """Replace GPT entries (1-based index -> entry) in both arrays; fix both array and header CRCs."""
    ss, primary, backup = _gpt(built)
    image = built.image
    for header_lba in (primary, backup):
        block = bytearray(image.read(header_lba * ss, ss))
        array_lba, count, size = struct.unpack_from("<QII", block, 72)
        array = bytearray(image.read(array_lba * ss, count * size))
        for index, entry in entries.items():
            array[(index - 1) * size : index * size] = entry.to_bytes(size)
        image.write(array_lba * ss, bytes(array))
        struct.pack_into("<I", block, 88, zlib.crc32(array) & 0xFFFFFFFF)
        struct.pack_into("<I", block, 16, _header_crc(bytes(block)))
        image.write(header_lba * ss, bytes(block))


def _esp_placed(built: BuiltDisk) -> PlacedPartition:
    return built.layout.esp


def overlap(built: BuiltDisk, boot_path: tuple[str, ...] = ()) -> SparseImage:
    """A second entry, a Linux partition, lies inside the ESP (LBA +1 MiB .. +2 MiB of it)."""
    esp = _esp_placed(built)
    ss = built.layout.sector_size
    start = esp.start_lba + MiB // ss
    number = max(p.number for p in built.layout.partitions) + 1
    entry = GptPartitionEntry(
        DataPartition().partition_type_guid,
        guid_from_seed(built.layout.spec.seed, f"partition/{number}"),
        start,
        start + MiB // ss - 1,
        0,
        "overlaps the ESP",
    )
    rewrite_entries(built, {number: entry})
    return built.image


def outside_usable(built: BuiltDisk, boot_path: tuple[str, ...] = ()) -> SparseImage:
    """The ESP's EndingLBA reaches 8 blocks past LastUsableLBA, into the backup entry array."""
    esp = _esp_placed(built)
    gpt = built.layout.gpt
    assert gpt is not None
    rewrite_entries(built, {esp.number: replace(esp.entry, ending_lba=gpt.last_usable_lba + 8)})
    return built.image


def grown(built: BuiltDisk, boot_path: tuple[str, ...] = ()) -> SparseImage:
    """The image grew by 16 MiB after it was made (`qemu-img resize`): backup GPT and PMBR size left behind."""
    return built.image.resized(built.image.size + 16 * MiB)


# ---------------------------------------------------------------------------------------------------
# MBR edits


def no_pmbr(built: BuiltDisk, boot_path: tuple[str, ...] = ()) -> SparseImage:
    built.image.write(0, bytes(built.layout.sector_size))
    return built.image


def hybrid_mbr(built: BuiltDisk, boot_path: tuple[str, ...] = ()) -> SparseImage:
    """gdisk-style hybrid MBR: 0xEE from LBA 1 up to the ESP, then an active 0xEF record over the ESP."""
    esp = _esp_placed(built)
    ss = built.layout.sector_size
    records = (
        MbrPartitionRecord(
            GPT_PROTECTIVE_OS_TYPE, 1, esp.start_lba - 1, 0, lba_to_chs(1), lba_to_chs(esp.start_lba - 1)
        ),
        MbrPartitionRecord(
            MBR_EFI_SYSTEM, esp.start_lba, esp.size_lbas, 0x80, lba_to_chs(esp.start_lba), lba_to_chs(esp.end_lba)
        ),
    )
    built.image.write(0, ProtectiveMbr(records=records).to_bytes(ss))
    return built.image


# ---------------------------------------------------------------------------------------------------
# FAT edits


def boot_volume(built: BuiltDisk, boot_path: tuple[str, ...]) -> tuple[PlacedPartition, FatVolume]:
    """The partition and FAT volume that hold `boot_path` (compared case-insensitively)."""
    for placed, volume in zip(built.layout.partitions, built.volumes, strict=True):
        if volume is None:
            continue
        try:
            volume.allocation(*boot_path)
        except LookupError:
            continue
        return placed, volume
    raise LookupError(f"no FAT volume holds {'/'.join(boot_path)}")


def _write_fat_entry(built: BuiltDisk, placed: PlacedPartition, volume: FatVolume, cluster: int, value: int) -> None:
    geometry = volume.geometry
    base = built.layout.offset(placed.start_lba)
    fmt = "<I" if geometry.fat_type == 32 else "<H"
    for index in range(geometry.num_fats):
        built.image.write(base + geometry.fat_entry_offset(index, cluster), struct.pack(fmt, value))


def chain_loop(built: BuiltDisk, boot_path: tuple[str, ...]) -> SparseImage:
    """The boot file's last cluster points back at its first: the chain is a cycle (both FATs).

    Reading the file's own size still returns the right bytes; following the chain to its end never stops.
    """
    placed, volume = boot_volume(built, boot_path)
    alloc = volume.allocation(*boot_path)
    if alloc.clusters < 1:
        raise ValueError("the boot file has no clusters to loop; this defect needs a non-empty boot file")
    _write_fat_entry(built, placed, volume, alloc.first_cluster + alloc.clusters - 1, alloc.first_cluster)
    return built.image


def directory_loop(built: BuiltDisk, boot_path: tuple[str, ...]) -> SparseImage:
    """The boot file's directory gains a subdirectory entry "LOOP" whose cluster is its grandparent's
    (\\EFI\\BOOT\\LOOP is \\EFI again): the tree is no longer a tree."""
    placed, volume = boot_volume(built, boot_path)
    parent = volume.allocation(*boot_path[:-1])
    grandparent = volume.allocation(*boot_path[:-2])
    if parent.clusters < 1 or grandparent.clusters < 1:
        raise ValueError("this defect needs the boot file two directories below the root")
    geometry = volume.geometry
    base = built.layout.offset(placed.start_lba) + geometry.cluster_offset(parent.first_cluster)
    slots = parent.clusters * geometry.cluster_bytes // 32
    for slot in range(slots):
        if built.image.read(base + 32 * slot, 1) == b"\x00":
            break
    else:
        raise ValueError("the boot file's directory has no free slot for the loop entry")
    stamp = FatTimestamp.from_seed(built.layout.spec.seed)
    entry = DirectoryEntry(b"LOOP       ", ATTR_DIRECTORY, grandparent.first_cluster, created=stamp)
    built.image.write(base + 32 * slot, entry.to_bytes())
    return built.image


# ---------------------------------------------------------------------------------------------------
# Payload helpers (generic PE byte operations; the catalogue decides which bytes to start from)


def pe_section_table(pe: bytes) -> list[tuple[int, int]]:
    """(PointerToRawData, SizeOfRawData) of each section of a well-formed PE."""
    (e_lfanew,) = struct.unpack_from("<I", pe, 0x3C)
    (n_sections,) = struct.unpack_from("<H", pe, e_lfanew + 6)
    (opt_size,) = struct.unpack_from("<H", pe, e_lfanew + 20)
    table = e_lfanew + 24 + opt_size
    out = []
    for i in range(n_sections):
        size, pointer = struct.unpack_from("<II", pe, table + 40 * i + 16)
        out.append((pointer, size))
    return out


def truncate_in_section(pe: bytes) -> bytes:
    """The PE cut halfway through its last section's raw data: headers intact, the section runs past EOF."""
    pointer, size = max(pe_section_table(pe))
    return pe[: pointer + size // 2]


def set_machine(pe: bytes, machine: int) -> bytes:
    """The PE with its COFF Machine field replaced (nothing else changes)."""
    (e_lfanew,) = struct.unpack_from("<I", pe, 0x3C)
    out = bytearray(pe)
    struct.pack_into("<H", out, e_lfanew + 4, machine)
    return bytes(out)


def garbage(size: int, seed: str) -> bytes:
    """Deterministic random bytes that do not start with "MZ"."""
    data = bytearray(random.Random(seed).randbytes(size))
    if data[:2] == b"MZ":
        data[0] ^= 0xFF
    return bytes(data)


# ---------------------------------------------------------------------------------------------------
# The defects

DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("none", "no defect"),
        # Spec-breaking images that UEFI firmware reads anyway
        Defect("esp-fat16", "the ESP is formatted FAT16", spec=_fat16),
        Defect(
            "esp-basic-data-guid",
            "the ESP's type GUID is Basic Data (EBD0A0A2-...) instead of the ESP GUID",
            spec=_basic_data_guid,
        ),
        Defect("mbr-only", "no GPT: a legacy MBR with one 0xEF partition", spec=_mbr_only),
        Defect("superfloppy", "no partition table: FAT32 over the whole disk", spec=_superfloppy),
        # GPT
        Defect("gpt-primary-crc", "primary GPT HeaderCRC32 wrong; backup intact", edit=primary_crc),
        Defect(
            "gpt-primary-crc-ro",
            "primary GPT HeaderCRC32 wrong; backup intact; the disk is read-only",
            edit=primary_crc,
        ),
        Defect("gpt-backup-crc", "backup GPT HeaderCRC32 wrong; primary intact", edit=backup_crc),
        Defect("gpt-both-crc", "both GPT headers' HeaderCRC32 wrong", edit=both_crc),
        Defect(
            "gpt-array-crc",
            "primary header's PartitionEntryArrayCRC32 wrong (HeaderCRC32 valid); backup intact",
            edit=array_crc,
        ),
        Defect(
            "gpt-backup-not-last", "image grown 16 MiB after partitioning: backup GPT not at the last LBA", edit=grown
        ),
        Defect("partitions-overlap", "a Linux partition entry overlaps the ESP", edit=overlap),
        Defect("esp-outside-usable", "the ESP's EndingLBA lies past LastUsableLBA", edit=outside_usable),
        Defect("esp-no-blockio", "the ESP has GPT attribute bit 1 (No Block IO Protocol)", spec=_no_block_io),
        # MBR
        Defect("no-pmbr", "LBA 0 zeroed: no protective MBR (GPT intact)", edit=no_pmbr),
        Defect("hybrid-mbr", "hybrid MBR: 0xEE record plus an active 0xEF record over the ESP", edit=hybrid_mbr),
        # FAT
        Defect("fat32-few-clusters", "16 MiB ESP with a FAT32 BPB but fewer than 65525 clusters", spec=_few_clusters),
        Defect("fat-chain-loop", "the boot file's cluster chain is a cycle (last cluster -> first)", edit=chain_loop),
        Defect("fat-dir-loop", "directory loop: \\EFI\\BOOT\\LOOP is \\EFI", edit=directory_loop),
        # Boot file
        Defect("missing-boot-file", "\\EFI\\BOOT holds a README but no boot file", payload="none"),
        Defect("empty-boot-file", "the boot file is 0 bytes", payload="empty"),
        Defect("pe-x64", "the boot file's PE machine type is x86-64 (0x8664)", payload="pe-x64"),
        Defect("pe-other-arm", "the boot file is a PE for the other Arm architecture", payload="pe-other-arm"),
        Defect(
            "pe-truncated", "the boot file is cut inside its .text section (headers intact)", payload="pe-truncated"
        ),
        Defect("pe-garbage", "the boot file is random bytes, not a PE", payload="garbage"),
    )
}
