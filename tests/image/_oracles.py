"""Independent oracles for generated images: gdisk, dosfstools, mtools, qemu-img and small struct
parsers written from the specs here, never reusing vmconform.image code.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from host_tools import requires

TOOLS = ("sgdisk", "fsck.fat", "mdir", "mtype", "mcopy", "qemu-img", "dd")


def need(*tools: str) -> pytest.MarkDecorator:
    """The test fails, saying what to install, when one of the oracle `tools` is missing (never skips)."""
    return requires(*tools)


def run(*cmd: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass(frozen=True)
class SgdiskPartition:
    number: int
    start: int
    end: int
    code: str
    name: str


def sgdisk_partitions(image: Path) -> list[SgdiskPartition]:
    """Parse the table `sgdisk -p` prints."""
    out = run("sgdisk", "-p", image).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+([0-9A-F]{4})\s+(.*)$", line)
        if m:
            rows.append(SgdiskPartition(int(m[1]), int(m[2]), int(m[3]), m[4], m[5].strip()))
    return rows


def sgdisk_verify(image: Path) -> str:
    return run("sgdisk", "-v", image).stdout


def extract_partition(image: Path, start_lba: int, end_lba: int, out: Path, sector: int = 512) -> Path:
    """Copy the partition's bytes to `out` (sparse) with dd, so fsck.fat can check it."""
    run(
        "dd",
        f"if={image}",
        f"of={out}",
        "bs=1M",
        "iflag=skip_bytes,count_bytes",
        f"skip={start_lba * sector}",
        f"count={(end_lba - start_lba + 1) * sector}",
        "conv=sparse",
        "status=none",
    )
    return out


def fsck_fat(volume: Path) -> subprocess.CompletedProcess[str]:
    return run("fsck.fat", "-n", "-v", "-V", volume, check=False)


def assert_fsck_clean(volume: Path) -> None:
    proc = fsck_fat(volume)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    for bad in ("Dirty", "differences", "rror", "Free cluster summary wrong", "Leaving filesystem unchanged"):
        assert bad not in text, text


def mtools_image(image: Path, offset: int) -> str:
    return f"{image}@@{offset}"


def mcopy_all(image: Path, offset: int, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    run("mcopy", "-s", "-n", "-i", mtools_image(image, offset), "::/*", dest)


def mtype_bytes(image: Path, offset: int, path: str) -> bytes:
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(
        ["mtype", "-i", mtools_image(image, offset), f"::{path}"], capture_output=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under `root` as a '/'-separated relative path -> content."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass(frozen=True)
class Bpb:
    """The FAT32 BPB fields the tests look at, parsed from the boot sector per fatgen103 §3."""

    bytes_per_sector: int
    sectors_per_cluster: int
    reserved_sectors: int
    num_fats: int
    root_entry_count: int
    total_sectors_16: int
    media: int
    fat_size_16: int
    hidden_sectors: int
    total_sectors_32: int
    fat_size_32: int
    root_cluster: int
    fs_info: int
    backup_boot: int
    boot_sig: int
    volume_id: int
    volume_label: bytes
    fs_type: bytes

    @classmethod
    def parse(cls, sector: bytes) -> Bpb:
        bps, spc, rsvd, nfats, root_ent, tot16, media, fatsz16 = struct.unpack_from("<HBHBHHBH", sector, 11)
        hidden, tot32, fatsz32 = struct.unpack_from("<III", sector, 28)
        root_clus, fsinfo, bkboot = struct.unpack_from("<IHH", sector, 44)
        boot_sig, vol_id = struct.unpack_from("<BI", sector, 66)
        return cls(
            bps, spc, rsvd, nfats, root_ent, tot16, media, fatsz16, hidden, tot32, fatsz32,
            root_clus, fsinfo, bkboot, boot_sig, vol_id, sector[71:82], sector[82:90],
        )  # fmt: skip

    @property
    def cluster_count(self) -> int:
        """CountofClusters as fatgen103 §3.5 computes it (the number that decides the FAT type)."""
        root_dir_sectors = (self.root_entry_count * 32 + self.bytes_per_sector - 1) // self.bytes_per_sector
        fat_size = self.fat_size_16 or self.fat_size_32
        total = self.total_sectors_16 or self.total_sectors_32
        data = total - (self.reserved_sectors + self.num_fats * fat_size + root_dir_sectors)
        return data // self.sectors_per_cluster
