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
   `vmconform.hypervisors.xen_console.XenConsole` like any other console; EDK2 wraps its Xen console at 80
   columns, so an 80-column piece is joined with the line after it;
4. ``xl destroy`` whenever it did not end by itself (timeout, dead end, Ctrl-C, crash), then the loop
   devices detached and the links removed.

A power cycle (FW-4) is a destroy and a new ``xl create`` on the same disks. Variables: ArmVirtXen keeps
them in RAM (lost at every reset), U-Boot in ``\\ubootefi.var`` on the domU's own ESP.
"""

from __future__ import annotations

import copy as _copy
import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmconform.console import ConsoleBase
from vmconform.enums import StoreKind
from vmconform.hypervisors import Backend, BootRequest, HotplugControl, VariableStore
from vmconform.hypervisors.xen_console import XenConsole
from vmconform.hypervisors.xen_hosts import HostVM, RemoteHost, XenDom0, XenHostError, ssh_argv
from vmconform.vm import VmShape, memory_bytes

if TYPE_CHECKING:
    from vmconform.assets.xen import XenHost
    from vmconform.config import HypervisorEntry
    from vmconform.firmware import Firmware
    from vmconform.hypervisors.xen_hotplug import XenHotplug


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
