"""DiskSpec behaviour: determinism, speed, and ValueError for specs that cannot be built."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from vmconform.image import DataPartition, DiskSpec, EspFile, EspPartition, FatVolumeSpec, build_disk

from ._support import BOOT_PATH, payload

PE = payload(3000)


def test_same_spec_same_bytes_other_seed_other_bytes() -> None:
    a = build_disk(DiskSpec(files=(EspFile(BOOT_PATH, PE),), seed="one")).sha256()
    b = build_disk(DiskSpec(files=(EspFile(BOOT_PATH, PE),), seed="one")).sha256()
    c = build_disk(DiskSpec(files=(EspFile(BOOT_PATH, PE),), seed="two")).sha256()
    assert a == b != c


def test_seed_changes_only_identifiers_and_timestamps() -> None:
    one = build_disk(DiskSpec(files=(EspFile(BOOT_PATH, PE),), seed="one"))
    two = build_disk(DiskSpec(files=(EspFile(BOOT_PATH, PE),), seed="two"))
    esp = 2048 * 512
    assert one.read(esp + 67, 4) != two.read(esp + 67, 4)  # BS_VolID
    assert one.read(512 + 56, 16) != two.read(512 + 56, 16)  # DiskGUID
    assert one.read(1024 + 16, 16) != two.read(1024 + 16, 16)  # UniquePartitionGUID
    assert one.read(0, 512) == two.read(0, 512)  # the protective MBR does not depend on the seed


def test_reference_image_builds_fast() -> None:
    spec = DiskSpec(files=(EspFile(BOOT_PATH, payload(64 * 1024)),), seed="fast")
    best = min(_timed(lambda: build_disk(spec)) for _ in range(3))
    assert best < 0.1, f"building the reference image took {best:.3f} s"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (DiskSpec(files=(EspFile("EFI/BOOT/" + "x" * 256, PE),)), "at most 255"),
        (DiskSpec(files=(EspFile("EFI/BOOT/NAME.", PE),)), "ends with a space or '.'"),
        (DiskSpec(files=(EspFile("EFI/BOOT/A:B", PE),)), "characters"),
        (DiskSpec(files=(EspFile("EFI/boot/X.EFI", PE), EspFile("EFI/BOOT/X.EFI", PE))), "collides"),
        (DiskSpec(partitions=(EspPartition(fat=FatVolumeSpec(fat_type=16)),), size_bytes=8 * 2**30), "FAT16"),
        (DiskSpec(partitions=(EspPartition(start_lba=2**32 + 2048),), size_bytes=3 * 2**40), "HiddSec"),
        (DiskSpec(partitioning="none", partitions=(DataPartition(),)), "exactly one EspPartition"),
        (DiskSpec(partitioning="mbr", partitions=(DataPartition(size_bytes=2**20),) * 5), "4 partitions"),
        (
            DiskSpec(partitions=(DataPartition(size_bytes=2**20, entry_index=2), EspPartition(entry_index=2))),
            "entry_index",
        ),
        (DiskSpec(files=(EspFile("EFI/../BOOTAA64.EFI", PE),)), "'..'"),
        (DiskSpec(files=(EspFile("EFI//BOOTAA64.EFI", PE),)), "empty"),
        (DiskSpec(files=(EspFile("", PE),)), "empty"),
        (DiskSpec(files=(EspFile("EFI/BO*T/X.EFI", PE),)), "characters"),
        (DiskSpec(files=(EspFile("EFI", PE), EspFile("EFI/BOOT/X.EFI", PE))), "collides"),
        (DiskSpec(files=(EspFile("A.EFI", PE), EspFile("A.EFI", PE))), "collides"),
        (DiskSpec(size_bytes=32 * 2**20), "65525"),
        (DiskSpec(size_bytes=64 * 2**20 + 1), "multiple"),
        (DiskSpec(sector_size=520), "sector_size"),
        (DiskSpec(size_bytes=40 * 2**20, files=(EspFile("BIG.BIN", bytes(39 * 2**20)),)), "clusters"),
        (DiskSpec(partitions=(EspPartition(size_bytes=80 * 2**20),)), "does not fit"),
        (DiskSpec(partitions=(EspPartition(fat=FatVolumeSpec(volume_label="bad")),)), "label"),
        (DiskSpec(partitions=(EspPartition(name="x" * 37),)), "UTF-16"),
        (DiskSpec(partitions=(DataPartition(), EspPartition())), "only the last partition"),
        (
            DiskSpec(partitions=(DataPartition(size_bytes=2**20), EspPartition(start_lba=2048 + 1024))),
            "overlaps",
        ),
        (DiskSpec(files=(EspFile("A.EFI", PE),), partitions=(EspPartition(files=()),)), "dropped"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_specs_raise_value_error_saying_what_to_fix(spec: DiskSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        build_disk(spec)
    assert any(
        word in str(info.value) for word in ("use", "make", "give", "enlarge", "must", "raise", "move", "leave")
    ), info.value
