"""What a VM is given: the disks it boots from and its shape (vCPUs, memory).

Values shared by the case catalogue, the backends and the verdicts, so none of them needs the others.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Disk:
    """A disk to attach: a raw image file, the logical block size the VM presents, read-only or not."""

    path: Path
    logical_block_size: int = 512
    read_only: bool = False


def as_disk(disk: Path | Disk) -> Disk:
    """A bare path is a writable disk of 512-byte blocks."""
    return disk if isinstance(disk, Disk) else Disk(Path(disk))


@dataclass(frozen=True)
class VmShape:
    """The vCPUs and RAM (bytes) a backend gives one arch's VM."""

    cpus: int
    memory: int

    @property
    def memory_text(self) -> str:
        return size_text(self.memory)


def memory_bytes(text: str) -> int:
    """QEMU's -m syntax: a number with an optional k/M/G/T suffix (MiB when none)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", text)
    if not m:
        raise ValueError(f"unreadable memory size {text!r}")
    shift = {"": 20, "k": 10, "m": 20, "g": 30, "t": 40}[m.group(2).lower()]
    return int(float(m.group(1)) * (1 << shift))


def configured_cpus(args: Sequence[str]) -> int:
    """vCPUs from a QEMU ``-smp`` option in `args` (``-smp 4`` or ``-smp cpus=4,...``); 1 when absent."""
    cpus = 1
    for flag, value in zip(args, args[1:], strict=False):
        if flag in ("-smp", "--smp"):
            m = re.search(r"(?:^|,)(?:cpus=)?(\d+)(?:,|$)", value)
            if m:
                cpus = int(m.group(1))
    return cpus


def size_text(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"
