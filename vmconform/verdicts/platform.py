"""Verdicts of suite/test_platform.py: counter and timer (PLAT-5 / V2-8), exception level (V2-2), GICs (V2-7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vmconform.enums import Arch
from vmconform.facts import ProbeFacts
from vmconform.verdicts import ERROR, FAIL, PASS, Verdict, collector
from vmconform.verdicts.firmware import STALL_SECONDS

__all__ = ["counter", "exception_level", "gic_versions"]

COUNTER_TOLERANCE = (0.5, 2.0)  # counter seconds across the Stall, as a factor of STALL_SECONDS


def counter(facts: ProbeFacts, spec: str, case: str = "") -> list[Verdict]:
    """PLAT-5 (V2-8 in spec 2.0): CNTFRQ is non-zero and CNTVCT advances by about CNTFRQ x the Stall."""
    out, v = collector(spec, case)
    cpu = facts.cpu
    if cpu is None:
        v("PLAT-5", ERROR, "the probe printed no CPU line")
        return out
    freq = cpu.counter_frequency
    regs = cpu.registers
    if not freq:
        v("PLAT-5", FAIL, "CNTFRQ reads 0: the generic timer's frequency is not programmed (required: non-zero)")
        return out
    ticks = regs.get("cntvct1", 0) - regs.get("cntvct0", 0)
    secs = ticks / freq
    lo, hi = COUNTER_TOLERANCE
    seen = (
        f"CNTFRQ {freq} Hz ({freq / 1e6:g} MHz); CNTVCT {regs.get('cntvct0', 0):#x} -> "
        f"{regs.get('cntvct1', 0):#x} across a {STALL_SECONDS:.0f} s Stall = {secs:.3f} s"
    )
    if lo * STALL_SECONDS <= secs <= hi * STALL_SECONDS:
        v("PLAT-5", PASS, seen)
    else:
        v("PLAT-5", FAIL, f"{seen} (required: {lo:g}..{hi:g} s: the virtual counter advances at CNTFRQ)")
    return out


def exception_level(facts: ProbeFacts, arch: str, spec: str, case: str = "") -> list[Verdict]:
    """V2-2: the firmware runs the application at EL1 (AArch64 CurrentEL) or PL1 (AArch32, e.g. SVC)."""
    out, v = collector(spec, case)
    cpu = facts.cpu
    if cpu is None:
        v("V2-2", ERROR, "the probe printed no CPU line")
        return out
    where = cpu.privilege
    if arch == Arch.AARCH64:
        raw = f"CurrentEL {cpu.registers.get('el', 0):#x}"
        ok = where == "EL1"
    else:
        raw = f"CPSR {cpu.registers.get('cpsr', 0):#x}"
        ok = "(PL1)" in where
    need = "EL1" if arch == Arch.AARCH64 else "a PL1 mode (SVC)"
    v("V2-2", PASS if ok else FAIL, f"{raw}: the application runs at {where} (required: {need})")
    return out


def gic_versions(
    runs: Mapping[int, tuple[int | None, str]], wanted: Sequence[int], spec: str, case: str = ""
) -> list[Verdict]:
    """V2-7: the VM boots with each GIC version asked for and describes that version.

    `runs` maps a configured version to (the version the hardware description gives or None, evidence); a
    version missing from `runs` was not configurable (evidence in `wanted`'s absence)."""
    out, v = collector(spec, case)
    if not wanted:
        v(
            "V2-7",
            ERROR,
            "the hypervisor entry lists no gic_versions for this arch: V2-7 needs boots with GICv2 and "
            "GICv3 (add gic_versions: [2, 3] to its arches entry)",
        )
        return out
    problems, seen = [], []
    for version in (2, 3):
        if version not in wanted:
            problems.append(f"GICv{version} is not configured (gic_versions: {list(wanted)})")
            continue
        got, evidence = runs.get(version, (None, "not booted"))
        if got == version:
            seen.append(f"gic-version={version}: {evidence}")
        else:
            problems.append(f"gic-version={version}: {evidence}" + (f" (GICv{got})" if got else ""))
    if problems:
        v("V2-7", FAIL, "; ".join(problems + seen))
    else:
        v("V2-7", PASS, "; ".join(seen))
    return out
