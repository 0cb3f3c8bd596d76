"""A minimal QMP client (QEMU Machine Protocol over a UNIX socket) for hot-plug (PLAT-6 / V2-9).

QEMU is started with ``-qmp unix:<path>,server=on,wait=off``; `QmpHotplug` connects on first use, negotiates
capabilities, and runs ``blockdev-add`` / ``device_add`` / ``device_del`` with the VM's pcie-root-ports as
buses. Asynchronous events are kept (``DEVICE_DELETED`` says an unplug completed). Every answer QEMU gives is
returned as text for the evidence; a refused command is a `HotplugRefused` with QEMU's own error message.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from vmconform.hypervisors import HotplugControl, HotplugRefused, retry_while_busy

__all__ = ["Qmp", "QmpHotplug"]


class Qmp:
    """One QMP connection: `execute` a command, read its answer, keep events aside."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(str(path))
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise HotplugRefused(f"QMP socket {path}: {e.strerror or e}") from None
                time.sleep(0.05)
        self._buf = b""
        greeting = self._read()
        if "QMP" not in greeting:
            raise HotplugRefused(f"QMP socket {path}: no greeting")
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise HotplugRefused(f"QMP socket {self.path}: QEMU closed it")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        value: dict[str, Any] = json.loads(line)
        return value

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run `command`; its ``return`` value, or HotplugRefused with QEMU's error description."""
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            answer = self._read()
            if "event" in answer:
                self.events.append(answer)
                continue
            if "error" in answer:
                err = answer["error"]
                raise HotplugRefused(f"{command}: {err.get('desc', err)}")
            return answer.get("return")

    def close(self) -> None:
        self.sock.close()


class QmpHotplug(HotplugControl):
    """Hot-plug through QMP onto the VM's pcie-root-ports (``bus`` None: QEMU chooses, i.e. the root bus)."""

    def __init__(self, path: Path, buses: tuple[str, ...]) -> None:
        self.path = path
        self.buses = buses
        self._qmp: Qmp | None = None
        self.log: list[str] = []

    def _q(self) -> Qmp:
        if self._qmp is None:
            self._qmp = Qmp(self.path)
        return self._qmp

    def _run(self, command: str, **arguments: Any) -> Any:
        self.log.append(f"{command} {json.dumps(arguments, sort_keys=True)}")
        try:
            result = self._q().execute(command, **arguments)
        except HotplugRefused as e:
            self.log.append(f"  -> error: {e}")
            raise
        self.log.append("  -> ok")
        return result

    def add(self, kind: str, dev_id: str, slot: int) -> str:
        bus = {"bus": self.buses[slot]} if slot < len(self.buses) else {}
        if kind == "blk":
            self._run("blockdev-add", driver="null-co", **{"node-name": f"{dev_id}-node"}, size=64 << 20)
            self._run("device_add", driver="virtio-blk-pci", drive=f"{dev_id}-node", id=dev_id, **bus)
        elif kind == "net":
            # romfile "": no option ROM (the guest boots no network; ipxe-qemu need not be installed)
            self._run("device_add", driver="virtio-net-pci", id=dev_id, romfile="", **bus)
        else:
            raise HotplugRefused(f"unknown device kind {kind!r} (blk or net)")
        where = f"bus {bus['bus']}" if bus else "no root port: QEMU's choice of bus"
        return f"device_add {'virtio-blk-pci' if kind == 'blk' else 'virtio-net-pci'} id={dev_id} ({where})"

    def remove(self, dev_id: str) -> str:
        retry_while_busy(lambda: self._run("device_del", id=dev_id))
        return f"device_del id={dev_id}"

    def removed(self) -> tuple[str, ...]:
        """The device IDs QEMU reported DEVICE_DELETED for so far."""
        if self._qmp is not None:
            try:
                self._qmp.execute("query-status")  # collects pending events
            except (HotplugRefused, OSError):
                pass
        events = self._qmp.events if self._qmp is not None else []
        return tuple(e.get("data", {}).get("device", "") for e in events if e.get("event") == "DEVICE_DELETED")

    def close(self) -> None:
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
