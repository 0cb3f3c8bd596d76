"""The Xen hosts a domU runs on: the nested host VM (`HostVM`) or a real Xen host reached over ssh (`RemoteHost`).

Both give `vmconform.hypervisors.xen_console.XenConsole` the same things (`XenDom0`): the control channel to dom0's
agent (vmconform/assets/dom0/agent, whose header is the protocol), the domU names, the Xen version, and a place for
a case's disks the agent can ``losetup``. The nested host shares a folder with dom0 over 9p (a hard link puts the
disk there); a real host gets a copy in its work folder over ssh (gzip on both ends) and gives it back after the
domU ended, so the host-side NVRAM evidence reads the image as the domU left it.

A real Xen host (hypervisors.yaml ``xen_host: ssh ...``): the harness copies the agent into a fresh folder
``<workdir>/vmc-<pid>-<random>`` and runs ``bash <folder>/agent --stdio <folder>`` over ssh, the protocol on
ssh's stdin/stdout (one end of a socket pair here), ssh's stderr kept for the messages. When the run ends (or
ssh goes away) the agent destroys its domUs, detaches its loop devices and removes the folder.
"""

from __future__ import annotations

import atexit
import errno
import itertools
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vmconform.reaper import TAG_ENV

if TYPE_CHECKING:
    from vmconform.assets.xen import XenHost
    from vmconform.assets.xen_host import BootPath, Channel
    from vmconform.firmware import Firmware


def _power_off(proc: subprocess.Popen[bytes], channel: Channel) -> bool:
    """Ask dom0's agent to power off (the host VM, or the agent on a real host) and wait, then kill the process
    group whatever happened and close the channel; True when the process ended by itself with status 0."""
    ended = False
    if proc.poll() is None:
        try:
            channel.request("poweroff", timeout=20)
            proc.wait(timeout=30)
            ended = proc.returncode == 0
        except Exception:  # noqa: BLE001 - killed below in any case
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    channel.close()
    return ended


HOST_TIMEOUT = 240.0  # seconds for the host VM to boot Xen and dom0 and report ready (TCG, loaded machine)
SSH_TIMEOUT = 120.0  # seconds for ssh to copy the agent or a disk, or for the remote agent to report ready
AGENT = Path(__file__).resolve().parent.parent / "assets" / "dom0" / "agent"


class XenDom0(Protocol):
    """What a domU's console needs of the host it runs on."""

    channel: Channel
    names: Iterator[str]
    xen_version: str

    @property
    def where(self) -> str: ...

    def kernel_path(self, firmware: Firmware) -> str: ...

    def put(self, disk: Path, rel: str) -> bool: ...

    def take(self, rel: str, disk: Path) -> None: ...

    def drop(self, rel: str) -> None: ...

    def tail(self, n: int = 8) -> str: ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


class XenHostError(Exception):
    """The Xen host VM could not be started or stopped answering; the message says why, with its console tail."""


