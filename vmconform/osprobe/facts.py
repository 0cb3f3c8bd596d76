"""What the OS probe reported, decoded: one typed value per line key (the lines the initramfs's /init prints).

Lines (``VMCONFORM <nonce> KEY field=value ...``, the UEFI probe's grammar, `vmconform.probe.protocol`; values
have no spaces, lists are comma-separated)::

    OSBOOT arch= release= mode= uptime= efi=yes|no acpi=yes|no dt=yes|no cmdline=<words,comma,separated>
    OSCPU online=<cpulist> present=<cpulist> count=<n>      (every mode)
    OSPSCI text=<the kernel's psci: lines, commas for spaces>
    OSSMP secondaries=<n booted> failed=<n> brought=<"Brought up ..." line>
    OSMEM memtotal_kb=<n> system_ram=<bytes of System RAM in /proc/iomem>
    OSPCI count=<n> devices=<bdf/vendor:device/class/driver,...>
    OSDEV uart=<driver> console=<active> virtio=<virtioN/id/driver,...> xen=<xenbus device/type/driver,...>
          gic=<GICvN from dmesg> irqchip= timer=virt|phys clocksource=
    OSRTC name= driver= epoch0= epoch1=          /sys/class/rtc/rtc0 at the start and the end of /init (not waited for)
    OSTIMER irq= count0= count1= line=           the arch_timer line of /proc/interrupts (summed over CPUs)
    OSHOTPLUG ready pci= hotplug_slots= / OSHOTPLUG seen blk= net= pci= / OSHOTPLUG gone blk= net= pci=
    OSVAR set|get mounted= status= present= data= attrs=
    END uptime=
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vmconform.probe.protocol import ProbeLine

__all__ = ["OsFacts", "PciDevice", "cpu_list"]

VIRTIO_IDS = {"0x0001": "net", "0x0002": "block", "0x0003": "console", "0x0004": "rng", "0x0005": "balloon"}


def cpu_list(text: str) -> tuple[int, ...]:
    """A kernel CPU list (``0-3,5``) as numbers; () when unreadable."""
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not m:
            return ()
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        out.extend(range(lo, hi + 1))
    return tuple(out)


def _int(text: str | None) -> int | None:
    try:
        return int(text or "", 0)
    except ValueError:
        return None


def _items(text: str | None) -> tuple[str, ...]:
    return tuple(x for x in (text or "").split(",") if x and x != "none")


@dataclass(frozen=True)
class PciDevice:
    """One PCI function as /sys/bus/pci/devices shows it."""

    address: str
    vendor: str
    device: str
    pci_class: str
    driver: str

    @staticmethod
    def parse(text: str) -> PciDevice | None:
        parts = text.split("/")
        if len(parts) != 4 or ":" not in parts[1]:
            return None
        vendor, _, device = parts[1].partition(":")
        return PciDevice(parts[0], vendor, device, parts[2], parts[3])

    def __str__(self) -> str:
        return f"{self.address} {self.vendor}:{self.device} class {self.pci_class} ({self.driver})"


@dataclass(frozen=True)
class OsFacts:
    """The OS probe's lines of one boot, by key (the last line of each key, HOTPLUG/VAR lines by phase)."""

    lines: Mapping[str, ProbeLine] = field(default_factory=dict)
    phases: Mapping[str, ProbeLine] = field(default_factory=dict)  # "OSHOTPLUG ready", "OSVAR set", ...

    @staticmethod
    def from_lines(lines: Sequence[ProbeLine]) -> OsFacts:
        by_key = {ln.key: ln for ln in lines}
        phases = {f"{ln.key} {ln.args[0]}": ln for ln in lines if ln.args}
        return OsFacts(by_key, phases)

    def field(self, key: str, name: str) -> str | None:
        line = self.lines.get(key)
        return None if line is None else line.fields.get(name)

    @property
    def booted(self) -> bool:
        """The kernel ran our /init (its OSBOOT line came)."""
        return "OSBOOT" in self.lines

    @property
    def finished(self) -> bool:
        return "END" in self.lines

    @property
    def description(self) -> str:
        """How the kernel was described: "ACPI", "DT", "ACPI and DT" or "nothing"."""
        acpi, dt = self.field("OSBOOT", "acpi") == "yes", self.field("OSBOOT", "dt") == "yes"
        return {(True, True): "ACPI and DT", (True, False): "ACPI", (False, True): "DT"}.get((acpi, dt), "nothing")

    @property
    def cmdline(self) -> str:
        return (self.field("OSBOOT", "cmdline") or "").replace(",", " ")

    @property
    def cpus_online(self) -> tuple[int, ...]:
        return cpu_list(self.field("OSCPU", "online") or "")

    @property
    def psci_text(self) -> str:
        return re.sub(r"\[,[0-9.]+\],", "", self.field("OSPSCI", "text") or "").replace(",", " ").strip()

    @property
    def psci_version(self) -> tuple[int, int] | None:
        """The PSCI version the kernel found (``psci: PSCIv1.1 detected in firmware``)."""
        m = re.search(r"PSCIv(\d+)\.(\d+) detected", self.psci_text)
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def secondaries(self) -> int | None:
        return _int(self.field("OSSMP", "secondaries"))

    @property
    def memory(self) -> int | None:
        """Bytes of System RAM the kernel found (/proc/iomem)."""
        return _int(self.field("OSMEM", "system_ram"))

    @property
    def pci(self) -> tuple[PciDevice, ...]:
        devs = (PciDevice.parse(x) for x in _items(self.field("OSPCI", "devices")))
        return tuple(d for d in devs if d is not None)

    @property
    def virtio(self) -> tuple[tuple[str, str], ...]:
        """(virtio type, driver) per virtio device the kernel bound."""
        out = []
        for item in _items(self.field("OSDEV", "virtio")):
            parts = item.split("/")
            if len(parts) == 3:
                out.append((VIRTIO_IDS.get(parts[1], parts[1]), parts[2] or "none"))
        return tuple(out)

    @property
    def xen(self) -> tuple[tuple[str, str], ...]:
        """(Xen PV device type, driver) per device on xenbus (a Xen domU): ("vbd", "vbd") is a disk xen-blkfront
        bound, ("vif", "vif") a network device xen-netfront bound."""
        out = []
        for item in _items(self.field("OSDEV", "xen")):
            parts = item.split("/")
            if len(parts) == 3:
                out.append((parts[1], parts[2] or "none"))
        return tuple(out)

    @property
    def boot_disk_driver(self) -> str | None:
        """The driver the boot disk's controller is bound to: ``virtio_blk`` or ``xen-blkfront`` (None: neither)."""
        if ("block", "virtio_blk") in self.virtio:
            return "virtio_blk"
        if ("vbd", "vbd") in self.xen:
            return "xen-blkfront"
        return None

    def dev(self, name: str) -> str:
        """An OSDEV field ("none" when absent): uart, console, gic, irqchip, timer, clocksource."""
        return self.field("OSDEV", name) or "none"

    @property
    def timer_counts(self) -> tuple[int, int] | None:
        c0, c1 = _int(self.field("OSTIMER", "count0")), _int(self.field("OSTIMER", "count1"))
        return (c0, c1) if c0 is not None and c1 is not None else None

    @property
    def timer_intid(self) -> int | None:
        """The timer's interrupt ID as the GIC numbers it (the /proc/interrupts line: chip, hwirq, ...)."""
        words = _items(self.field("OSTIMER", "line"))
        for i, w in enumerate(words):
            if w.startswith("GIC") and i + 1 < len(words):
                return _int(words[i + 1])
        return None

    @property
    def rtc(self) -> tuple[str, int | None, int | None]:
        """(rtc0's driver, its time at the start of /init, at the end) in seconds since the epoch."""
        return (
            self.field("OSRTC", "driver") or "none",
            _int(self.field("OSRTC", "epoch0")),
            _int(self.field("OSRTC", "epoch1")),
        )

    def phase(self, key: str, name: str) -> ProbeLine | None:
        return self.phases.get(f"{key} {name}")
