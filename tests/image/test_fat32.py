"""IMG-3/IMG-4: the ESP's FAT32 volume, checked with fsck.fat, mtools and an independent BPB parse."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from vmconform.image import DiskSpec, EspFile

from ._oracles import (
    Bpb,
    assert_fsck_clean,
    extract_partition,
    mcopy_all,
    mtools_image,
    mtype_bytes,
    need,
    read_tree,
    run,
    sgdisk_partitions,
)
from ._support import BOOT_PATH, ESP_OFFSET, ESP_START_LBA, SECTOR, Built, build_and_save, payload


def _boot_sector(built: Built, index: int = 0) -> bytes:
    with built.path.open("rb") as f:
        f.seek(ESP_OFFSET + index * SECTOR)
        return f.read(SECTOR)


@need("sgdisk", "fsck.fat", "dd")
def test_fsck_fat_reports_clean(reference: Built, tmp_path: Path) -> None:
    (esp,) = sgdisk_partitions(reference.path)
    volume = extract_partition(reference.path, esp.start, esp.end, tmp_path / "esp.img")
    assert_fsck_clean(volume)


def test_bpb_is_fat32_with_enough_clusters(reference: Built) -> None:
    sector = _boot_sector(reference)
    bpb = Bpb.parse(sector)
    assert sector[510:512] == b"\x55\xaa" and sector[0] in (0xEB, 0xE9)
    assert bpb.fat_size_16 == 0 and bpb.fat_size_32 != 0
    assert bpb.total_sectors_16 == 0 and bpb.root_entry_count == 0
    assert bpb.cluster_count >= 65525
    assert bpb.cluster_count >= 65525 * 1.5  # a comfortable margin, not a borderline volume
    assert bpb.hidden_sectors == ESP_START_LBA
    assert (bpb.media, bpb.num_fats, bpb.root_cluster, bpb.fs_info, bpb.backup_boot) == (0xF8, 2, 2, 1, 6)
    assert (bpb.boot_sig, bpb.fs_type, bpb.volume_label) == (0x29, b"FAT32   ", b"VMCONFORM  ")
    assert _boot_sector(reference, 6) == sector


def test_fsinfo_and_fat_reserved_entries(reference: Built) -> None:
    bpb = Bpb.parse(_boot_sector(reference))
    for index in (1, 7):  # FSInfo and its backup
        fsinfo = _boot_sector(reference, index)
        lead, struc, free, nxt = (
            *struct.unpack_from("<I", fsinfo, 0),
            *struct.unpack_from("<III", fsinfo, 484),
        )
        assert (lead, struc, struct.unpack_from("<I", fsinfo, 508)[0]) == (0x41615252, 0x61417272, 0xAA550000)
        assert 0 < free < bpb.cluster_count and 2 < nxt <= bpb.cluster_count + 1
    for fat in range(bpb.num_fats):
        with reference.path.open("rb") as f:
            f.seek(ESP_OFFSET + (bpb.reserved_sectors + fat * bpb.fat_size_32) * SECTOR)
            entry0, entry1, root = struct.unpack("<III", f.read(12))
        assert entry0 & 0x0FFFFFFF == 0x0FFFFFF8  # media byte in the low 8 bits
        assert entry1 & 0x0C000000 == 0x0C000000  # clean shutdown, no hard error
        assert root & 0x0FFFFFFF >= 0x0FFFFFF8  # the reference root directory is one cluster


@need("mdir")
def test_mdir_lists_boot_file(reference: Built) -> None:
    out = run("mdir", "-i", mtools_image(reference.path, ESP_OFFSET), "::/EFI/BOOT").stdout
    assert "BOOTAA64 EFI" in out
    assert "VMCONFORM" in out


@need("mtype")
def test_mtype_reads_reference_boot_file(reference: Built) -> None:
    (file,) = reference.spec.files
    assert mtype_bytes(reference.path, ESP_OFFSET, "/" + BOOT_PATH) == file.data


@need("mcopy", "fsck.fat", "dd")
@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 4096, 100 * 1024, 1_000_003])
def test_files_read_back_identical(size: int, tmp_path: Path) -> None:
    files = (EspFile(BOOT_PATH, payload(size, seed=size)), EspFile("README.TXT", payload(size // 3 + 1, 9)))
    built = build_and_save(DiskSpec(files=files, seed=f"size-{size}"), tmp_path / "disk.img")
    mcopy_all(built.path, ESP_OFFSET, tmp_path / "out")
    assert read_tree(tmp_path / "out") == {f.path: f.data for f in files}
    volume = extract_partition(built.path, ESP_START_LBA, ESP_START_LBA + 126976 - 1, tmp_path / "esp.img")
    assert_fsck_clean(volume)


@need("mcopy", "fsck.fat", "dd")
def test_multi_cluster_directories(tmp_path: Path) -> None:
    """60 files in one directory and 30 in the root: directory chains span several clusters."""
    files = tuple(EspFile(f"EFI/MANY/F{i:03}.BIN", payload(i * 37, i)) for i in range(60))
    files += tuple(EspFile(f"ROOT{i:02}.DAT", payload(i, i)) for i in range(30))
    built = build_and_save(DiskSpec(files=files, seed="many"), tmp_path / "disk.img")
    mcopy_all(built.path, ESP_OFFSET, tmp_path / "out")
    assert read_tree(tmp_path / "out") == {f.path: f.data for f in files}
    volume = extract_partition(built.path, ESP_START_LBA, ESP_START_LBA + 126976 - 1, tmp_path / "esp.img")
    assert_fsck_clean(volume)


@need("sgdisk", "mdir", "fsck.fat", "dd")
def test_larger_disk_uses_fatgen103_clusters(tmp_path: Path) -> None:
    """A 300 MiB ESP gets 4 KiB clusters (fatgen103's table) and still >= 65525 of them."""
    built = build_and_save(
        DiskSpec(files=(EspFile(BOOT_PATH, payload(9000)),), seed="big", size_bytes=301 * 2**20),
        tmp_path / "disk.img",
    )
    bpb = Bpb.parse(_boot_sector(built))
    assert bpb.sectors_per_cluster == 8 and bpb.cluster_count >= 65525
    (esp,) = sgdisk_partitions(built.path)
    assert_fsck_clean(extract_partition(built.path, esp.start, esp.end, tmp_path / "esp.img"))
    assert mtype_bytes(built.path, ESP_OFFSET, "/" + BOOT_PATH) == payload(9000)
