#!/usr/bin/env python3
"""Boot benchmark: harness overhead against a bare QEMU command line, and the suite's wall time.

    .venv/bin/python bench/bench_boot.py [--boots 7] [--no-suite]

1. Harness overhead: the same reference image booted N times through vmconform's runner and N times
   by a bare ``qemu-system-aarch64`` with the identical command line (each with a fresh vars copy),
   interleaved so both see the same machine load. Prints both medians and the median ratio
   (target <= 1.03).
2. Suite wall time for the default matrix with ``-n 1`` and ``-n 2``: speedup, boots per minute,
   per-case time percentiles (from results.json).

Numbers only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vmconform import cases  # noqa: E402
from vmconform.case_run import run_case  # noqa: E402
from vmconform.firmware import copy_vars_template  # noqa: E402
from vmconform.hypervisors import BootRequest  # noqa: E402
from vmconform.session import open_run  # noqa: E402


def harness_overhead(boots: int) -> None:
    # the same pipeline as the suite: open the run, then run_case for the reference case
    setup = open_run(REPO / "hypervisors.yaml", "qemu", arches=("aarch64",), firmware_names=("edk2",))
    fw, backend, case = setup.firmware("edk2", "aarch64"), setup.backend, cases.find("aarch64")
    with tempfile.TemporaryDirectory(prefix="vmconform-bench-") as tmp:
        work = Path(tmp)
        nonce = "benchnonce"
        disk = cases.write_image(case, nonce, work / "disk.img")
        req = BootRequest("aarch64", (disk,), fw, work / "bare", work / "bare" / "vars.fd")
        (work / "bare").mkdir()
        argv = backend.command(req)
        harness, bare, parts = [], [], []

        def harness_boot(i: int) -> None:
            t0 = time.monotonic()
            r = run_case(backend, case, fw, work / f"h{i}", work / f"h{i}", timeout=60, nonce=nonce).result
            harness.append(time.monotonic() - t0)
            if r.exit_status != 0:
                raise SystemExit(f"harness boot {i} did not power off cleanly: {r.describe()}")
            parts.append(r.timings)

        def bare_boot(i: int) -> None:
            # the same command line, and like the harness a fresh vars copy in a fresh folder
            (work / f"b{i}").mkdir()
            t0 = time.monotonic()
            copy_vars_template(fw, work / f"b{i}" / "vars.fd")
            p = subprocess.run(
                [a.replace(str(work / "bare" / "vars.fd"), str(work / f"b{i}" / "vars.fd")) for a in argv],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
            )
            bare.append(time.monotonic() - t0)
            if p.returncode != 0 or f"VMCONFORM {nonce} END".encode() not in p.stdout:
                raise SystemExit(f"bare boot {i} failed: rc {p.returncode}")

        for i in range(boots):  # alternate which goes first, so neither always runs right after the other
            for run in (harness_boot, bare_boot) if i % 2 == 0 else (bare_boot, harness_boot):
                run(i)
        ratios = [h / b for h, b in zip(harness, bare, strict=True)]
        print(f"harness overhead, {boots} interleaved boots of the aarch64 reference image (QEMU TCG + AAVMF):")
        print(f"  harness median {statistics.median(harness):.3f} s   bare QEMU median {statistics.median(bare):.3f} s")
        print(f"  median ratio harness/bare {statistics.median(ratios):.3f}  (target <= 1.03)")

        def med(f: str, t: str) -> float:
            return statistics.median(p[t] - p.get(f, 0.0) for p in parts)

        print("  where a harness boot's time goes (medians):")
        print(f"    harness before the VM (vars copy)  {med('', 'vm_started'):.3f} s")
        print(f"    VM start to first console byte    {med('vm_started', 'first_output'):.3f} s")
        print(f"    firmware to the probe's first line {med('first_output', 'first_probe_line'):.3f} s")
        print(f"    probe running (first line to END)  {med('first_probe_line', 'probe_end'):.3f} s")
        print(f"    END to power-off (VM exit)         {med('probe_end', 'exited'):.3f} s")
        print(f"    harness after the VM (teardown)    {med('exited', 'total'):.3f} s")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(q * (len(values) - 1))))
    return values[k]


def suite_wall_time() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="vmconform-bench-suite-") as tmp:
        for workers in ("1", "2"):
            out = Path(tmp) / f"n{workers}"
            t0 = time.monotonic()
            p = subprocess.run(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", workers, f"--reports-dir={out}"],
                cwd=REPO, capture_output=True, text=True,
            )  # fmt: skip
            wall = time.monotonic() - t0
            doc = json.loads(((out / "latest").resolve() / "results.json").read_text())
            boots = [r["boot_seconds"] for r in doc["results"] if "boot_seconds" in r]
            rows.append((workers, wall, boots, p.returncode))
        shutil.rmtree(tmp, ignore_errors=True)
    print("suite wall time, default matrix (pytest from the checkout):")
    for workers, wall, boots, rc in rows:
        n = len(boots)
        pct = (
            f"p50 {percentile(boots, 0.5):.2f} s, p90 {percentile(boots, 0.9):.2f} s, max {max(boots):.2f} s"
            if boots
            else "-"
        )
        print(
            f"  -n {workers}: {wall:6.1f} s wall, {n} boots, {60 * n / wall:5.1f} boots/min, per-case boot {pct}, "
            f"pytest exit {rc}"
        )
    if len(rows) == 2 and rows[1][1] > 0:
        print(f"  speedup -n 2 over -n 1: {rows[0][1] / rows[1][1]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boots", type=int, default=7, help="boots per side for the overhead measurement (default 7)")
    ap.add_argument("--no-suite", action="store_true", help="skip the suite wall-time measurement")
    args = ap.parse_args()
    harness_overhead(args.boots)
    if not args.no_suite:
        suite_wall_time()


if __name__ == "__main__":
    main()
