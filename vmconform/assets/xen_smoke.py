"""A hand smoke check of the nested Xen host: one host VM, the reference image booted as a domU per firmware.

``python -m vmconform.assets smoke xen`` starts the cached host VM (`vmconform.assets.xen_host`), waits
for dom0's agent, and for each firmware attaches a fresh copy of ``vmconform gen --arch aarch64 --nonce
4242``'s image over 9p, creates the domU, shows the console relayed from it (EDK2 wraps at 80 columns:
shown as is) until the probe's ``VMCONFORM 4242 END`` or the domain's exit, destroys the domU, and at
the end powers the host off. The QEMU process group is killed whatever happens.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vmconform.assets.cache import AssetError
from vmconform.assets.xen import XenHost
from vmconform.assets.xen_firmware import FirmwareName
from vmconform.assets.xen_host import Channel, b64, domu_config, qemu_command

NONCE = "4242"
HOST_TIMEOUT_S = 180.0
CASE_TIMEOUT_S = 300.0  # as the xen entry: U-Boot's PV-disk connect polls xenstore, 11-93 s under load, at times more


@dataclass(frozen=True)
class CaseResult:
    """What one domU boot showed: the firmware, whether the BOOT line came, and the timings in seconds."""

    firmware: FirmwareName
    boot_line: bool
    end_line: bool
    create_s: float
    boot_s: float | None
    exit_event: str
    console: str


def _pump(stream: object, out: Callable[[str], None], t0: float) -> threading.Thread:
    def run() -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            out(f"[{time.monotonic() - t0:7.2f}] host| {raw.decode('utf-8', 'replace').rstrip()}")

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def _joined(text: str) -> str:
    # EDK2's console wraps at 80 columns: a probe line may be split by CR/LF pairs
    return re.sub(r"[\r\n]+", "", text)


def boot_case(ch: Channel, host: XenHost, fw: FirmwareName, image: Path, share: Path, say: Callable[[str], None],
              t0: float, timeout: float = CASE_TIMEOUT_S) -> CaseResult:  # fmt: skip
    """Boot `image` (inside `share`) as a domU with firmware `fw`; always destroys the domU and detaches."""
    copy = share / f"{fw}-{image.name}"
    shutil.copyfile(image, copy)
    dev = ch.request("attach", copy.name, "rw", "512").args[1]
    name = f"vmc-{fw}"
    cfg = domu_config(name, host.firmware_path(fw), [f"{dev},w"])
    start = time.monotonic()
    console = b""
    boot_s: float | None = None
    exit_event = "timeout"
    try:
        ch.request("create", name, b64(cfg), timeout=60)
        create_s = time.monotonic() - start
        say(f"[{time.monotonic() - t0:7.2f}] {fw}: domU {name} running after {create_s:.2f} s")
        pending, ch.pending = ch.pending, []
        for msg in itertools.chain(pending, ch.messages(time.monotonic() + timeout)):
            if msg.kind == "console" and msg.args[0] == name:
                chunk = msg.payload
                console += chunk
                for line in chunk.decode("utf-8", "replace").splitlines():
                    say(f"[{time.monotonic() - t0:7.2f}] {fw}| {line}")
                if boot_s is None and f"VMCONFORM {NONCE} BOOT" in _joined(console.decode("utf-8", "replace")):
                    boot_s = time.monotonic() - start
                if console.rstrip().endswith((b"=>", b"xenguest#", b"Shell>")):
                    exit_event = "timeout"  # a firmware prompt: a dead end, destroyed below
                    say(f"[{time.monotonic() - t0:7.2f}] {fw}: stopped at a firmware prompt")
                    break
            elif msg.kind == "event" and msg.args[0] == name:
                say(f"[{time.monotonic() - t0:7.2f}] {fw}: event {' '.join(msg.args[1:])}")
                if msg.args[1] == "exited":
                    exit_event = "exited " + msg.args[2]
                    break
            elif msg.kind == "xl":
                say(f"[{time.monotonic() - t0:7.2f}] {fw}: xl: {msg.payload.decode('utf-8', 'replace')}")
    finally:
        if exit_event == "timeout":
            try:
                ch.request("destroy", name, timeout=30)
                exit_event = "timeout, destroyed"
            except AssetError as err:
                say(f"{fw}: destroy: {err}")
        ch.request("detach", dev, timeout=30)
        copy.unlink(missing_ok=True)
    text = console.decode("utf-8", "replace")
    return CaseResult(fw, boot_s is not None, f"VMCONFORM {NONCE} END" in _joined(text), create_s, boot_s, exit_event,
                      text)  # fmt: skip


def smoke(host: XenHost, firmwares: Sequence[FirmwareName], say: Callable[[str], None] = print) -> list[CaseResult]:
    """Run the smoke check (see the module docstring); returns one result per firmware."""
    vmconform = Path(sys.executable).parent / "vmconform"
    if not vmconform.exists():
        raise AssetError(f"{vmconform} is missing: run scripts/setup.sh first")
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="vmc-xen-") as tmp:
        tdir = Path(tmp)
        share = tdir / "work"
        share.mkdir()
        image = tdir / "x.img"
        gen = subprocess.run([vmconform, "gen", "--arch", "aarch64", "--nonce", NONCE, "-o", image],
                             capture_output=True, text=True, check=False)  # fmt: skip
        if gen.returncode != 0:
            raise AssetError(f"vmconform gen failed: {(gen.stderr.strip().splitlines() or ['no output'])[-1]}")
        ch = Channel(tdir / "ctl.sock")
        cmd = qemu_command(host, None, tdir / "ctl.sock", share)
        t0 = time.monotonic()
        env = dict(os.environ, VMCONFORM_TAG=f"smoke-xen/{os.getpid()}")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)  # fmt: skip
        try:
            _pump(proc.stdout, say, t0)
            ch.accept(30)
            ready = next((m for m in ch.messages(t0 + HOST_TIMEOUT_S) if m.kind == "ready"), None)
            if ready is None:
                raise AssetError(f"dom0's agent did not report ready within {HOST_TIMEOUT_S:.0f} s")
            say(f"[{time.monotonic() - t0:7.2f}] dom0 ready: Xen {ready.args[0]}, dom0 kernel {ready.args[1]}")
            for fw in firmwares:
                results.append(boot_case(ch, host, fw, image, share, say, t0))
            ch.request("poweroff", timeout=30)
            proc.wait(timeout=60)
            say(f"[{time.monotonic() - t0:7.2f}] host VM exited with status {proc.returncode}")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            ch.close()
    return results
