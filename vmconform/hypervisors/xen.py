"""The Xen backend: every case is a domU of a Xen-on-Arm host, nested under qemu-system-aarch64 here, or a real
Xen host reached over ssh (hypervisors.yaml ``xen_host:``; `vmconform.hypervisors.xen_hosts.RemoteHost`).

The host VM (Xen 4.17, a dom0 with ``xl`` and vmconform's agent: `vmconform.assets.xen`) is long-lived:
started by the first boot in a process (one per pytest-xdist worker), reused by every case after it, and
powered off by :meth:`XenBackend.close` at session end (its QEMU carries the run's tag, so the session
sweep finds it if a worker died). A case is:

1. its disks hard-linked into the folder shared with dom0 over 9p (copied into the work folder of a real host,
   and back after the domU ended), each ``losetup``-ed by the agent
   (``--sector-size 4096`` for 4Kn disks, read-only when asked) and given to the domU as ``phy:`` PV disks;
2. ``xl create`` of a domU whose kernel is the UEFI firmware (EDK2 ArmVirtXen, U-Boot xenguest), no vif,
   ``on_reboot="restart"`` (a guest's warm or cold reset rebuilds the domain, as Xen does);
3. its console relayed by the agent over the control port (`vmconform.assets.xen_host.Channel`), read by
   :class:`XenConsole` like any other console; EDK2 wraps its Xen console at 80 columns, so an
   80-column piece is joined with the line after it;
4. ``xl destroy`` whenever it did not end by itself (timeout, dead end, Ctrl-C, crash), then the loop
   devices detached and the links removed.

A power cycle (FW-4) is a destroy and a new ``xl create`` on the same disks. Variables: ArmVirtXen keeps
them in RAM (lost at every reset), U-Boot in ``\\ubootefi.var`` on the domU's own ESP.
"""

from __future__ import annotations

import copy as _copy
import os
import shlex
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmconform.console import ConsoleBase
from vmconform.enums import StoreKind
from vmconform.hypervisors import Backend, BootRequest, HotplugControl, VariableStore, as_disk
from vmconform.hypervisors.xen_hosts import HostVM, RemoteHost, XenDom0, XenHostError, ssh_argv
from vmconform.vm import VmShape, memory_bytes

if TYPE_CHECKING:
    from vmconform.assets.xen import XenHost
    from vmconform.assets.xen_host import Message
    from vmconform.config import HypervisorEntry
    from vmconform.firmware import Firmware
    from vmconform.hypervisors.xen_hotplug import XenHotplug

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
        try:
            devs = [self._attach(req, i) for i in range(len(req.disks))]
            text = config.replace("@DISKS@", ", ".join(f"'phy:{d},xvd{chr(ord('a') + i)},{m}'"
                                                       for i, (d, m) in enumerate(devs)))  # fmt: skip
            (req.workdir / "domu.cfg").write_text(text)
            self._request("create", name, _b64(text))
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


@dataclass
class _Host:
    """The host build and its running VM, shared by a backend and its `XenBackend.with_cpus` variants."""

    build: XenHost | None = None
    vm: XenDom0 | None = None
    remote: str = ""  # a real Xen host: what `xl info` said there at pre-flight


