"""Hypervisor backends: one module each, behind :class:`Backend`, found through one registry (`BACKENDS`).

A backend turns a :class:`BootRequest` (disks, firmware, a private work folder) into a running VM whose
serial console is a :class:`~vmconform.console.Console`, and declares what it can do instead of leaving
callers to guess:

- :meth:`Backend.preflight`: can it run at all here (a daemon answers, ``/dev/kvm`` is usable)?
- :meth:`Backend.sweep`: VMs of a run that it keeps outside vmconform's own processes (libvirt domains);
- :meth:`Backend.console_log`: its own log of the serial port, read when the console lost the last lines;
- :meth:`Backend.close`: end what it keeps running across boots (Xen's host VM), at session end;
- :meth:`Backend.shape`: the vCPUs and memory a VM really gets;
- :meth:`Backend.gic_versions` / :meth:`Backend.with_gic`: the GIC versions it can give a VM (V2-7);
- :attr:`Backend.power_cycle`: how a power cycle happens (FW-4);
- :meth:`Backend.variable_store`: what kind of variable store a VM gets, and how the host reads it;
- :meth:`Backend.with_cpus`: the same VM with N vCPUs (the OS probe's ``-smp 4``);
- :meth:`Backend.linux_console`: the Linux console device the VM's console is on (the OS probe's ``console=``);
- :meth:`Backend.arches_not_run`: guest arches it does not run, and why (said once in the run's notes);
- :meth:`Backend.hotplug` (optional): a VM with hot-plug ports and a :class:`HotplugControl` to add and remove
  block and network devices while it runs (PLAT-6 / V2-9); `HotplugUnsupported` when the backend has none.

Adding a backend is one module here, its line in `BACKENDS` and an entry in ``hypervisors.yaml``.
Nothing heavy is imported until a backend is made (:func:`backend_for`).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from vmconform.enums import StoreKind
from vmconform.vm import Disk, VmShape, as_disk, configured_cpus, memory_bytes

if TYPE_CHECKING:
    from vmconform.config import HypervisorEntry
    from vmconform.console import ConsoleBase
    from vmconform.firmware import Firmware

__all__ = [
    "BACKENDS",
    "Backend",
    "BootRequest",
    "Disk",
    "GicUnsupported",
    "HotplugControl",
    "HotplugRefused",
    "HotplugUnsupported",
    "Leftover",
    "VariableStore",
    "as_disk",
    "backend_for",
    "retry_while_busy",
]

BACKENDS: dict[str, str] = {
    "qemu": "vmconform.hypervisors.qemu:QemuBackend",
    "libvirt": "vmconform.hypervisors.libvirt:LibvirtBackend",
    "xen": "vmconform.hypervisors.xen:XenBackend",
}
"""Every backend: its ``hypervisors.yaml`` name and the class that implements it (imported on use)."""


@dataclass(frozen=True)
class BootRequest:
    arch: str
    disks: tuple[Path | Disk, ...]  # in boot-option order; a Path means Disk(path)
    firmware: Firmware
    workdir: Path  # private to this boot: vars copy, transcripts, command line
    vars_path: Path | None  # the writable variable store this boot uses (a per-case copy); None: none
    tag: str = ""  # put in the VM process's environment (vmconform.reaper) so a sweep can find it


@dataclass(frozen=True)
class Leftover:
    """A VM of this run found alive at session end (e.g. a libvirt domain), by name and tag."""

    name: str
    tag: str


@dataclass(frozen=True)
class VariableStore:
    """The variable store a VM gets: its kind, in words for evidence, and whether the host can read it."""

    kind: StoreKind
    description: str
    host_readable: bool  # the host reads variables out of it after the VM powered off (varstore, varstore_uboot)


class GicUnsupported(ValueError):
    """The backend cannot give the VM the GIC version asked for (the message says why)."""


class HotplugUnsupported(ValueError):
    """The backend cannot hot-plug devices into a running VM (the message says why)."""


class HotplugRefused(RuntimeError):
    """The hypervisor refused a hot-plug request; the message is its own answer (the evidence)."""


BUSY_RETRY = 15.0
"""Seconds a removal is asked again while QEMU answers that the guest is busy: it refuses ``device_del`` while
the slot's power indicator blinks (the guest's pciehp is still powering the slot on after the hot-plug), which
passes within seconds; a guest still busy after that is the VM's refusal."""


def retry_while_busy(ask: Callable[[], None]) -> None:
    """`ask` (a removal through QEMU), asked again every 0.5 s for up to BUSY_RETRY s while "guest is busy"."""
    import time

    deadline = time.monotonic() + BUSY_RETRY
    while True:
        try:
            return ask()
        except HotplugRefused as e:
            if "guest is busy" not in str(e) or time.monotonic() >= deadline:
                raise
        time.sleep(0.5)


