"""Xen backend speed, measured side by side in one run (numbers only; nothing here is asserted in tests).

    .venv/bin/python bench/bench_xen.py [--boots 5] [--firmware edk2] [--hosts 3]

Prints:
- how long the nested host VM takes from QEMU's start to dom0's agent reporting ready (target: <= 15 s), for
  each boot path (`vmconform.assets.xen_host.BOOT_PATHS`: direct, the default, and efi through AAVMF),
  `--hosts` starts each, interleaved, then the medians;
- per boot of the aarch64 reference image, interleaved: the harness (`runner.boot` through the xen backend:
  link and losetup the disk, xl create, relay the console, decide on END, detach) against the same domU
  started by hand in the same dom0 (`xl create -F` run by the agent, timed until the domain is gone), and
  the median ratio (target: harness <= 1.5 x by hand).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vmconform import cases, config, runner  # noqa: E402
from vmconform.assets.xen_host import BOOT_PATHS, b64  # noqa: E402
from vmconform.hypervisors import BootRequest, backend_for  # noqa: E402
from vmconform.hypervisors.xen import HostVM, XenBackend  # noqa: E402


def by_hand(vm: HostVM, backend: XenBackend, disk: Path, kernel: str, n: int) -> float:
    """xl create -F of the same domU, run by dom0's agent; seconds until the domain is gone."""
    link = vm.share / f"hand-{n}.img"
    link.hardlink_to(disk)
    dev = vm.channel.request("attach", link.name, "rw", "512", timeout=120).args[1]
    try:
        req = BootRequest("aarch64", (disk,), backend_fw(backend), disk.parent, None)
        cfg = backend.domu_config(req, f"hand{n}", kernel).replace("@DISKS@", f"'phy:{dev},xvda,w'")
        script = f"printf '%s' {b64(cfg)} | base64 -d > /tmp/hand.cfg && xl create -F /tmp/hand.cfg > /dev/null"
        t0 = time.monotonic()
        msg = vm.channel.request("run", b64(script), timeout=300)
        took = time.monotonic() - t0
        if msg.args[1] != "0":
            raise SystemExit(f"xl create by hand failed (rc {msg.args[1]}): {msg.payload.decode()[-500:]}")
        return took
    finally:
        vm.channel.request("detach", dev, timeout=60)
        link.unlink()


def backend_fw(backend: XenBackend, name: str = "edk2") -> config.fwmod.Firmware:
    return config.resolve_firmware(backend.entry, name, "aarch64")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boots", type=int, default=5)
    ap.add_argument("--firmware", default="edk2", choices=("edk2", "u-boot"))
    ap.add_argument("--hosts", type=int, default=3, help="host VM starts per boot path")
    args = ap.parse_args()
    backend = backend_for(config.load(REPO / "hypervisors.yaml").get("xen"))
    assert isinstance(backend, XenBackend)
    fw = backend_fw(backend, args.firmware)
    build = backend.xen_host()
    with tempfile.TemporaryDirectory(prefix="vmconform-bench-xen-") as tmp:
        work = Path(tmp)
        ups: dict[str, list[float]] = {path: [] for path in BOOT_PATHS}
        for i in range(args.hosts):
            for path in BOOT_PATHS if i % 2 == 0 else BOOT_PATHS[::-1]:
                t0 = time.monotonic()
                vm = HostVM(build, f"{work}/xen-host", boot=path)
                ups[path].append(time.monotonic() - t0)
                vm.stop()
                print(f"host VM up, boot {path} (QEMU start -> dom0 agent ready): {ups[path][-1]:.1f} s")
        print("host VM up, medians: " + ", ".join(f"{p} {statistics.median(u):.1f} s" for p, u in ups.items()))
        vm = HostVM(build, f"{work}/xen-host")
        backend._host.vm = vm
        harness, hand = [], []
        try:
            for i in range(args.boots):
                disk = cases.write_image(cases.find("aarch64"), f"xenbench{i}", work / f"d{i}.img")
                order = ("harness", "hand") if i % 2 == 0 else ("hand", "harness")
                for side in order:
                    if side == "hand":
                        assert fw.xen_domu is not None
                        hand.append(by_hand(vm, backend, disk, vm.host.firmware_path(fw.xen_domu), i))  # type: ignore[arg-type]
                    else:
                        t = time.monotonic()
                        r = runner.boot(backend, "aarch64", (disk,), fw, f"xenbench{i}", work / f"h{i}", 300)
                        harness.append(time.monotonic() - t)
                        if r.exit_status != 0:
                            raise SystemExit(f"harness boot {i} did not power off cleanly: {r.describe()}")
                print(f"boot {i}: harness {harness[-1]:.2f} s, by hand {hand[-1]:.2f} s")
        finally:
            backend.close()
    ratio = statistics.median(h / b for h, b in zip(harness, hand, strict=True))
    print(f"{args.firmware}: harness median {statistics.median(harness):.2f} s, by hand median "
          f"{statistics.median(hand):.2f} s, median ratio {ratio:.2f} (target <= 1.5)")  # fmt: skip


if __name__ == "__main__":
    main()
