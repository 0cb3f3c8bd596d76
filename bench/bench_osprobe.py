#!/usr/bin/env python3
"""OS probe benchmark: where an OS probe boot's time goes, per arch, on the `qemu` entry under TCG.

    .venv/bin/python bench/bench_osprobe.py [--boots 3] [--arch aarch64 --arch arm] [--entry qemu] [--extra WORDS]

For each arch, N rounds; each round boots, one after the other on the same machine:

* the reference: Debian's kernel as the Linux payload (`vmconform.payloads`), decided at its panic for want of a
  root file system (firmware, the kernel through its EFI stub, its whole boot on its default command line, no
  initrd: the "panic at 2.8 s" of issue 13);
* the OS probe's facts mode (aarch64: described by ACPI; arm: by the DT) with 4 vCPUs, a fresh disk and vars copy;
* with ``--extra WORDS``, the same case with WORDS added to its kernel command line (``--extra kpti=1`` shows
  what ``kpti=0`` saves), side by side with the default.

Prints the medians of: building the disk, VM start to the first console byte, to /init's first line (firmware,
loader and kernel boot), to END (/init's work), to the VM's exit, the whole case; the reference boot; and the
ratios case / reference (and extra / default), which the machine's load changes less than the seconds (the load
average is printed: this host is shared). Then the case's phases (medians), from the console's lines stamped on
the host and the guest's uptime in /init's lines: the firmware (VM start to "BdsDxe: starting"), the loader
(systemd-stub or GRUB, to "EFI stub: Booting Linux Kernel"), the kernel's EFI stub (to "Exiting boot
services"), the kernel before its clock starts (to the first line's host time less its uptime), the kernel's boot
to /init (OSBOOT's uptime), /init (END's uptime less OSBOOT's) and the power-off (END to the VM's exit).

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
from vmconform.firmware import Firmware, copy_vars_template  # noqa: E402
from vmconform.hypervisors import Backend, backend_for  # noqa: E402
from vmconform.osprobe.assets import OsProbeParts, parts  # noqa: E402
from vmconform.osprobe.run import OS_CPUS, write_os_disk  # noqa: E402
from vmconform.payloads import PAYLOADS, run_payload  # noqa: E402
from vmconform.runner import BootResult, boot  # noqa: E402

MARKS = {"fw": b"BdsDxe: starting", "loader": b"EFI stub: Booting Linux Kernel", "stub": b"Exiting boot services"}
PHASES = {"fw": "firmware", "loader": "loader", "stub": "EFI stub", "pre": "kernel before its clock",
          "kernel": "kernel to /init", "initwork": "/init", "off": "power-off"}  # fmt: skip


class _Stamps:
    """The console's echo: the host time (monotonic) each of `MARKS` first shows on the console."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self._tail = b""

    def __call__(self, data: bytes) -> None:
        text, now = self._tail + data, time.monotonic()
        for key, mark in MARKS.items():
            if key not in self.seen and mark in text:
                self.seen[key] = now
        self._tail = text[-64:]


def _uptime(r: BootResult, key: str) -> float:
    line = r.facts.get(key)
    return float(line.fields.get("uptime", "nan")) if line is not None else float("nan")


