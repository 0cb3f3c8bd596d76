"""The libvirt backend's domain XML: an entry's QEMU-style settings (machine, cpu, memory) in libvirt's words.

One transient domain per boot: ``type='qemu'`` (TCG) or ``kvm``/``hvf`` per ``accel``; UEFI CODE as a read-only
pflash ``<loader>`` and the per-boot VARS copy as ``<nvram>`` (never the vendor template), or a boot ROM as
``<loader type='rom'>``; virtio raw disks in boot order; the GIC version as ``<gic version=N/>``; no network,
graphics, USB or balloon; one serial port on a pty; ``<bootmenu enable='yes' timeout='0'/>``. The domain's
name is derived from the boot's tag and work folder; the tag is in ``<metadata>`` (for the sweep) and in
QEMU's environment (for the process sweep).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from vmconform.config import HypervisorEntry
from vmconform.enums import Arch
from vmconform.hypervisors import BootRequest, as_disk
from vmconform.reaper import TAG_ENV

NAME_PREFIX = "vmconform-"
METADATA_NS = "urn:vmconform:libvirt:1"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
LIBVIRT_ARCH = {"aarch64": "aarch64", "arm": "armv7l"}
DOMAIN_TYPE = {"tcg": "qemu", "kvm": "kvm", "hvf": "hvf"}
MEMORY_UNITS = {"": "MiB", "K": "KiB", "M": "MiB", "G": "GiB", "T": "TiB"}  # QEMU -m: no suffix means MiB


def domain_name(req: BootRequest) -> str:
    """Unique per boot (a boot's work folder is private to it) and stable between command() and start()."""
    key = f"{req.tag}\0{req.workdir.resolve()}".encode()
    return NAME_PREFIX + hashlib.sha256(key).hexdigest()[:16]


# --- the entry's QEMU-style settings, in libvirt's words ----------------------


@dataclass(frozen=True)
class Machine:
    name: str
    acpi: bool | None = None  # None: QEMU's default (on for aarch64 'virt' with UEFI)
    gic_version: str | None = None


def parse_machine(value: str) -> Machine:
    """``virt[,acpi=on|off][,gic-version=N]`` -> Machine; other options have no libvirt element here."""
    name, *opts = value.split(",")
    acpi: bool | None = None
    gic: str | None = None
    for opt in opts:
        key, _, val = opt.partition("=")
        if key == "acpi" and val in ("on", "off", "auto"):
            acpi = None if val == "auto" else val == "on"
        elif key == "gic-version" and val:
            gic = val
        else:
            raise ValueError(f"machine option {opt!r} has no libvirt equivalent here (supported: acpi=, gic-version=)")
    if not name:
        raise ValueError("machine type is empty")
    return Machine(name, acpi, gic)


def parse_memory(value: str) -> tuple[int, str]:
    """QEMU ``-m`` syntax (``512M``, ``1G``, ``512``) -> (amount, libvirt unit)."""
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)(?:i?B)?", value.strip(), re.IGNORECASE)
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"memory {value!r} is not a size like 512M or 1G")
    return int(m.group(1)), MEMORY_UNITS[m.group(2).upper()]


def cpu_element(value: str) -> ET.Element:
    """QEMU ``-cpu`` syntax (``cortex-a57``, ``host``, ``max``, ``host,aarch64=off``) -> ``<cpu>``."""
    model, *opts = value.split(",")
    cpu = ET.Element("cpu")
    if model == "host":
        cpu.attrib.update(mode="host-passthrough", check="none")
    elif model == "max":
        cpu.attrib.update(mode="maximum", check="none")
    elif model:
        cpu.attrib.update(mode="custom", match="exact", check="none")
        ET.SubElement(cpu, "model", fallback="forbid").text = model
    else:
        raise ValueError("cpu model is empty")
    for opt in opts:
        name, _, val = opt.partition("=")
        if not name or val not in ("on", "off"):
            raise ValueError(f"cpu option {opt!r} is not name=on or name=off")
        ET.SubElement(cpu, "feature", policy="require" if val == "on" else "disable", name=name)
    return cpu


