"""Running the nested Xen host VM and talking to its dom0 agent: the harness side of the control channel.

The host VM is long-lived: started once, then each case is a domU that dom0's agent
(vmconform/assets/dom0/agent, whose header is the protocol's reference) creates, relays and destroys
on command. The channel is its own virtio-serial port (``virtserialport`` named ``org.vmconform.ctl``
on a ``virtio-serial-device``), never the Xen/dom0 console: the harness listens on a Unix socket and
QEMU connects to it as a client at start, so no line dom0 sends can be lost before the harness is there.
Every line is ``@vmc <number> <word> [args]``; payloads are base64.

How a case's disks reach dom0 (chosen and measured for this design): the harness's work folder is
shared into the host VM with 9p (``-fsdev local,security_model=none`` + ``virtio-9p-device``, mounted at
/work in dom0), and the agent ``losetup``s the case's image (``--sector-size 4096`` for 4Kn disks,
``-r`` when read-only), which becomes ``phy:/dev/loopN`` in the domU config. The alternative, hot-plugging
virtio disks through QMP, does not exist on this machine type: ``virt``'s virtio-mmio transports are fixed
at machine creation and not hot-pluggable, and PCI hot-plug would need PCIe root ports and dom0 PCI
under Xen on Arm, which Xen 4.17 treats as experimental. 9p needs no host VM restart and no device
bookkeeping; reads and writes go to the image file the harness hands in (a fresh copy per case when
the domU writes to it). Measured (2026-12-04, 2 cores, load 4-5 from other test runs): ``attach`` answers
in 0.09-0.10 s (``ro 4096`` gives a read-only loop device with 4096-byte logical sectors, as ``losetup -l``
shows); U-Boot's PV-disk connect took 28 s on a loop device over a dom0 tmpfs copy and 31 s over 9p in the
same host VM (the wait is U-Boot's 1 ms xenstore polling under load, not the disk path), EDK2 booted to
the probe's END 11 s after ``create`` over 9p; with a quiet machine ``create`` -> BOOT line was 6.8 s
(EDK2) and 11 s (U-Boot), the host VM ``ready`` 15.5 s after QEMU started.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vmconform.assets.cache import AssetError
from vmconform.assets.xen import DOM0_OPTIONS, HostShape, XenHost, xen_options

AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
PORT_NAME = "org.vmconform.ctl"
SHARE_TAG = "vmcwork"


@dataclass(frozen=True)
class Message:
    """One line from dom0: its number, its kind (ready, ok, err, console, event, xl, log) and the rest."""

    n: int
    kind: str
    args: tuple[str, ...]

    @property
    def payload(self) -> bytes:
        """The decoded base64 payload of a console/xl/log message (its last field)."""
        return base64.b64decode(self.args[-1]) if self.args else b""


def parse(line: bytes) -> Message | None:
    """The message on `line`, or None if it is not a well-formed ``@vmc <n> <kind> ...`` line."""
    # only the line end is stripped: an empty last field (an empty base64 payload) stays a field
    parts = line.decode("ascii", "replace").rstrip("\r\n").split(" ")
    if len(parts) < 3 or parts[0] != "@vmc" or not parts[1].isdigit():
        return None
    return Message(int(parts[1]), parts[2], tuple(parts[3:]))


def command(seq: int, verb: str, *args: str) -> bytes:
    """The line for command `verb` with number `seq` (args must not contain spaces or newlines)."""
    for a in args:
        if not a or any(c in a for c in " \r\n"):
            raise ValueError(f"argument {a!r} of {verb} is empty or has white space; base64 it")
    return ("@vmc " + " ".join((str(seq), verb, *args)) + "\n").encode("ascii")


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
"""QEMU's seccomp filter for the host VM (measured: 9p, virtio-serial and the domU boots all work under it)."""

BootPath = Literal["direct", "efi"]
BOOT_PATHS: tuple[BootPath, ...] = ("direct", "efi")
"""How the host VM starts Xen. ``direct`` (the default, the fastest): QEMU loads Xen's binary as the kernel
(``-kernel``: Xen's arm64 image carries the Linux Image header) and the dom0 kernel and initrd as boot
modules (``-device guest-loader``, which writes the ``multiboot,module`` nodes Xen reads from /chosen),
on QEMU's own DTB: no firmware at all. ``efi``: AAVMF boots Xen's EFI binary from the host disk's ESP
(BOOTAA64.cfg), the path shared/notes/xen-nested.md measured first."""
DOM0_KERNEL_ADDR = 0x42000000  # guest-loader addresses: RAM starts at 0x40000000, Xen sits at its start
DOM0_INITRD_ADDR = 0x46000000  # after the dom0 kernel (32 MiB gzip Image; a larger one: QEMU refuses, overlap)


