"""Every catalogue image, judged by tools vmconform did not write: sgdisk (gdisk), util-linux fdisk,
fsck.fat (dosfstools) and mtools agree with what the catalogue says about it.

Where each case's partitions are comes from the tools (sgdisk -p / fdisk -l), not from the generator.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from vmconform import cases
from vmconform.cases import Case

from ._oracles import assert_fsck_clean, extract_partition, fsck_fat, mtype_bytes, need, run, sgdisk_partitions

NONCE = "oracle"
AARCH64 = [c for c in cases.catalogue() if c.arch == "aarch64"]
GPT_DEFECT_MESSAGES = {
    "gpt-primary-crc": "invalid main GPT header, but valid backup",
    "gpt-primary-crc-ro": "invalid main GPT header, but valid backup",
    "gpt-backup-crc": "invalid backup GPT header, but valid main header",
    "gpt-array-crc": "The CRC for the main partition table is invalid",
    "gpt-backup-not-last": "doesn't reside at the end of the disk",
    "partitions-overlap": "partitions 2 and 1 overlap",
    "esp-outside-usable": "Secondary partition table overlaps the last partition",
    "no-pmbr": "Found valid GPT with corrupt MBR",
}
FAT_DEFECT_MESSAGES = {
    "fat32-few-clusters": "less than the required minimum of 65525",
    "fat-chain-loop": "Circular cluster chain",
    "fat-dir-loop": "point to containing directory's parent",
}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("matrix")
    return {c.name: cases.write_image(c, NONCE, out / f"{c.name}.img") for c in AARCH64}


def _ids(case: Case) -> str:
    return case.name


def _volumes(case: Case, image: Path) -> list[tuple[int, int]]:
    """(byte offset, byte size) of the FAT volumes, as the partitioning tools see them."""
    if case.defect == "superfloppy":
        return [(0, image.stat().st_size)]
    if case.defect == "mbr-only":
        out = run("fdisk", "-l", "-t", "dos", image).stdout
        rows = re.finditer(r"\.img\d+\s+\*?\s*(\d+)\s+(\d+)\s+\d+\s+\S+\s+ef\b", out)
        return [(int(m[1]) * 512, (int(m[2]) - int(m[1]) + 1) * 512) for m in rows]
    if case.defect == "gpt-both-crc":
        return [(2048 * 512, 126976 * 512)]  # no tool can locate it any more: the reference layout's ESP
    if case.sector_size == 4096:
        out = run("fdisk", "-l", "-b", "4096", image).stdout
        rows = re.finditer(r"\.img\d+\s+(\d+)\s+(\d+)\s+\d+\s+\S+\s+EFI System", out)
        return [(int(m[1]) * 4096, (int(m[2]) - int(m[1]) + 1) * 4096) for m in rows]
    return [
        (r.start * 512, (r.end - r.start + 1) * 512) for r in sgdisk_partitions(image) if r.code in ("EF00", "0700")
    ]


@need("sgdisk", "fdisk")
@pytest.mark.parametrize("entry", AARCH64, ids=_ids)
def test_partition_tools_agree(entry: Case, matrix: dict[str, Path]) -> None:
    case = entry
    image = matrix[case.name]
    gpt_breaks = {f for f in case.fails if f.startswith(("gpt.", "mbr."))}
    if case.sector_size == 4096:
        out = run("fdisk", "-l", "-b", "4096", image).stdout
        assert "Disklabel type: gpt" in out and re.search(r"\s256\s+66303\s.*EFI System", out), out
        assert "corrupt" not in out
        return
    proc = run("sgdisk", "-v", image, check=False)
    verify = proc.stdout + proc.stderr
    if case.defect in GPT_DEFECT_MESSAGES:
        assert GPT_DEFECT_MESSAGES[case.defect] in " ".join(verify.split()), verify
    elif case.defect == "gpt-both-crc":
        assert sgdisk_partitions(image) == [] and "Creating new GPT entries" in verify, verify
    elif case.defect in ("mbr-only", "superfloppy"):
        assert "Found invalid GPT and valid MBR" in verify, verify
    elif case.defect == "hybrid-mbr":
        mbr = run("sgdisk", "-O", image).stdout
        assert re.search(r"\s1\s+2047\s+primary\s+0xEE", mbr) and re.search(r"\*\s+2048\s+\d+\s+primary\s+0xEF", mbr)
    else:
        assert not gpt_breaks, f"{case.name}: the catalogue says the GPT is broken but no oracle says how"
        assert "No problems found" in verify and "Warning" not in verify, verify
        rows = sgdisk_partitions(image)
        esp_code = "0700" if case.defect == "esp-basic-data-guid" else "EF00"
        assert [r.code for r in rows].count(esp_code) == 1 + (case.layout == "esp-among" and esp_code == "0700"), rows
    if case.defect == "esp-no-blockio":
        assert "1:1:1 (hide from EFI)" in run("sgdisk", "-A", "1:show", image).stdout


@need("fsck.fat", "dd", "sgdisk", "fdisk")
@pytest.mark.parametrize("entry", AARCH64, ids=_ids)
def test_fsck_fat_agrees(entry: Case, matrix: dict[str, Path], tmp_path: Path) -> None:
    case = entry
    image = matrix[case.name]
    volumes = _volumes(case, image)
    assert volumes, f"{case.name}: no FAT volume found by the partitioning tools"
    ss = case.sector_size
    for i, (offset, size) in enumerate(volumes):
        volume = extract_partition(image, offset // ss, (offset + size) // ss - 1, tmp_path / f"v{i}", ss)
        if case.defect in FAT_DEFECT_MESSAGES:
            proc = fsck_fat(volume)
            assert FAT_DEFECT_MESSAGES[case.defect] in proc.stdout + proc.stderr, proc.stdout
        else:
            assert_fsck_clean(volume)


@need("mtype", "sgdisk", "fdisk")
@pytest.mark.parametrize("entry", AARCH64, ids=_ids)
def test_mtools_reads_the_boot_file(entry: Case, matrix: dict[str, Path]) -> None:
    case = entry
    image = matrix[case.name]
    want = cases.boot_file_bytes(case, NONCE)
    offsets = [offset for offset, _size in _volumes(case, image)]
    holder = offsets[-1] if case.layout == "esp-among" else offsets[0]
    path = "/EFI/BOOT/BOOTAA64.EFI" if "lower" not in case.layout else "/efi/boot/bootaa64.efi"
    if want is None or case.defect == "fat32-few-clusters":
        proc = subprocess.run(["mtype", "-i", f"{image}@@{holder}", f"::{path}"], capture_output=True, timeout=60)
        assert proc.returncode != 0 or proc.stdout == b"", "mtools read a boot file the case says is not there"
        return
    assert mtype_bytes(image, holder, path) == want
    if case.layout == "lfn":
        env = dict(os.environ, LC_ALL="C.UTF-8")
        listing = subprocess.run(
            ["mdir", "-/", "-i", f"{image}@@{holder}", "::/"], capture_output=True, text=True, env=env, timeout=60
        ).stdout
        assert "vmconform \u2013 notes on the removable-media path.txt" in listing
        assert "Read Me First.txt" in listing and "BootAA64.efi.old" in listing
    if case.layout == "lowercase":  # long-name entries hold the lower-case name
        assert "bootaa64.efi" in run("mdir", "-i", f"{image}@@{holder}", "::/efi/boot").stdout
    if case.layout == "lowercase-ntcase":  # no long names: the 8.3 entry's case bits make mtools show it lower case
        listing = run("mdir", "-i", f"{image}@@{holder}", "::/efi/boot").stdout
        assert "bootaa64 efi" in listing and "bootaa64.efi" not in listing
