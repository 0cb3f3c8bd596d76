"""Long file names, NT case bits, FAT16, legacy-MBR and unpartitioned disks, GPT entry slots: read back by
mtools, fsck.fat, sgdisk and fdisk."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmconform.image import DataPartition, DiskSpec, EspFile, EspPartition, FatVolumeSpec, build_disk
from vmconform.image.fat_entries import lfn_checksum, name_records, short_name

from ._oracles import (
    Bpb,
    assert_fsck_clean,
    extract_partition,
    mtype_bytes,
    need,
    read_tree,
    run,
    sgdisk_partitions,
)
from ._support import ESP_OFFSET, build_and_save, payload

UTF8 = dict(os.environ, LC_ALL="C.UTF-8")


def mcopy_utf8(image: Path, offset: int, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mcopy", "-s", "-n", "-i", f"{image}@@{offset}", "::/*", str(dest)], env=UTF8, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("name", "taken", "short", "long"),
    [
        ("BOOTAA64.EFI", set(), b"BOOTAA64EFI", None),
        ("bootaa64.efi", set(), b"BOOTAA64EFI", "bootaa64.efi"),  # fits 8.3 after upper-casing: no tail
        ("Long File Name.txt", set(), b"LONGFI~1TXT", "Long File Name.txt"),
        ("Long File Name.txt", {b"LONGFI~1TXT"}, b"LONGFI~2TXT", "Long File Name.txt"),
        ("a.b.c", set(), b"A~1     C  ", "a.b.c"),
        ("caf\u00e9.txt", set(), b"CAF_~1  TXT", "caf\u00e9.txt"),  # lossy conversion forces a tail
        ("bootaa64.efi", {b"BOOTAA64EFI"}, b"BOOTAA~1EFI", "bootaa64.efi"),
    ],
)
def test_short_names_follow_fatgen103(name: str, taken: set[bytes], short: bytes, long: str | None) -> None:
    got = name_records(name, set(taken))
    assert (got.short, got.long_name, got.nt_res) == (short, long, 0)


def test_nt_case_bits_only_for_single_case_parts() -> None:
    assert name_records("bootaa64.efi", set(), "nt-case-bits").nt_res == 0x18
    assert name_records("BOOTAA64.efi", set(), "nt-case-bits").nt_res == 0x10
    assert name_records("BootAA64.EFI", set(), "nt-case-bits").long_name == "BootAA64.EFI"


def test_lfn_checksum_matches_fatgen103_example() -> None:
    # fatgen103 §7's algorithm, computed here independently as sum of a rotate-right-then-add over 11 bytes.
    name = short_name("BOOTAA64.EFI")
    total = 0
    for b in name:
        total = ((total >> 1) | ((total & 1) << 7)) + b & 0xFF
    assert lfn_checksum(name) == total


_LONG_CHARS = st.characters(
    codec="utf-8", min_codepoint=0x20, max_codepoint=0x2FFF, exclude_characters='"*/:<>?\\|\x7f'
)
long_name = st.text(_LONG_CHARS, min_size=1, max_size=40).filter(lambda s: s == s.rstrip(" .") and s.strip(" ."))


@need("mcopy", "fsck.fat", "dd")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(long_name, min_size=1, max_size=8, unique_by=str.upper), seed=st.integers(0, 2**16))
def test_long_names_read_back_exactly(names: list[str], seed: int) -> None:
    files = tuple(EspFile(f"EFI/Long Dir/{n}", payload(seed % 700 + i, seed + i)) for i, n in enumerate(names))
    with tempfile.TemporaryDirectory() as tmp:
        built = build_and_save(DiskSpec(files=files, seed=str(seed)), Path(tmp) / "disk.img")
        mcopy_utf8(built.path, ESP_OFFSET, Path(tmp) / "out")
        assert read_tree(Path(tmp) / "out") == {f.path: f.data for f in files}
        (esp,) = sgdisk_partitions(built.path)
        assert_fsck_clean(extract_partition(built.path, esp.start, esp.end, Path(tmp) / "esp.img"))


@need("mdir", "fsck.fat", "dd")
def test_nt_case_bits_show_lower_case_without_long_entries(tmp_path: Path) -> None:
    spec = DiskSpec(
        files=(EspFile("efi/boot/bootaa64.efi", b"x" * 700),),
        seed="nt",
        partitions=(EspPartition(fat=FatVolumeSpec(lower_case_names="nt-case-bits")),),
    )
    built = build_and_save(spec, tmp_path / "d.img")
    listing = run("mdir", "-i", f"{built.path}@@{ESP_OFFSET}", "::/efi/boot").stdout
    assert "bootaa64 efi" in listing
    raw = built.path.read_bytes()[ESP_OFFSET : ESP_OFFSET + (8 << 20)]
    assert b"b\x00o\x00o\x00t\x00" not in raw, "no long-name entries should have been written"
    (esp,) = sgdisk_partitions(built.path)
    assert_fsck_clean(extract_partition(built.path, esp.start, esp.end, tmp_path / "esp.img"))


@need("mtype", "fsck.fat", "dd", "sgdisk")
def test_fat16_esp(tmp_path: Path) -> None:
    files = tuple(EspFile(f"F{i:03}.BIN", payload(i * 91, i)) for i in range(40)) + (EspFile("EFI/BOOT/X.EFI", b"pe"),)
    spec = DiskSpec(files=files, seed="f16", partitions=(EspPartition(fat=FatVolumeSpec(fat_type=16)),))
    built = build_and_save(spec, tmp_path / "d.img")
    with built.path.open("rb") as f:
        f.seek(ESP_OFFSET)
        sector = f.read(512)
    bpb = Bpb.parse(sector)
    assert bpb.fat_size_16 and 4085 <= bpb.cluster_count < 65525  # (Bpb's FAT32-only fields mean nothing here)
    assert (bpb.reserved_sectors, bpb.root_entry_count, sector[38], sector[54:62]) == (1, 512, 0x29, b"FAT16   ")
    assert mtype_bytes(built.path, ESP_OFFSET, "/F039.BIN") == payload(39 * 91, 39)
    (esp,) = sgdisk_partitions(built.path)
    assert_fsck_clean(extract_partition(built.path, esp.start, esp.end, tmp_path / "esp.img"))
    with pytest.raises(ValueError, match="root directory holds 16 entries"):
        build_disk(
            DiskSpec(files=files, partitions=(EspPartition(fat=FatVolumeSpec(fat_type=16, root_entry_count=16)),))
        )


@need("fdisk", "mtype", "sgdisk")
def test_legacy_mbr_and_unpartitioned_disks(tmp_path: Path) -> None:
    files = (EspFile("EFI/BOOT/BOOTAA64.EFI", payload(3000)),)
    mbr = build_and_save(
        DiskSpec(
            files=files, seed="m", partitioning="mbr", partitions=(DataPartition(size_bytes=8 << 20), EspPartition())
        ),
        tmp_path / "mbr.img",
    )
    out = run("fdisk", "-l", "-t", "dos", mbr.path).stdout
    assert " 83 Linux" in out and " ef EFI (FAT-12/16/32)" in out and "Disklabel type: dos" in out
    assert mtype_bytes(mbr.path, 9 << 20, "/EFI/BOOT/BOOTAA64.EFI") == payload(3000)
    flat = build_and_save(
        DiskSpec(files=files, seed="f", partitioning="none", partitions=(EspPartition(),)), tmp_path / "flat.img"
    )
    assert mtype_bytes(flat.path, 0, "/EFI/BOOT/BOOTAA64.EFI") == payload(3000)
    assert Bpb.parse(flat.path.read_bytes()[:512]).hidden_sectors == 0
    assert sgdisk_partitions(flat.path) == []


@need("sgdisk")
def test_entry_index_leaves_unused_entries(tmp_path: Path) -> None:
    spec = DiskSpec(
        seed="gap",
        size_bytes=80 << 20,
        partitions=(DataPartition(size_bytes=4 << 20), EspPartition(entry_index=5, files=())),
    )
    built = build_and_save(spec, tmp_path / "d.img")
    assert [r.number for r in sgdisk_partitions(built.path)] == [1, 5]
    assert "No problems found" in run("sgdisk", "-v", built.path).stdout
