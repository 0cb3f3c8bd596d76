"""A Xen domU's console: what dom0's agent relays of it, read like any other console (`XenConsole`).

The console also owns the domU's life on the host: its disks shared and ``losetup``-ed, ``xl create``,
``xl destroy`` when it must end, the loop devices detached and the disks copied back afterwards (see
`vmconform.hypervisors.xen` for the whole case). EDK2 wraps its Xen console at 80 columns: an 80-column
piece is joined with the line after it.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vmconform.console import ConsoleBase
from vmconform.hypervisors import BootRequest, as_disk
from vmconform.hypervisors.xen_hosts import XenDom0, XenHostError

if TYPE_CHECKING:
    from vmconform.assets.xen_host import Message

REQUEST_TIMEOUT = 120.0  # seconds for one agent command (losetup over 9p, xl create's hotplug scripts)
WRAP = 80  # EDK2's console width on Xen: it breaks longer lines after this many columns
EXIT_WAIT = 15.0  # seconds a killed domU's xl create -F gets to end before its loop devices are detached


class XenConsole(ConsoleBase):
    """A domU's console as dom0's agent relays it; the domU is destroyed and its disks detached on exit."""

    def __init__(self, vm: XenDom0, req: BootRequest, config: str, name: str,
                 echo: Callable[[bytes], None] | None = None) -> None:  # fmt: skip
        super().__init__(req.workdir, "console", echo)
        self.vm, self.name = vm, name
        self._queue: deque[Message] = deque()
        self._links: list[str] = []  # the disks' names in the host's folder
        self._copies: list[tuple[str, Path]] = []  # (a copy in the host's folder, the case's disk): copied back
        self._loops: list[str] = []
        self._shutdown_code: int | None = None
        self._ended = False
        self._failed = ""
        self.domid = ""  # Xen's number for the running domain (a restart by on_reboot makes a new one)
        try:
            devs = [self._attach(req, i) for i in range(len(req.disks))]
            text = config.replace("@DISKS@", ", ".join(f"'phy:{d},xvd{chr(ord('a') + i)},{m}'"
                                                       for i, (d, m) in enumerate(devs)))  # fmt: skip
            (req.workdir / "domu.cfg").write_text(text)
            self.domid = self._request("create", name, _b64(text)).args[1]
        except XenHostError as e:
            self._failed = str(e)

    def ask(self, verb: str, *args: str) -> Message:
        """One request to the agent (AgentRefused: its err answer; AssetError: no answer); the console messages
        that arrive meanwhile are kept for this console (a hot-plug request is made while the console is read)."""
        try:
            return self.vm.channel.request(verb, *args, timeout=REQUEST_TIMEOUT)
        finally:
            self._take_pending()

    def _take_pending(self) -> None:
        self._queue.extend(self.vm.channel.pending)
        self.vm.channel.pending.clear()

    def _request(self, verb: str, *args: str) -> Message:
        from vmconform.assets.cache import AssetError

        try:
            return self.ask(verb, *args)
        except AssetError as e:
            raise XenHostError(f"{e} (host console tail: {self.vm.tail()})") from None

    @property
    def disk_count(self) -> int:
        """The disks the domU was created with (xvda, xvdb, ...)."""
        return len(self._loops)

    def _attach(self, req: BootRequest, i: int) -> tuple[str, str]:
        disk = as_disk(req.disks[i])
        rel = f"{self.name}-{i}.img"
        self._links.append(rel)
        if self.vm.put(disk.path, rel) and not disk.read_only:
            self._copies.append((rel, disk.path))
        msg = self._request("attach", rel, "ro" if disk.read_only else "rw", str(disk.logical_block_size))
        self._loops.append(msg.args[1])
        return msg.args[1], "r" if disk.read_only else "w"

    def _read(self, timeout: float) -> bytes | None:
        if self._failed:  # the domU never ran: say why as the hypervisor's own words, then end
            text, self._failed = f"xl: {self._failed}\n", ""
            self._ended, self.exit_status = True, 1
            return text.encode()
        self._take_pending()
        if self._ended and not self._queue:
            return None
        if not self._queue:
            for msg in self.vm.channel.messages(time.monotonic() + timeout):
                self._queue.append(msg)
                break
            if not self._queue and not self.vm.alive():
                self._ended, self.exit_status = True, 1
                return f"xl: the Xen host VM died (host console tail: {self.vm.tail()})\n".encode()
        out = b""
        while self._queue:
            msg = self._queue.popleft()
            if not msg.args or msg.args[0] != self.name:
                continue  # another boot's late message, or the agent's own log
            if msg.kind == "console":
                out += msg.payload
            elif msg.kind == "xl":  # what xl create -F printed besides its progress (warnings, errors)
                out += b"xl: " + msg.payload.rstrip(b"\n") + b"\n"
            elif msg.kind == "event" and len(msg.args) > 2 and msg.args[1] == "started":
                self.domid = msg.args[2]
            elif msg.kind == "event" and len(msg.args) > 2 and msg.args[1] == "shutdown" and msg.args[2].isdigit():
                self._shutdown_code = int(msg.args[2])
            elif msg.kind == "event" and msg.args[1:2] == ("exited",):
                self._ended = True
                self.exit_status = 0 if self._shutdown_code == 0 else 1
                break
        return out

    def _lines_of(self, text: bytes) -> tuple[list[bytes], bytes]:
        """EDK2 breaks its Xen console lines after WRAP columns: a line of whole screen rows (a multiple of WRAP
        characters, counted with what is already carried, even across reads) is joined with the next piece; a
        probe line glued to a firmware prompt starts a line of its own."""
        *complete, rest = text.split(b"\n")
        out: list[bytes] = []
        carry = b""
        for piece in complete:
            if piece and len(carry + piece) % WRAP == 0:  # a whole number of screen rows: the line goes on
                carry += piece
                continue
            line, carry = carry + piece, b""
            at = line.find(b"VMCONFORM ")
            if at > 0:
                out += [line[:at], line[at:]]
            else:
                out.append(line)
        return out, carry + rest

    def _reap(self, deadline: float) -> int | None:
        return self.exit_status

    def _alive(self) -> bool:
        return not self._ended

    def kill(self) -> None:
        if not self._ended:
            try:
                self._request("destroy", self.name)
                self._await_exit(time.monotonic() + EXIT_WAIT)  # its disks are detached only after xl let go
            except XenHostError:
                pass  # the host is gone or stuck: the host VM is killed at session end
            self._ended = True
            self.signal_status = signal.SIGKILL
            self.exit_status = None

    def _await_exit(self, deadline: float) -> None:
        """Wait for the agent's "exited" event of this domU (its ``xl create -F`` ended), keeping other messages."""
        self._take_pending()
        while not any(m.kind == "event" and m.args[:2] == (self.name, "exited") for m in self._queue):
            if time.monotonic() >= deadline or not self.vm.alive():  # a dead host's channel is at EOF: no wait
                return
            for msg in self.vm.channel.messages(min(deadline, time.monotonic() + 1.0)):
                self._queue.append(msg)

    def _release(self) -> None:
        for dev in self._loops:
            try:
                self._request("detach", dev)
            except XenHostError:
                break
        for rel, disk in self._copies:
            try:
                self.vm.take(rel, disk)
            except XenHostError as e:  # the case's verdicts read the disk: say why it is not the domU's
                self._feed(f"xl: {e}\n".encode(), from_vm=False)
        for rel in self._links:
            self.vm.drop(rel)


def _b64(text: str) -> str:
    from vmconform.assets.xen_host import b64

    return b64(text)