def _case(backend: Backend, fw: Firmware, p: OsProbeParts, work: Path, nonce: str, extra: str) -> dict[str, float]:
    """One OS probe case (facts mode): its times and phases in seconds, or {} when it did not finish."""
    acpi = p.arch == "aarch64"
    t0 = time.monotonic()
    disk = write_os_disk(p, p.cmdline(nonce, "facts", acpi=acpi, extra=extra), work / "os.img")
    vars_copy = copy_vars_template(fw, work / "vars.fd")
    disk_s = time.monotonic() - t0
    stamps = _Stamps()
    t_boot = time.monotonic()  # the runner's timings count from (within a millisecond of) here
    r = boot(backend, p.arch, (disk,), fw, nonce, work / "out", 180, echo=stamps, vars_path=vars_copy)
    case = time.monotonic() - t0
    if r.stop.reason != "matched" or r.exit_status != 0:
        print(f"{p.arch}: boot {nonce} did not finish: {r.describe()}")
        return {}
    t = r.timings
    at = {k: v - t_boot for k, v in stamps.seen.items()}
    nan = float("nan")
    up_init, up_end = _uptime(r, "OSBOOT"), _uptime(r, "END")
    clock0 = t.get("first_probe_line", nan) - up_init  # when the kernel's clock started, on the host's
    bds, loader, stub = (at.get(k, nan) for k in MARKS)
    phases = {"fw": bds - t.get("vm_started", nan), "loader": loader - bds, "stub": stub - loader, "pre": clock0 - stub,
              "kernel": up_init, "initwork": up_end - up_init,
              "off": t.get("exited", nan) - t.get("probe_end", nan)}  # fmt: skip
    return {"disk": disk_s, "first_output": t.get("first_output", 0.0), "init": t.get("first_probe_line", 0.0),
            "end": t.get("probe_end", 0.0), "exited": t.get("exited", 0.0), "case": case, **phases}  # fmt: skip


def _reference(backend: Backend, fw: Firmware, arch: str, work: Path) -> float | None:
    """The Linux payload to its panic (no root file system): seconds, or None when it did not get there."""
    linux = PAYLOADS["linux"]
    t0 = time.monotonic()
    run = run_payload(backend, arch, fw, linux, "benchref", work, work / "out", 180)
    return time.monotonic() - t0 if run.succeeded else None


def bench(entry_name: str, arch: str, boots: int, extra: str) -> None:
    entry = config.load(REPO / "hypervisors.yaml").get(entry_name)
    backend = backend_for(entry).with_cpus(arch, OS_CPUS)
    fw = config.resolve_firmware(entry, "edk2", arch)
    p = parts(arch)
    rows: dict[str, list[dict[str, float]]] = {"default": [], "extra": []}
    refs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="vmconform-bench-os-") as tmp:
        for k in range(boots):
            ref = _reference(backend, fw, arch, Path(tmp) / f"r{k}")
            if ref is not None:
                refs.append(ref)
            for label in ("default", "extra") if extra else ("default",):
                row = _case(
                    backend, fw, p, Path(tmp) / f"{label}{k}", f"bench{k}{label[0]}", extra * (label == "extra")
                )
                if row:
                    rows[label].append(row)
    ref = statistics.median(refs) if refs else float("nan")
    how = "ACPI" if arch == "aarch64" else "DT"
    med = {}
    for label, got in rows.items():
        if not got:
            continue
        m = med[label] = {key: statistics.median(r[key] for r in got) for key in got[0]}
        words = f" + {extra!r}" if label == "extra" else ""
        print(
            f"{arch} ({entry_name}, {OS_CPUS} vCPUs, {how}{words}), medians of {len(got)}: disk {m['disk']:.2f} s; "
            f"VM start -> first byte {m['first_output']:.2f} s, -> /init {m['init']:.2f} s, -> END {m['end']:.2f} s, "
            f"-> exit {m['exited']:.2f} s; whole case {m['case']:.2f} s = {m['case'] / ref:.2f} x the reference"
        )
        print("  phases: " + ", ".join(f"{name} {m[key]:.2f} s" for key, name in PHASES.items()))
    print(f"{arch} reference (the Linux payload to its panic, no initrd), median of {len(refs)}: {ref:.2f} s")
    if "extra" in med and "default" in med:
        print(f"{arch} whole case with {extra!r} / without: {med['extra']['case'] / med['default']['case']:.2f}")
    print(f"(load average {os.getloadavg()[0]:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--arch", action="append", choices=("aarch64", "arm"))
    ap.add_argument("--entry", default="qemu")
    ap.add_argument("--extra", default="", help="kernel command-line words for a second case, booted side by side")
    args = ap.parse_args()
    for arch in args.arch or ["aarch64", "arm"]:
        bench(args.entry, arch, args.boots, args.extra)


if __name__ == "__main__":
    main()