class HostVM:
    """The running nested host: its QEMU process, the control channel, the folder shared with dom0."""

    def __init__(self, host: XenHost, tag: str, *, boot: BootPath = "direct", ssh_port: int | None = None) -> None:
        from vmconform.assets.xen_host import Channel, fresh_vars, qemu_command

        self.host = host
        self.dir = Path(tempfile.mkdtemp(prefix="vmconform-xen-"))
        self.share = self.dir / "share"
        self.share.mkdir()
        self.console: deque[str] = deque(maxlen=200)  # the host's own serial console (Xen and dom0), newest lines
        self.channel: Channel = Channel(self.dir / "ctl.sock")
        vars_copy = fresh_vars(self.dir / "vars.fd") if boot == "efi" else None
        argv = qemu_command(host, vars_copy, self.dir / "ctl.sock", self.share, boot=boot, ssh_port=ssh_port)
        (self.dir / "command.sh").write_text(shlex.join(argv) + "\n")
        env = {**os.environ, TAG_ENV: tag}
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=env)  # fmt: skip
        threading.Thread(target=self._pump, daemon=True).start()
        atexit.register(self.stop)  # a process that ends without close() still powers its host off
        self.xen_version = self.dom0_kernel = ""
        self.names: Iterator[str] = (f"vmc{os.getpid()}-{n}" for n in itertools.count(1))
        try:
            self._connect(time.monotonic() + 60)
            ready = next((m for m in self.channel.messages(time.monotonic() + HOST_TIMEOUT) if m.kind == "ready"), None)
        except Exception as e:  # noqa: BLE001 - any failure here is the host's, reported with its tail
            self.stop()
            raise XenHostError(f"the Xen host VM did not start: {e}; host console tail: {self.tail()}") from None
        if ready is None:
            try:  # the channel closed: did QEMU end, or did dom0 stay silent?
                exited: int | None = self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                exited = None
            self.stop()
            time.sleep(0.2)  # let the pump read QEMU's last words
            why = f"QEMU exited with status {exited}" if exited is not None else (
                f"dom0's agent did not report ready within {HOST_TIMEOUT:.0f} s")  # fmt: skip
            raise XenHostError(f"the Xen host VM did not start: {why}; host console tail: {self.tail()}")
        self.xen_version, self.dom0_kernel = (ready.args + ("", ""))[:2]

    def _connect(self, deadline: float) -> None:
        """Wait for QEMU to connect to the control socket; a QEMU that exits meanwhile ends the wait at once."""
        from vmconform.assets.cache import AssetError

        while True:
            try:
                self.channel.accept(1)
                return
            except AssetError:
                if not self.alive():
                    time.sleep(0.2)  # let the pump read QEMU's last words
                    raise XenHostError(f"QEMU exited with status {self.proc.returncode}") from None
                if time.monotonic() > deadline:
                    raise

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with (self.dir / "host-console.log").open("wb") as log:
            for raw in iter(self.proc.stdout.readline, b""):
                log.write(raw)
                log.flush()
                self.console.append(raw.decode("utf-8", "replace").rstrip())

    @property
    def where(self) -> str:
        return f"the nested host VM: {self.dir / 'command.sh'}"

    def serve_ssh(self, authorized_key: str) -> None:
        """Make this host VM's dom0 a Xen host reachable over ssh, as a real one would be (for testing `RemoteHost`
        for real): the NIC's modules, QEMU's user network (10.0.2.15/24), `authorized_key` for root, dropbear.
        The VM must have been started with an ``ssh_port``."""
        from vmconform.assets.cache import AssetError
        from vmconform.assets.xen_host import b64

        script = (
            'for m in $(cat "/lib/modules/$(uname -r)/net.order"); do insmod "$m" || exit 1; done\n'
            "for i in $(seq 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done\n"
            "ip link set lo up && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 &&"
            " ip route add default via 10.0.2.2 || exit 1\n"
            f"mkdir -p /root/.ssh && printf '%s\\n' {shlex.quote(authorized_key)} > /root/.ssh/authorized_keys\n"
            "chmod 700 /root/.ssh && chmod 600 /root/.ssh/authorized_keys\n"
            "dropbear -R -s -j -k -p 22 2>&1\n"
        )
        try:
            msg = self.channel.request("run", b64(script), timeout=120)
        except AssetError as e:
            raise XenHostError(f"dom0 cannot serve ssh: {e}") from None
        if msg.args[1:2] != ("0",):
            raise XenHostError(f"dom0 cannot serve ssh: {msg.payload.decode('utf-8', 'replace').strip()[-300:]}")

    def kernel_path(self, firmware: Firmware) -> str:
        """The domU firmware's path in dom0, for xl's ``kernel=``."""
        return self.host.firmware_path(firmware.xen_domu)  # type: ignore[arg-type]

    def put(self, disk: Path, rel: str) -> bool:
        """Make `disk` the shared folder's file `rel`: a hard link (what the domU writes is in the case's disk), or
        a sparse copy when it is on another file system (True: `take` copies it back)."""
        link = self.share / rel
        link.unlink(missing_ok=True)
        try:
            os.link(disk, link)
            return False
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise XenHostError(f"cannot share {disk} with dom0: {e.strerror}") from None
        subprocess.run(["cp", "--sparse=always", str(disk), str(link)], check=True)
        return True

    def take(self, rel: str, disk: Path) -> None:
        """Copy the shared file `rel` back over `disk` (after the domU ended)."""
        subprocess.run(["cp", "--sparse=always", str(self.share / rel), str(disk)], check=False)

    def drop(self, rel: str) -> None:
        (self.share / rel).unlink(missing_ok=True)

    def tail(self, n: int = 8) -> str:
        return " | ".join(line for line in list(self.console)[-n:] if line.strip()) or "(nothing)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Power the host off (politely when dom0 answers), then kill its process group whatever happened."""
        if self.proc.returncode is not None and not self.dir.exists():
            return  # stopped already
        _power_off(self.proc, self.channel)
        shutil.rmtree(self.dir, ignore_errors=True)  # its vars copy (64 MiB) and the emptied share


def ssh_argv(command: str) -> list[str]:
    """The ssh command line of a ``xen_host:`` value (split as a shell would), with BatchMode: never a prompt."""
    argv = shlex.split(command)  # ValueError on bad quoting: the caller names the key
    if argv and os.path.basename(argv[0]) == "ssh":
        argv[1:1] = ["-o", "BatchMode=yes"]
    return argv


