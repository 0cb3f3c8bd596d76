"""Hypervisor backends: one module each, behind the small :class:`Backend` interface.

A backend turns a :class:`BootRequest` (disks, firmware, a private work folder)
into a running VM whose serial console is a :class:`~vmconform.console.Console`.
Adding a backend is one module here plus its name in ``config.BACKENDS`` and an
entry in ``hypervisors.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vmconform.config import HypervisorEntry
from vmconform.console import Console
from vmconform.firmware import Firmware


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
class BootRequest:
    arch: str
    disks: tuple[Path | Disk, ...]  # in boot-option order; a Path means Disk(path)
    firmware: Firmware
    workdir: Path  # private to this boot: vars copy, transcripts, command line
    vars_path: Path | None  # the writable variable store this boot uses (a per-case copy); None: none
    tag: str = ""  # put in the VM process's environment (vmconform.reaper) so a sweep can find it


class Backend(Protocol):
    entry: HypervisorEntry

    def command(self, req: BootRequest) -> list[str]:
        """The full command line that starts the VM (also written to the work folder)."""
        ...

    def start(self, req: BootRequest, echo: Callable[[bytes], None] | None = None) -> Console:
        """Start the VM; its console is returned (use it as a context manager)."""
        ...


def backend_for(entry: HypervisorEntry) -> Backend:
    if entry.backend == "qemu":
        from vmconform.hypervisors.qemu import QemuBackend

        return QemuBackend(entry)
    if entry.backend == "libvirt":
        from vmconform.hypervisors.libvirt import LibvirtBackend

        return LibvirtBackend(entry)
    raise ValueError(f"no backend module for {entry.backend!r}")
