"""Hot-plug on the libvirt backend (PLAT-6 / V2-9): devices attached and detached with virsh while the domain runs.

`hotplug_variant` gives a backend whose domains get `ports` extra ``pcie-root-port`` controllers (libvirt also
adds its own: one per PCIe device and a spare) and a `VirshHotplug` that knows the domain once it is started:
``virsh attach-device --live`` with a virtio disk (a sparse file in the control folder) or a virtio interface
(user-mode networking), each with a user alias, and ``virsh detach-device-alias --live`` to remove it.
libvirt's answer to a refused request is the `HotplugRefused` message.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vmconform.hypervisors import BootRequest, HotplugControl, HotplugRefused, retry_while_busy
from vmconform.hypervisors.libvirt import LibvirtBackend, _one_line, virsh
from vmconform.hypervisors.libvirt_xml import domain_name

if TYPE_CHECKING:
    from vmconform.console import Console

__all__ = ["VirshHotplug", "hotplug_variant"]


class VirshHotplug(HotplugControl):
    """Adds and removes devices of one running domain with virsh."""

    def __init__(self, uri: str, folder: Path) -> None:
        self.uri, self.folder = uri, folder
        self.domain = ""
        self.done: list[str] = []

    def _virsh(self, *args: str) -> None:
        if not self.domain:
            raise HotplugRefused("the domain has not been started")
        try:
            r = virsh(self.uri, *args)
        except subprocess.TimeoutExpired:
            raise HotplugRefused(f"virsh {args[0]} did not answer") from None
        if r.returncode != 0:
            raise HotplugRefused(f"virsh {args[0]}: {_one_line(r.stderr or r.stdout)}")

    def add(self, kind: str, dev_id: str, slot: int) -> str:
        alias = f"ua-{dev_id}"
        if kind == "blk":
            disk = self.folder / f"{dev_id}.img"
            with disk.open("wb") as f:
                f.truncate(64 << 20)
            dev = ET.Element("disk", type="file", device="disk")
            ET.SubElement(dev, "driver", name="qemu", type="raw")
            ET.SubElement(dev, "source", file=str(disk))
            ET.SubElement(dev, "target", dev="vdz", bus="virtio")
        elif kind == "net":
            dev = ET.Element("interface", type="user")
            ET.SubElement(dev, "model", type="virtio")
            ET.SubElement(dev, "rom", enabled="no")
        else:
            raise HotplugRefused(f"unknown device kind {kind!r} (blk or net)")
        ET.SubElement(dev, "alias", name=alias)
        xml = self.folder / f"{dev_id}.xml"
        xml.write_text(ET.tostring(dev, encoding="unicode"))
        self._virsh("attach-device", self.domain, str(xml), "--live")
        return f"virsh attach-device --live {'virtio disk' if kind == 'blk' else 'virtio interface'} alias {alias}"

    def remove(self, dev_id: str) -> str:
        retry_while_busy(lambda: self._virsh("detach-device-alias", self.domain, f"ua-{dev_id}", "--live"))
        self.done.append(dev_id)
        return f"virsh detach-device-alias --live ua-{dev_id}"


def hotplug_variant(
    backend: LibvirtBackend, arch: str, ports: int, control: Path
) -> tuple[LibvirtBackend, VirshHotplug]:
    """`backend` with `ports` extra pcie-root-ports per domain and the control that drives its domains."""
    ctl = VirshHotplug(backend.uri, control)

    class Variant(LibvirtBackend):
        def domain_xml(self, req: BootRequest) -> str:
            dom = ET.fromstring(super().domain_xml(req))
            devices = dom.find("devices")
            for i in range(ports):  # indexes past those libvirt gives its own ports
                if devices is not None:
                    ET.SubElement(devices, "controller", type="pci", index=str(20 + i), model="pcie-root-port")
            return ET.tostring(dom, encoding="unicode") + "\n"

        def start(self, req: BootRequest, echo: Callable[[bytes], None] | None = None) -> Console:
            ctl.domain = domain_name(req)
            return super().start(req, echo)

    return Variant(backend.entry), ctl
