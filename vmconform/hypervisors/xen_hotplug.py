"""Hot-plug on Xen (PLAT-6 / V2-9): PV devices added to and removed from a running domU through dom0's ``xl``.

Xen has no PCI slots for a domU: a PV disk or network device is a pair of xenstore entries that dom0's backend
driver and the guest's front-end driver (xen-blkfront, xen-netfront) connect through. So the flow is:

- block: an empty sparse 64 MiB file shared with dom0, ``losetup``-ed by the agent, then
  ``xl block-attach <domU> phy:/dev/loopN,xvdX,w`` (xvdX: the letter after the case's own disks);
- network: ``xl network-attach <domU> mac=00:16:3e:...`` with a vif script of the agent's that joins no bridge
  (the guest only has to see the device appear; netback waits for the script's ``hotplug-status``);
- removal: ``xl block-detach`` / ``xl network-detach``, which wait for the guest's front end to let go;
  ``removed`` asks the agent what ``xl block-list`` / ``xl network-list`` still show.

The agent's ``err`` answer with xl's own words to a plug or unplug is a refusal by the hypervisor; anything else
(losetup failed, a request the agent found malformed, no answer) is an `OSError`: the harness's, not a claim
about Xen.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from vmconform.hypervisors import HotplugControl, HotplugRefused

if TYPE_CHECKING:
    from vmconform.assets.xen_host import Message
    from vmconform.hypervisors.xen_console import XenConsole

DISK_SIZE = 64 << 20
XVD_MAJOR = 202  # Linux's major for xvd*: xl block-list shows a PV disk's vdev as (202 << 8) | (index << 4)


def vdev_number(vdev: str) -> int:
    """The number ``xl block-list`` shows for ``xvdX``."""
    return (XVD_MAJOR << 8) | ((ord(vdev[-1]) - ord("a")) << 4)


def mac_of(dev_id: str) -> str:
    """A fixed MAC for a device ID in Xen's own OUI (00:16:3e), so a run's logs always show the same one."""
    low = hashlib.sha256(dev_id.encode()).digest()[:3]
    return "00:16:3e:" + ":".join(f"{b & 0x7F if i == 0 else b:02x}" for i, b in enumerate(low))


class XenHotplug(HotplugControl):
    """Adds and removes PV devices of the domU that the backend variant starts next (`bind` tells which)."""

    removed_words: ClassVar[str] = "xl block-list / network-list no longer show"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.console: XenConsole | None = None
        self.devices: dict[str, tuple[str, str]] = {}  # dev_id -> ("blk", "xvdb") or ("net", MAC)
        self._asked_gone: list[str] = []
        self._loops: list[str] = []
        self._shared: list[str] = []  # file names in the host's shared folder

    def bind(self, console: XenConsole) -> None:
        self.console = console

    def placement(self, ports: int) -> str:
        return "Xen PV devices (xl block-attach / network-attach into the running domU; no PCI ports involved)"

    def _con(self) -> XenConsole:
        if self.console is None:
            raise OSError("no domU is running: the hot-plug control was used before its VM started")
        return self.console

    def _ask(self, verb: str, *args: str) -> Message:
        """The agent's answer; HotplugRefused only when xl itself refused a plug or unplug (the agent's "xl:"
        answers), OSError for anything else that went wrong (losetup, a bad request, no answer: the harness's)."""
        from vmconform.assets.cache import AssetError
        from vmconform.assets.xen_host import AgentRefused

        try:
            return self._con().ask(verb, *args)
        except AgentRefused as e:
            if verb in ("plug", "unplug") and f"{verb} failed: xl: " in str(e):
                raise HotplugRefused(str(e)) from None
            raise OSError(str(e)) from None
        except AssetError as e:
            raise OSError(str(e)) from None

    def add(self, kind: str, dev_id: str, slot: int) -> str:
        from vmconform.hypervisors.xen_hosts import XenHostError

        con = self._con()
        if kind == "blk":
            vdev = "xvd" + chr(ord("a") + con.disk_count + sum(k == "blk" for k, _ in self.devices.values()))
            img = self.folder / f"{dev_id}.img"
            with open(img, "wb") as f:
                f.truncate(DISK_SIZE)
            rel = f"{con.name}-{dev_id}.img"
            try:
                con.vm.put(img, rel)
            except XenHostError as e:
                raise OSError(str(e)) from None
            self._shared.append(rel)
            loop = self._ask("attach", rel, "rw", "512").args[1]
            self._loops.append(loop)
            self._ask("plug", con.domid, "blk", loop, vdev)
            self.devices[dev_id] = ("blk", vdev)
            return f"xl block-attach {con.domid} phy:{loop},{vdev},w (an empty {DISK_SIZE >> 20} MiB disk)"
        if kind == "net":
            mac = mac_of(dev_id)
            self._ask("plug", con.domid, "net", mac)
            self.devices[dev_id] = ("net", mac)
            return f"xl network-attach {con.domid} mac={mac} (a vif on no bridge)"
        raise HotplugRefused(f"unknown device kind {kind!r} (blk or net)")

    def remove(self, dev_id: str) -> str:
        con = self._con()
        kind, handle = self.devices[dev_id]
        self._asked_gone.append(dev_id)
        self._ask("unplug", con.domid, kind, handle)
        return f"xl {'block' if kind == 'blk' else 'network'}-detach {con.domid} {handle}"

    def removed(self) -> tuple[str, ...]:
        """The devices asked to go that xl no longer lists for the domU."""
        if not self._asked_gone:
            return ()
        msg = self._ask("devices", self._con().domid)
        listed = dict(arg.split("=", 1) for arg in msg.args[1:] if "=" in arg)
        blks, nets = listed.get("blk", "").split(","), listed.get("net", "").split(",")
        gone = []
        for dev_id in self._asked_gone:
            kind, handle = self.devices[dev_id]
            still = str(vdev_number(handle)) in blks if kind == "blk" else handle in nets
            if not still:
                gone.append(dev_id)
        return tuple(gone)

    def close(self) -> None:
        """Detach the disk's loop device and take its file out of the host's folder (after the domU ended; the
        folder `folder` is its maker's to remove)."""
        from vmconform.assets.cache import AssetError

        con = self.console
        for loop in self._loops:
            try:
                if con is not None:
                    con.ask("detach", loop)
            except AssetError:  # the host is gone or stuck: the session end powers it off
                break
        for rel in self._shared:
            if con is not None:
                con.vm.drop(rel)
        self._loops, self._shared = [], []