# --- the domain XML -----------------------------------------------------------------


def serial_log(req: BootRequest) -> Path:
    """Where libvirt (virtlogd) logs the domain's serial port: the boot's work folder."""
    return req.workdir / "serial.log"


def domain_xml(
    entry: HypervisorEntry,
    req: BootRequest,
    emulator: str,
    run_as: tuple[int, int] | None,
) -> str:
    """The transient domain for one boot; ``run_as`` (uid, gid) pins QEMU's user, None leaves it to libvirt."""
    s = entry.arches[req.arch]
    machine = parse_machine(s.machine)
    amount, unit = parse_memory(s.memory)
    dom = ET.Element("domain", {"type": DOMAIN_TYPE[entry.accel], "xmlns:qemu": QEMU_NS})
    ET.SubElement(dom, "name").text = domain_name(req)
    ET.SubElement(dom, "description").text = f"vmconform boot {TAG_ENV}={req.tag} workdir={req.workdir}"
    meta = ET.SubElement(dom, "metadata")
    ET.SubElement(meta, "vmconform:boot", {"xmlns:vmconform": METADATA_NS, "tag": req.tag, "workdir": str(req.workdir)})
    ET.SubElement(dom, "memory", unit=unit).text = str(amount)
    ET.SubElement(dom, "vcpu").text = "1"

    os_ = ET.SubElement(dom, "os")
    ET.SubElement(os_, "type", arch=LIBVIRT_ARCH[req.arch], machine=machine.name).text = "hvm"
    fw = req.firmware
    if fw.mapping == "bios":
        ET.SubElement(os_, "loader", type="rom").text = str(fw.code)
    else:
        if req.vars_path is None:
            raise ValueError(f"{fw.name}/{req.arch}: pflash firmware needs a per-boot vars copy (vars_path)")
        ET.SubElement(os_, "loader", readonly="yes", type="pflash").text = str(fw.code)
        ET.SubElement(os_, "nvram").text = str(req.vars_path)
    ET.SubElement(os_, "bootmenu", enable="yes", timeout="0")

    features = ET.Element("features")
    # QEMU's default for aarch64 'virt' with UEFI; libvirt allows ACPI only with a pflash (UEFI) loader.
    if machine.acpi or (machine.acpi is None and req.arch == Arch.AARCH64 and fw.mapping != "bios"):
        ET.SubElement(features, "acpi")
    if machine.gic_version is not None:
        ET.SubElement(features, "gic", version=machine.gic_version)
    if len(features):
        dom.append(features)
    dom.append(cpu_element(s.cpu))
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"

    devices = ET.SubElement(dom, "devices")
    ET.SubElement(devices, "emulator").text = emulator
    for i, disk in enumerate(map(as_disk, req.disks)):
        d = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(d, "driver", name="qemu", type="raw")
        ET.SubElement(d, "source", file=str(disk.path))
        ET.SubElement(d, "target", dev="vd" + _disk_letters(i), bus="virtio")
        bs = disk.logical_block_size
        if bs != 512:
            ET.SubElement(d, "blockio", logical_block_size=str(bs), physical_block_size=str(bs))
        if disk.read_only:
            ET.SubElement(d, "readonly")
        ET.SubElement(d, "boot", order=str(i + 1))
    ET.SubElement(devices, "controller", type="usb", model="none")
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=str(serial_log(req)), append="off")  # virtlogd's copy: a second source
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    ET.SubElement(devices, "memballoon", model="none")

    if run_as is not None:
        label = ET.SubElement(dom, "seclabel", type="static", model="dac", relabel="no")
        ET.SubElement(label, "label").text = f"+{run_as[0]}:+{run_as[1]}"
    qemu = ET.Element("qemu:commandline")
    for arg in (*entry.extra_args, *s.extra_args):
        ET.SubElement(qemu, "qemu:arg", value=arg)
    if req.tag:
        ET.SubElement(qemu, "qemu:env", name=TAG_ENV, value=req.tag)
    if len(qemu):
        dom.append(qemu)
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


def _disk_letters(i: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa (libvirt's vdX naming)."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(ord("a") + r) + out
    return out