def qemu_command(
    host: XenHost,
    vars_copy: Path | None,
    control: Path,
    share: Path | None,
    *,
    sandbox: bool = True,
    boot: BootPath = "direct",
    ssh_port: int | None = None,
) -> list[str]:
    """The qemu-system-aarch64 command line for the host VM (serial console on stdio).

    `vars_copy`: the AAVMF variable store copy, for ``boot="efi"`` only. `sandbox` False leaves out
    ``-sandbox`` (a QEMU built without seccomp refuses the option). `ssh_port`: give dom0 a NIC on QEMU's
    user network with the host's 127.0.0.1:`ssh_port` forwarded to dom0's port 22 (dom0's /init then
    starts its ssh server); without it the host VM has no network.
    """
    s: HostShape = host.shape
    cmd = [
        "qemu-system-aarch64", "-M", s.machine(), "-cpu", s.cpu, "-m", f"{s.memory_mb}M", "-smp", str(s.smp),
        "-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio",
    ]  # fmt: skip
    if boot == "direct":
        cmd += [
            "-kernel", str(host.xen_efi), "-append", xen_options(s),
            "-device", f"guest-loader,addr={DOM0_KERNEL_ADDR:#x},kernel={host.kernel},bootargs={DOM0_OPTIONS}",
            "-device", f"guest-loader,addr={DOM0_INITRD_ADDR:#x},initrd={host.initrd}",
        ]  # fmt: skip
    else:
        if vars_copy is None:
            raise ValueError("boot efi needs a copy of the AAVMF variable store (fresh_vars)")
        cmd += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            "-drive", f"if=none,id=hostdisk,format=raw,readonly=on,file={host.disk}",
            "-device", "virtio-blk-device,drive=hostdisk,bootindex=0",
        ]  # fmt: skip
    if ssh_port is None:
        cmd += ["-nic", "none"]
    else:
        cmd += [
            "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            "-device", "virtio-net-device,netdev=net0",
        ]  # fmt: skip
    cmd += [
        "-chardev", f"socket,id=ctl,path={control}",
        "-device", "virtio-serial-device",
        "-device", f"virtserialport,chardev=ctl,name={PORT_NAME}",
    ]  # fmt: skip
    if sandbox:
        cmd += ["-sandbox", SANDBOX]
    if share is not None:
        cmd += [
            "-fsdev", f"local,id=work,path={share},security_model=none",
            "-device", f"virtio-9p-device,fsdev=work,mount_tag={SHARE_TAG}",
        ]  # fmt: skip
    return cmd


class AgentRefused(AssetError):
    """The agent answered a request with err: its message is what dom0's tool said (xl, losetup)."""


class Channel:
    """The harness's end of the control port: listen first, then start QEMU, then `accept`."""

    def __init__(self, path: Path | None, conn: socket.socket | None = None) -> None:
        """Listen on the Unix socket `path`; or, with `path` None, talk over `conn` already connected (one end of
        a socket pair whose other end is an ``ssh host agent --stdio`` process's stdin and stdout)."""
        self.path = path
        self._server: socket.socket | None = None
        if path is not None:
            path.unlink(missing_ok=True)
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(str(path))
            self._server.listen(1)
        self._conn = conn
        self._buf = b""
        self._seq = 0
        self.pending: list[Message] = []

    def accept(self, timeout: float) -> None:
        if self._server is None:
            return
        self._server.settimeout(timeout)
        try:
            self._conn, _ = self._server.accept()
        except TimeoutError:
            raise AssetError(f"QEMU did not connect to the control socket {self.path} in {timeout:.0f} s") from None

    def close(self) -> None:
        for s in (self._conn, self._server):
            if s is not None:
                s.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def send(self, verb: str, *args: str) -> int:
        """Send a command; returns its sequence number (answered by ok/err with it as first argument)."""
        if self._conn is None:
            raise AssetError("the control channel is not connected")
        self._seq += 1
        self._conn.sendall(command(self._seq, verb, *args))
        return self._seq

    def messages(self, deadline: float) -> Iterator[Message]:
        """Messages as they arrive until `deadline` (time.monotonic()); stops at EOF."""
        while time.monotonic() < deadline:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                msg = parse(line)
                if msg is not None:
                    yield msg
            if self._conn is None:
                return
            self._conn.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
            try:
                data = self._conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            self._buf += data

    def request(self, verb: str, *args: str, timeout: float = 60.0) -> Message:
        """Send a command and wait for its ok (returned) or err (raised as AgentRefused; no answer: AssetError).

        Other messages that arrive meanwhile are appended to `pending`, for the caller to handle.
        """
        seq = self.send(verb, *args)
        for msg in self.messages(time.monotonic() + timeout):
            if msg.kind in ("ok", "err") and msg.args and msg.args[0] == str(seq):
                if msg.kind == "err":
                    raise AgentRefused(f"dom0: {verb} failed: {' '.join(msg.args[1:])}")
                return msg
            self.pending.append(msg)
        raise AssetError(f"dom0 did not answer {verb} within {timeout:.0f} s")


def domu_config(name: str, kernel: str, disks: list[str], *, memory_mb: int = 512, on_reboot: str = "destroy") -> str:
    """An xl config for a case's domU: the firmware as kernel, the disks as ``phy:`` PV disks, no vif."""
    vdevs = [
        f"'phy:{dev},xvd{chr(ord('a') + i)},{mode}'" for i, (dev, mode) in enumerate(d.rsplit(",", 1) for d in disks)
    ]
    return (
        f'name="{name}"\nkernel="{kernel}"\nmemory={memory_mb}\nvcpus=1\n'
        f"disk=[{', '.join(vdevs)}]\nvif=[]\n"
        f'on_poweroff="destroy"\non_reboot="{on_reboot}"\non_crash="destroy"\n'
    )


def fresh_vars(dest: Path) -> Path:
    """A private copy of AAVMF's variable-store template (never written in /usr/share)."""
    if not AAVMF_CODE.exists() or not AAVMF_VARS.exists():
        raise AssetError(f"{AAVMF_CODE} is missing: install it with `apt-get install qemu-efi-aarch64`")
    dest.write_bytes(AAVMF_VARS.read_bytes())
    os.chmod(dest, 0o600)
    return dest