class XenBackend(Backend):
    """Cases as domUs of a nested Xen host (one host VM per process, started on first use)."""

    name = "xen"
    power_cycle = "the domU is destroyed and created again on the same disks"

    def __init__(self, entry: HypervisorEntry) -> None:
        super().__init__(entry)
        self._host = _Host()
        self._cpus = 1
        self._hotplug: XenHotplug | None = None  # set in the variant `hotplug` makes

    def with_cpus(self, arch: str, cpus: int) -> Backend:
        """The same host (one per process, shared by every variant), domUs with `cpus` vCPUs (xl's ``vcpus``)."""
        variant = _copy.copy(self)
        variant._cpus = cpus
        return variant

    def hotplug(self, arch: str, ports: int, control: Path) -> tuple[Backend, HotplugControl]:
        """The same host, and a control that adds PV devices to the variant's next domU through xl
        (`vmconform.hypervisors.xen_hotplug`); `ports` means nothing here: a domU has no PCI slots to fill."""
        from vmconform.hypervisors.xen_hotplug import XenHotplug

        variant = _copy.copy(self)
        variant._hotplug = XenHotplug(control)
        return variant, variant._hotplug

    def linux_console(self, arch: str) -> str:
        return "hvc0"  # a domU's console is Xen's PV console; it has no UART unless the config asks for a vuart

    def arches_not_run(self) -> dict[str, str]:
        return {"arm": "there is no AArch32 domU firmware to boot them (EDK2's ArmVirtXen builds for AARCH64 only, "
                "U-Boot has only xenguest_arm64); Xen on Arm does run AArch32 guests in principle"}  # fmt: skip

    def preflight(self) -> None:
        from vmconform.config import ConfigError

        for arch in self.entry.arches:
            if arch != "aarch64":
                raise ConfigError(
                    f"hypervisor {self.entry.name}: arch {arch}: this Xen host runs AArch64 domUs only (the domU "
                    f"firmwares here are AArch64 builds); remove {arch} from its arches"
                )
        if self.ssh is None:
            self.xen_host()
        else:
            self._host.remote = self._remote_preflight(self.ssh)

    @property
    def ssh(self) -> list[str] | None:
        """The ssh command of a real Xen host (the entry's ``xen_host:``), None for the nested host."""
        from vmconform.config import ConfigError

        value = self.entry.options.get("xen_host", "nested")
        if value == "nested":
            return None
        try:
            argv = ssh_argv(value)
        except ValueError as e:
            raise ConfigError(f"hypervisor {self.entry.name}: xen_host: {e}; write `nested` or an ssh command "
                              "such as `ssh -p 2222 root@xenhost`") from None  # fmt: skip
        if len(argv) < 2:
            raise ConfigError(f"hypervisor {self.entry.name}: xen_host: {value!r} is no ssh command with a "
                              "destination; write `nested` or e.g. `ssh -p 2222 root@xenhost`")  # fmt: skip
        return argv

    def _remote_preflight(self, ssh: list[str]) -> str:
        """Check a real Xen host before the first case: ssh reaches it, xl answers there, every firmware has its
        path there; returns the Xen version and dom0 kernel as `xl info` says them."""
        from vmconform.config import ConfigError

        for fwname, per_arch in self.entry.firmwares.items():
            for arch, ref in per_arch.items():
                if ref.kind != "xen_domu" or ref.code is None:
                    raise ConfigError(f"hypervisor {self.entry.name}: firmwares.{fwname}.{arch}: a real Xen host "
                                      "needs {xen_domu: KIND, path: /the/firmware/on/that/host}")  # fmt: skip
        script = 'command -v xl >/dev/null || { echo "no xl on this host (PATH=$PATH)" >&2; exit 3; }; xl info'
        try:
            p = subprocess.run([*ssh, script], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ConfigError(f"hypervisor {self.entry.name}: xen_host: {e}") from None
        said = [ln.strip() for ln in p.stderr.splitlines() if ln.strip()]
        info: dict[str, str] = {}
        for ln in p.stdout.splitlines():
            key, _, value = ln.partition(":")
            info[key.strip()] = value.strip()
        if p.returncode != 0 or "xen_major" not in info:
            why = said[-1] if said else f"ssh exit status {p.returncode} and no xen_major in xl info"
            raise ConfigError(f"hypervisor {self.entry.name}: xen_host {shlex.join(ssh)}: {why}")
        version = f"{info['xen_major']}.{info.get('xen_minor', '?')}{info.get('xen_extra', '')}"
        return (f"Xen {version} on {info.get('machine', '?')}, dom0 Linux {info.get('release', '?')}, "
                f"over ssh ({shlex.join(ssh)})")  # fmt: skip

    def xen_host(self) -> XenHost:
        """The cached Xen host build (built now when missing or stale: minutes)."""
        from vmconform.assets.cache import AssetError
        from vmconform.assets.xen import host
        from vmconform.config import ConfigError

        if self._host.build is not None:
            return self._host.build
        try:
            self._host.build = host()[0]
            return self._host.build
        except AssetError as e:
            raise ConfigError(f"hypervisor {self.entry.name}: the Xen host cannot be built: {e}") from None

    def _host_vm(self, tag: str) -> XenDom0:
        if self._host.vm is None or not self._host.vm.alive():
            run = tag.rsplit("/", 1)[0] if "/" in tag else tag
            ssh = self.ssh
            if ssh is None:
                self._host.vm = HostVM(self.xen_host(), f"{run}/xen-host-{os.getpid()}")
            else:
                self._host.vm = RemoteHost(ssh, self.entry.options["workdir"], f"{run}/xen-host-{os.getpid()}")
        return self._host.vm

    def describe(self) -> str:
        if self.ssh is not None:
            return self._host.remote or self._remote_preflight(self.ssh)
        build = self.xen_host()
        return f"Xen {build.xen_version} on Arm, dom0 Linux {build.kernel_release}, nested under QEMU TCG"

    def command(self, req: BootRequest) -> list[str]:
        return ["xl", "create", "-F", str(req.workdir / "domu.cfg")]

    def domu_config(self, req: BootRequest, name: str, kernel: str) -> str:
        s = self.entry.arches[req.arch]
        return (
            f'name="{name}"\nkernel="{kernel}"\nmemory={memory_bytes(s.memory) >> 20}\nvcpus={self._cpus}\n'
            f"disk=[@DISKS@]\nvif=[]\n"
            f'on_poweroff="destroy"\non_reboot="restart"\non_crash="destroy"\n'
        ) + self._vuart()

    def _vuart(self) -> str:
        """xl's ``vuart="sbsa_uart"`` when the entry asks for it (``vuart: sbsa_uart``): the domU then has an SBSA
        UART in its DT (Xen's emulated PL011 subset) besides its PV console; xl's default is none."""
        vuart = self.entry.options.get("vuart", "none")
        return f'vuart="{vuart}"\n' if vuart != "none" else ""

    def start(self, req: BootRequest, echo: Callable[[bytes], None] | None = None) -> ConsoleBase:
        fw = req.firmware
        if fw.xen_domu is None:
            return _failed(
                req, f"firmware {fw.name} is no Xen domU firmware (give xen_domu: in hypervisors.yaml)", echo
            )
        try:
            vm = self._host_vm(req.tag or str(req.workdir))
        except XenHostError as e:
            return _failed(req, str(e), echo)
        name = next(vm.names)
        config = self.domu_config(req, name, vm.kernel_path(fw))
        (req.workdir / "command.sh").write_text(
            f"# domU {name} of Xen {vm.xen_version}; its config is domu.cfg\nxl create -F domu.cfg\n# on {vm.where}\n"
        )
        console = XenConsole(vm, req, config, name, echo)
        if self._hotplug is not None:
            self._hotplug.bind(console)
        return console

    def shape(self, arch: str) -> VmShape:
        return VmShape(self._cpus, memory_bytes(self.entry.arches[arch].memory))

    def variable_store(self, firmware: Firmware) -> VariableStore:
        if firmware.xen_domu == "edk2":
            return VariableStore(StoreKind.RAM, "RAM only: ArmVirtXen emulates its variable store in memory "
                                 "(PcdEmuVariableNvModeEnable), lost at every reset", False)  # fmt: skip
        return VariableStore(StoreKind.ESP_FILE, "\\ubootefi.var on the domU's own ESP (inside the image)", True)

    def close(self) -> None:
        if self._host.vm is not None:
            self._host.vm.stop()
            self._host.vm = None


def _failed(req: BootRequest, why: str, echo: Callable[[bytes], None] | None) -> ConsoleBase:
    """A console whose VM never started: its only output is why, as the hypervisor's own words."""

    class Failed(ConsoleBase):
        def __init__(self) -> None:
            super().__init__(req.workdir, "console", echo)
            self._text: bytes | None = f"xl: {why}\n".encode()

        def _read(self, timeout: float) -> bytes | None:
            text, self._text = self._text, None
            return text

        def _reap(self, deadline: float) -> int | None:
            return 1

        def kill(self) -> None:
            self._eof = True

    return Failed()
