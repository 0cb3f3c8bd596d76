#!/usr/bin/env python3
"""OS probe benchmark: where an OS probe boot's time goes, per arch, on the `qemu` entry under TCG.

    .venv/bin/python bench/bench_osprobe.py [--boots 3] [--arch aarch64 --arch arm] [--entry qemu]

For each arch, N boots of the OS probe's facts mode (aarch64: described by ACPI; arm: by the DT) with 4 vCPUs,
each with a fresh disk and vars copy. Prints the medians of: building the disk (boot files + image), VM start to
the first console byte, to /init's first line (firmware, loader and kernel boot), to END (/init's work), to the
VM's exit, and the whole case; plus the machine's load average (the numbers scale with it on a shared host).

Numbers only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vmconform import config  # noqa: E402
from vmconform.firmware import copy_vars_template  # noqa: E402
from vmconform.hypervisors import backend_for  # noqa: E402
from vmconform.osprobe.assets import parts  # noqa: E402
from vmconform.osprobe.run import OS_CPUS, write_os_disk  # noqa: E402
from vmconform.runner import boot  # noqa: E402


def bench(entry_name: str, arch: str, boots: int) -> None:
    entry = config.load(REPO / "hypervisors.yaml").get(entry_name)
    backend = backend_for(entry).with_cpus(arch, OS_CPUS)
    fw = config.resolve_firmware(entry, "edk2", arch)
    p = parts(arch)
    acpi = arch == "aarch64"
    rows: dict[str, list[float]] = {k: [] for k in ("disk", "first_output", "init", "end", "exited", "case")}
    with tempfile.TemporaryDirectory(prefix="vmconform-bench-os-") as tmp:
        for k in range(boots):
            work = Path(tmp) / f"b{k}"
            t0 = time.monotonic()
            nonce = f"bench{k}"
            disk = write_os_disk(p, p.cmdline(nonce, "facts", acpi=acpi), work / "os.img")
            vars_copy = copy_vars_template(fw, work / "vars.fd")
            rows["disk"].append(time.monotonic() - t0)
            r = boot(backend, arch, (disk,), fw, nonce, work / "out", 180, vars_path=vars_copy)
            rows["case"].append(time.monotonic() - t0)
            if r.stop.reason != "matched" or r.exit_status != 0:
                print(f"{arch}: boot {k} did not finish: {r.describe()}")
                continue
            t = r.timings
            rows["first_output"].append(t.get("first_output", 0.0))
            rows["init"].append(t.get("first_probe_line", 0.0))
            rows["end"].append(t.get("probe_end", 0.0))
            rows["exited"].append(t.get("exited", 0.0))
    med = {k: statistics.median(v) if v else float("nan") for k, v in rows.items()}
    how = "ACPI" if acpi else "DT"
    print(
        f"{arch} ({entry_name}, {OS_CPUS} vCPUs, {how}), medians of {boots}: disk {med['disk']:.2f} s; "
        f"VM start -> first byte {med['first_output']:.2f} s, -> /init {med['init']:.2f} s, -> END {med['end']:.2f} s, "
        f"-> exit {med['exited']:.2f} s; whole case {med['case']:.2f} s (load average {os.getloadavg()[0]:.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--arch", action="append", choices=("aarch64", "arm"))
    ap.add_argument("--entry", default="qemu")
    args = ap.parse_args()
    for arch in args.arch or ["aarch64", "arm"]:
        bench(args.entry, arch, args.boots)


if __name__ == "__main__":
    main()