class HotplugControl(ABC):
    """Adding and removing devices of a running VM (made by :meth:`Backend.hotplug`, used once the VM runs)."""

    @abstractmethod
    def add(self, kind: str, dev_id: str, slot: int) -> str:
        """Hot-plug a `kind` ("blk": virtio-blk, "net": virtio-net) device into hot-plug port `slot`; what was done
        (HotplugRefused with the hypervisor's answer when it refuses)."""

    @abstractmethod
    def remove(self, dev_id: str) -> str:
        """Ask for the device's removal (the guest completes it); what was done."""

    def removed(self) -> tuple[str, ...]:
        """Device IDs whose removal the hypervisor reported complete."""
        return ()

    # how `removed` knows, in the verdict's words ("... for vmc-hp-blk, vmc-hp-net")
    removed_words: ClassVar[str] = "QEMU reported DEVICE_DELETED for"

    def placement(self, ports: int) -> str:
        """Where the devices go, for the verdict's evidence."""
        return f"{ports} pcie-root-port(s)"

    def describe(self) -> str:
        """The hypervisor in words for the report (its product and version), "" when the backend cannot tell."""
        return ""

    def close(self) -> None:
        return None


class Backend(ABC):
    """One hypervisor backend, made from its ``hypervisors.yaml`` entry."""

    name: ClassVar[str]
    power_cycle: ClassVar[str] = "the VM powers off and a new VM is started on the same variable store"

    def __init__(self, entry: HypervisorEntry) -> None:
        self.entry = entry

    @abstractmethod
    def command(self, req: BootRequest) -> list[str]:
        """The full command line that starts the VM (also written to the work folder)."""

    @abstractmethod
    def start(self, req: BootRequest, echo: Callable[[bytes], None] | None = None) -> ConsoleBase:
        """Start the VM; its console is returned (use it as a context manager)."""

    def preflight(self) -> None:
        """Raise ``config.ConfigError`` (one line: the cause and what to do) when this backend cannot run here."""
        return None

    def sweep(self, run_id: str) -> list[Leftover]:
        """Destroy this run's VMs that outlived their case outside vmconform's processes; name them."""
        return []

    def describe(self) -> str:
        """The hypervisor in words for the report (its product and version), "" when the backend cannot tell."""
        return ""

    def close(self) -> None:
        """End what the backend keeps running across boots (a long-lived host VM); called at session end."""
        return None

    def console_log(self, req: BootRequest) -> Path | None:
        """The backend's own log of the VM's serial port, a second source when the console loses output (None:
        the backend keeps none)."""
        return None

    def shape(self, arch: str) -> VmShape:
        """The vCPUs and memory a VM of `arch` gets from this entry."""
        s = self.entry.arches[arch]
        return VmShape(configured_cpus([*self.entry.extra_args, *s.extra_args]), memory_bytes(s.memory))

    def gic_versions(self, arch: str) -> tuple[int, ...]:
        """The GIC versions this backend can give a VM of `arch` (the entry's ``gic_versions``)."""
        return self.entry.arches[arch].gic_versions

    def with_gic(self, arch: str, version: int) -> Backend:
        """The same backend with the VM's GIC set to `version`; GicUnsupported when it cannot set it."""
        raise GicUnsupported(f"hypervisor {self.entry.name}: backend {self.name} cannot set the GIC version")

    def with_cpus(self, arch: str, cpus: int) -> Backend:
        """The same backend with `cpus` vCPUs for `arch` (QEMU's ``-smp``, also through libvirt's qemu:commandline,
        with the topology spelled out so it overrides libvirt's own ``-smp 1,sockets=1,...``)."""
        import dataclasses

        s = self.entry.arches[arch]
        smp = ("-smp", f"cpus={cpus},sockets={cpus},cores=1,threads=1")
        variant = dataclasses.replace(s, extra_args=(*s.extra_args, *smp))
        return type(self)(dataclasses.replace(self.entry, arches={**self.entry.arches, arch: variant}))

    def linux_console(self, arch: str) -> str:
        """The device Linux writes its console to on this VM's console: the PL011 of QEMU's virt machine."""
        return "ttyAMA0"

    def arches_not_run(self) -> dict[str, str]:
        """Guest arches this backend does not run, each with why: a run says so once in its notes, and an --arch
        naming one stops before the first boot with the reason."""
        return {}

    def hotplug(self, arch: str, ports: int, control: Path) -> tuple[Backend, HotplugControl]:
        """A variant whose VMs get `ports` hot-plug ports (0: none, the negative control) and a control channel in
        folder `control`, with the object that drives it; HotplugUnsupported when the backend has no hot-plug."""
        raise HotplugUnsupported(f"hypervisor {self.entry.name}: backend {self.name} has no hot-plug control yet")

    def variable_store(self, firmware: Firmware) -> VariableStore:
        """What a VM booted with `firmware` keeps its non-volatile variables in."""
        if firmware.vars_template is not None:
            return VariableStore(
                StoreKind.PFLASH_FILE, f"a per-VM copy of {firmware.vars_template.name} on pflash", True
            )
        return VariableStore(
            StoreKind.BOOT_ROM,
            f"none of its own: {firmware.name} is the boot ROM (-bios), so variables live in RAM or on the ESP",
            False,
        )


def backend_for(entry: HypervisorEntry) -> Backend:
    """The backend an entry names (`BACKENDS`); config validation has already checked the name."""
    try:
        module_name, _, class_name = BACKENDS[entry.backend].partition(":")
    except KeyError:
        raise ValueError(f"no backend module for {entry.backend!r}; known: {', '.join(BACKENDS)}") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    backend: Backend = cls(entry)
    return backend