def _said(p: subprocess.CompletedProcess[bytes]) -> str:
    """The last line ssh (or the remote command) wrote to stderr, or the exit status."""
    lines = [ln for ln in p.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else f"exit status {p.returncode}"


class RemoteHost:
    """A real Xen host's dom0, reached with `ssh` (an argv that ends in the destination); see the module doc."""

    def __init__(self, ssh: list[str], workdir: str, tag: str) -> None:
        from vmconform.assets.xen_host import Channel

        self.ssh, self.label = ssh, shlex.join(ssh)
        self.dir = f"{workdir.rstrip('/')}/vmc-{os.getpid()}-{secrets.token_hex(4)}"
        self.console: deque[str] = deque(maxlen=50)  # ssh's and the agent's stderr
        self.names: Iterator[str] = (f"vmr{os.getpid()}-{n}" for n in itertools.count(1))
        self.xen_version = ""
        q = shlex.quote(self.dir)
        self.run(f"mkdir -p {q} && cat > {q}/agent", AGENT.read_bytes())
        ours, theirs = socket.socketpair()
        env = {**os.environ, TAG_ENV: tag}
        fd = theirs.fileno()
        self.proc = subprocess.Popen([*ssh, f"exec bash {q}/agent --stdio {q}"], stdin=fd, stdout=fd,
                                     stderr=subprocess.PIPE, start_new_session=True, env=env)  # fmt: skip
        theirs.close()
        self.channel: Channel = Channel(None, ours)
        threading.Thread(target=self._pump, daemon=True).start()
        atexit.register(self.stop)
        ready = next((m for m in self.channel.messages(time.monotonic() + SSH_TIMEOUT) if m.kind == "ready"), None)
        if ready is None:
            self.stop()
            raise XenHostError(f"the Xen host ({self.label}) did not start vmconform's agent: {self.tail(1)}")
        self.xen_version = ready.args[0] if ready.args else ""

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self.console.append(raw.decode("utf-8", "replace").rstrip())

    def run(self, command: str, data: bytes | None = None) -> bytes:
        """Run `command` on the host with `data` on its stdin; its stdout, or XenHostError with ssh's words."""
        try:
            p = subprocess.run([*self.ssh, command], input=data or b"", capture_output=True, timeout=SSH_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise XenHostError(f"ssh ({self.label}) did not finish in {SSH_TIMEOUT:.0f} s: {command}") from None
        if p.returncode != 0:
            raise XenHostError(f"ssh ({self.label}): {_said(p)}")
        return p.stdout

    @property
    def where(self) -> str:
        return f"the Xen host {self.label}, folder {self.dir}"

    def kernel_path(self, firmware: Firmware) -> str:
        return str(firmware.code)  # a path on the host (hypervisors.yaml firmwares: path:)

    def put(self, disk: Path, rel: str) -> bool:
        """Copy `disk` into the host's work folder as `rel` (gzip on the wire); always True: `take` brings it back."""
        with open(disk, "rb") as f:
            gz = subprocess.Popen(["gzip", "-1", "-c"], stdin=f, stdout=subprocess.PIPE)
            assert gz.stdout is not None
            try:
                p = subprocess.run([*self.ssh, f"gunzip -c > {shlex.quote(f'{self.dir}/{rel}')}"], stdin=gz.stdout,
                                   capture_output=True, timeout=SSH_TIMEOUT)  # fmt: skip
            except subprocess.TimeoutExpired:
                raise XenHostError(f"ssh ({self.label}) did not take {disk} in {SSH_TIMEOUT:.0f} s") from None
            finally:
                gz.stdout.close()
                gz.wait()
        if p.returncode != 0:
            raise XenHostError(f"cannot copy {disk} to the Xen host ({self.label}): {_said(p)}")
        return True

    def take(self, rel: str, disk: Path) -> None:
        """Copy the host's `rel` back over `disk`, sparse (runs of zeros become holes)."""
        p = subprocess.Popen([*self.ssh, f"gzip -1 -c {shlex.quote(f'{self.dir}/{rel}')}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert p.stdout is not None
        inflate, size, block = zlib.decompressobj(16 + zlib.MAX_WBITS), 0, 1 << 16
        tmp = disk.with_name(disk.name + ".back")
        with open(tmp, "wb") as out:
            for chunk in iter(lambda: p.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
                data = inflate.decompress(chunk)
                for at in range(0, len(data), block):
                    piece = data[at : at + block]
                    if piece.count(0) == len(piece):
                        out.seek(len(piece), os.SEEK_CUR)
                    else:
                        out.write(piece)
                size += len(data)
            out.truncate(size)
        if p.wait() != 0 or not inflate.eof:
            tmp.unlink(missing_ok=True)
            why = (p.stderr.read() if p.stderr else b"").decode("utf-8", "replace").strip().splitlines()
            raise XenHostError(f"cannot copy {rel} back from the Xen host: {why[-1] if why else 'no data'}")
        os.replace(tmp, disk)

    def drop(self, rel: str) -> None:
        from vmconform.assets.xen_host import b64

        try:
            self.channel.request("run", b64(f"rm -f {shlex.quote(f'{self.dir}/{rel}')}"), timeout=30)
        except Exception:  # noqa: BLE001 - the agent removes its whole folder at the end anyway
            pass

    def tail(self, n: int = 8) -> str:
        return " | ".join(line for line in list(self.console)[-n:] if line.strip()) or "(nothing on ssh's stderr)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """End the agent (it destroys its domUs and removes its folder), then ssh; remove the folder if it could not."""
        if self.proc.returncode is not None:
            return
        if not _power_off(self.proc, self.channel):
            try:
                self.run(f"rm -rf {shlex.quote(self.dir)}")
            except XenHostError:
                pass
