"""Named disk layouts a conforming firmware must boot: each one `DiskSpec` variation of the reference image.

A layout takes the ESP's files (the probe at its removable-media path, or whatever a defect puts
there), a seed and the guest architecture, and returns the `DiskSpec`; the case catalogue
(`vmconform.cases`) pairs layouts with defects and expected outcomes. Sizes are logical: every image is
sparse, so even the 3 TiB layout occupies well under 1 MiB on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vmconform.image.disk import (
    BASIC_DATA_TYPE_GUID,
    LINUX_ROOT_AARCH64_TYPE_GUID,
    LINUX_ROOT_ARM_TYPE_GUID,
    LINUX_SWAP_TYPE_GUID,
    DataPartition,
    DiskSpec,
    EspPartition,
)
from vmconform.image.fat import EspFile, FatVolumeSpec
from vmconform.image.guid import Guid

MiB = 1 << 20
TiB = 1 << 40

LayoutBuilder = Callable[[tuple[EspFile, ...], str, str], DiskSpec]
"""(ESP files, seed, arch) -> DiskSpec."""


@dataclass(frozen=True)
class Layout:
    name: str
    summary: str
    build: LayoutBuilder
    sector_size: int = 512
    """The logical block size the disk must be presented with (QEMU logical_block_size)."""


def _root_type(arch: str) -> Guid:
    return LINUX_ROOT_AARCH64_TYPE_GUID if arch == "aarch64" else LINUX_ROOT_ARM_TYPE_GUID


def _reference(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    return DiskSpec(files=files, seed=seed)


def _esp_second(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    return DiskSpec(
        files=files,
        seed=seed,
        size_bytes=80 * MiB,
        partitions=(
            DataPartition(size_bytes=16 * MiB, partition_type_guid=_root_type(arch), name="root"),
            EspPartition(),
        ),
    )


def _esp_last(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    """Root and swap first; the ESP last on the disk and in GPT entry 4, after an unused entry 3."""
    return DiskSpec(
        files=files,
        seed=seed,
        size_bytes=96 * MiB,
        partitions=(
            DataPartition(size_bytes=16 * MiB, partition_type_guid=_root_type(arch), name="root"),
            DataPartition(size_bytes=8 * MiB, partition_type_guid=LINUX_SWAP_TYPE_GUID, name="swap"),
            EspPartition(entry_index=4),
        ),
    )


def _esp_among(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    """A FAT32 basic-data partition (no boot file) first, then root, the ESP, swap."""
    data_files = (EspFile("README.TXT", b"vmconform: a basic-data FAT32 partition with no boot file\r\n"),)
    return DiskSpec(
        files=files,
        seed=seed,
        size_bytes=100 * MiB,
        partitions=(
            EspPartition(
                files=data_files,
                size_bytes=36 * MiB,
                partition_type_guid=BASIC_DATA_TYPE_GUID,
                name="Basic data partition",
                fat=FatVolumeSpec(volume_label="DATA"),
            ),
            DataPartition(size_bytes=8 * MiB, partition_type_guid=_root_type(arch), name="root"),
            EspPartition(size_bytes=40 * MiB),
            DataPartition(partition_type_guid=LINUX_SWAP_TYPE_GUID, name="swap"),
        ),
    )


def _sector_4k(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    """Native 4Kn: header at byte 4096, FirstUsableLBA 6. FAT32 with 4 KiB sectors needs 65525 clusters of
    at least 4 KiB, so the ESP is 258 MiB (sparse: the image still occupies about 100 KiB)."""
    return DiskSpec(files=files, seed=seed, size_bytes=260 * MiB, sector_size=4096)


def _over_2tib(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    """3 TiB; the ESP starts past LBA 2^32 (byte 2 TiB + 1 MiB), so only 64-bit LBAs reach it.

    BPB_HiddSec cannot hold that start (it is 32-bit; it only matters to INT 13h boot code), so it is 0.
    """
    return DiskSpec(
        files=files,
        seed=seed,
        size_bytes=3 * TiB,
        partitions=(
            DataPartition(size_bytes=2 * TiB, partition_type_guid=_root_type(arch), name="root"),
            EspPartition(size_bytes=64 * MiB, fat=FatVolumeSpec(hidden_sectors=0)),
        ),
    )


def _lower(files: tuple[EspFile, ...]) -> tuple[EspFile, ...]:
    return tuple(EspFile(f.path.lower(), f.data) for f in files)


def _lowercase(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    return DiskSpec(files=_lower(files), seed=seed)


def _lowercase_ntcase(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    return DiskSpec(
        files=_lower(files),
        seed=seed,
        partitions=(EspPartition(fat=FatVolumeSpec(lower_case_names="nt-case-bits")),),
    )


def _lfn(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    """Long-named neighbours: one before the boot file in \\EFI\\BOOT (three long entries), a long directory."""
    extra = (
        EspFile("EFI/BOOT/vmconform \u2013 notes on the removable-media path.txt", b"long name, 46 characters\r\n"),
        EspFile("EFI/BOOT/BootAA64.efi.old", b"not a boot file\r\n"),
        EspFile("EFI/Long Directory Name/Read Me First.txt", b"vmconform\r\n"),
    )
    return DiskSpec(files=extra[:1] + files + extra[1:], seed=seed)


def _gpt_256_entries(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    """256 entries: a 32 KiB array, FirstUsableLBA 66. (Fewer than 128 entries would reserve 16 KiB but,
    as gdisk reads UEFI §5.3.2, break the 16 KiB minimum for the array itself.)"""
    return DiskSpec(files=files, seed=seed, number_of_partition_entries=256)


def _esp_unaligned(files: tuple[EspFile, ...], seed: str, arch: str) -> DiskSpec:
    return DiskSpec(files=files, seed=seed, partitions=(EspPartition(start_lba=63),))


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("reference", "GPT + protective MBR, one FAT32 ESP at 1 MiB, 64 MiB disk", _reference),
        Layout("esp-second", "a Linux root partition first, the ESP second", _esp_second),
        Layout("esp-last", "root, swap, then the ESP: last on disk and in GPT entry 4 (entry 3 unused)", _esp_last),
        Layout(
            "esp-among",
            "FAT32 basic-data partition without a boot file, root, ESP, swap",
            _esp_among,
        ),
        Layout(
            "sector-4k",
            "4096-byte logical sectors (native 4Kn): GPT header at byte 4096, 258 MiB ESP",
            _sector_4k,
            sector_size=4096,
        ),
        Layout("over-2tib", "3 TiB disk, ESP past LBA 2^32 (64-bit LBAs), PMBR size 0xFFFFFFFF", _over_2tib),
        Layout(
            "lowercase", "lower-case \\efi\\boot\\bootaa64.efi in long-file-name entries (as Linux writes)", _lowercase
        ),
        Layout(
            "lowercase-ntcase",
            "lower-case names as 8.3 entries with the NT case bits (as Windows writes)",
            _lowercase_ntcase,
        ),
        Layout("lfn", "long-file-name neighbours of the 8.3 boot file, a long-named directory", _lfn),
        Layout("gpt-256-entries", "GPT entry array of 256 entries (32 KiB; FirstUsableLBA 66)", _gpt_256_entries),
        Layout("esp-unaligned", "ESP at LBA 63: not 1 MiB (nor 4 KiB) aligned", _esp_unaligned),
    )
}
