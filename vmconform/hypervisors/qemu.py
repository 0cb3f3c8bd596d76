"""The QEMU backend: ``qemu-system-* -M virt`` with UEFI on two pflash devices.

CODE is mapped read-only (unit 0), the per-boot VARS copy writable (unit 1); disks
are virtio-blk; the guest gets no network, no other default devices and no monitor,
its first serial port is the harness's console, and QEMU runs under its seccomp
sandbox (``-sandbox``) when the binary has one. ``-boot menu=on,splash-time=0`` makes
ArmVirtQemu's boot-manager timeout zero (it reads ``etc/boot-menu-wait`` from
fw_cfg), which saves about 5 s per boot.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vmconform.config import ConfigError, HypervisorEntry, resolve_binary
from vmconform.hypervisors import Backend, BootRequest, GicUnsupported, HotplugControl, as_disk
from vmconform.reaper import TAG_ENV

if TYPE_CHECKING:
    from vmconform.console import Console

# seccomp: no obsolete syscalls, no privilege changes, no spawning processes, no scheduler/affinity changes.
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


@functools.cache
def sandbox_supported(binary: str) -> bool:
    """True when this QEMU was built with seccomp (``-sandbox``); tried once per binary.

    QEMU handles its options in order: ``-sandbox`` first fails at once on a binary without seccomp, and
    ``-version`` then exits, so the check never leaves a process behind.
    """
    try:
        p = subprocess.run(
            [binary, "-sandbox", SANDBOX, "-version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


def machine_with_gic(machine: str, version: int) -> str:
    """The ``-machine`` value with ``gic-version=N`` (replacing one already there), e.g. ``virt,gic-version=3``."""
    parts = [p for p in machine.split(",") if not re.match(r"gic[-_]version=", p)]
    return ",".join([*parts, f"gic-version={version}"])


def gic_variant(entry: HypervisorEntry, arch: str, version: int) -> HypervisorEntry:
    """The entry with the VM's GIC set to `version` in its machine options (``gic-version=N``, V2-7)."""
    settings = entry.arches[arch]
    variant = dataclasses.replace(settings, machine=machine_with_gic(settings.machine, version))
    return dataclasses.replace(entry, arches={**entry.arches, arch: variant})


def _opt(path: Path | str) -> str:
    """A file name as a QEMU option value: commas doubled (QEMU's escape), else ``a,b.img`` splits the option."""
    return str(path).replace(",", ",,")


# Host machines whose KVM can run a guest of each arch (an AArch32 guest needs an AArch64 host with EL1 AArch32).
KVM_HOSTS = {"aarch64": ("aarch64", "arm64"), "arm": ("aarch64", "arm64")}


def kvm_problem(guest_arch: str, host_machine: str | None = None, dev: Path = Path("/dev/kvm")) -> str | None:
    """Why ``-accel kvm`` cannot run a `guest_arch` VM on this host (None: it may).

    KVM runs guests of the host's own architecture only; vmconform's guests are Arm, so an x86 host
    is refused before the first case rather than failing every case.
    """
    machine = (host_machine or platform.machine()).lower()
    if machine not in KVM_HOSTS[guest_arch]:
        return f"KVM runs guests of the host's own architecture; this host is {machine}, the guest {guest_arch}"
    if not dev.exists():
        return f"{dev} does not exist (no KVM in this kernel or container)"
    if not os.access(dev, os.R_OK | os.W_OK):
        return f"{dev} is not readable and writable by this user (add it to the kvm group)"
    return None


class QemuBackend(Backend):
    """QEMU ``virt`` under TCG or KVM; the GIC version is a machine option."""

    name = "qemu"

    def preflight(self) -> None:
        if self.entry.accel != "kvm":
            return
        for arch in self.entry.arches:
            problem = kvm_problem(arch)
            if problem:
                raise ConfigError(
                    f"hypervisor {self.entry.name}: accel kvm cannot run here: {problem}; run it on an Arm64 host "
                    f"with /dev/kvm, or choose a TCG entry (--hypervisor qemu)"
                )

    def with_gic(self, arch: str, version: int) -> Backend:
        if version not in (2, 3, 4):
            raise GicUnsupported(f"GIC version {version}: QEMU virt offers gic-version 2, 3 and 4")
        return type(self)(gic_variant(self.entry, arch, version))

    def hotplug(self, arch: str, ports: int, control: Path) -> tuple[Backend, HotplugControl]:
        """`ports` pcie-root-ports (ids hp0, hp1, ...) and a QMP socket in `control` (keep its path short)."""
        from vmconform.hypervisors.qmp import QmpHotplug

        sock = control / "qmp.sock"
        args: list[str] = ["-qmp", f"unix:{_opt(sock)},server=on,wait=off"]
        for i in range(ports):
            args += ["-device", f"pcie-root-port,id=hp{i},chassis={i + 1},port={0x10 + i},bus=pcie.0"]
        s = self.entry.arches[arch]
        variant = dataclasses.replace(s, extra_args=(*s.extra_args, *args))
        backend = type(self)(dataclasses.replace(self.entry, arches={**self.entry.arches, arch: variant}))
        return backend, QmpHotplug(sock, tuple(f"hp{i}" for i in range(ports)))

    def command(self, req: BootRequest) -> list[str]:
        s = self.entry.arches[req.arch]
        argv = [
            resolve_binary(self.entry, req.arch),
            "-machine", s.machine,
            "-accel", self.entry.accel,
            "-cpu", s.cpu,
            "-m", s.memory,
            "-nodefaults",
            "-display", "none",
            "-nic", "none",
            "-monitor", "none",
            "-serial", "stdio",
            "-boot", "menu=on,splash-time=0",
        ]  # fmt: skip
        if sandbox_supported(argv[0]):
            argv += ["-sandbox", SANDBOX]
        if req.firmware.mapping == "bios":
            argv += ["-bios", str(req.firmware.code)]
        else:
            argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_opt(req.firmware.code)}"]
            if req.vars_path is not None:
                argv += ["-drive", f"if=pflash,format=raw,unit=1,file={_opt(req.vars_path)}"]
        for i, disk in enumerate(map(as_disk, req.disks)):
            ro = ",readonly=on" if disk.read_only else ""
            bs = disk.logical_block_size
            blocks = f",logical_block_size={bs},physical_block_size={bs}" if bs != 512 else ""
            argv += [
                "-drive", f"if=none,id=disk{i},format=raw,file={_opt(disk.path)}{ro}",
                "-device", f"virtio-blk-pci,drive=disk{i}{blocks}",
            ]  # fmt: skip
        argv += list(self.entry.extra_args) + list(s.extra_args)
        return argv

    def start(self, req: BootRequest, echo: Callable[[bytes], None] | None = None) -> Console:
        from vmconform.console import Console

        argv = self.command(req)
        (req.workdir / "command.sh").write_text(shlex.join(argv) + "\n")
        env = {**os.environ, TAG_ENV: req.tag} if req.tag else None
        return Console(argv, req.workdir, env=env, echo=echo)
