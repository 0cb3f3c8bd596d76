"""Per-clause verdicts from what a boot showed, and their roll-up over a run.

One module per suite area, named like ``suite/``: `boot`, `malformed`, `firmware`, `hwdesc`, `platform`;
this module holds what they share.

A verdict is ``pass``, ``fail``, ``not-supported`` (the hypervisor entry declares it
does not do this, with a reason) or ``error`` (the harness could not decide; the
evidence says why). Each carries its evidence: the console line or the host check.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vmconform import clauses as cl
from vmconform.enums import Status
from vmconform.probe.protocol import ProbeLine
from vmconform.runner import BootResult, CaseFailure

PASS, FAIL, NOT_SUPPORTED, ERROR = Status.PASS, Status.FAIL, Status.NOT_SUPPORTED, Status.ERROR
STATUSES = (PASS, FAIL, NOT_SUPPORTED, ERROR)

# Minimum system-table revisions: UEFI 2.4 for spec 1.0 (FW-3), 2.6 for spec 2.0 (V2-4).
MIN_UEFI_REVISION = {"1.0": (2 << 16) | 40, "2.0": (2 << 16) | 60}

SYSTEM_TABLE_SIGNATURE = "5453595320494249"  # "IBI SYST"
RUNTIME_SERVICES_SIGNATURE = "56524553544E5552"  # "RUNTSERV"


class ClauseWarning(UserWarning):
    """A SHOULD-level clause failed: reported, does not fail the run."""


@dataclass(frozen=True)
class Verdict:
    clause: str
    status: str
    evidence: str
    case: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain strings only (a Status is a StrEnum): the dict crosses xdist's process boundary."""
        return {k: str(v) for k, v in asdict(self).items()}


def short(line: str, limit: int = 100) -> str:
    """A console line as evidence: stripped, and cut (with …) when long (BOOT lines carry device paths)."""
    line = line.strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def boot_evidence(boot: ProbeLine) -> str:
    """The BOOT line as evidence: who booted, and from which path (the device-path hex is left out)."""
    where = boot.fields.get("path")
    head = f"VMCONFORM {boot.nonce} BOOT {' '.join(boot.args[:1])}"
    return f"{head} path={where}" if where else short(boot.raw)


def collector(spec: str, case: str) -> tuple[list[Verdict], Callable[[str, str, str], None]]:
    """A verdict list and its ``v(clause, status, evidence)`` adder, which drops clauses ``spec`` does not have."""
    out: list[Verdict] = []

    def v(clause: str, status: str, evidence: str) -> None:
        if cl.get(clause).level(spec) is not None:
            out.append(Verdict(clause, status, evidence, case))

    return out, v


def uefi_revision_text(rev: int) -> str:
    major, minor = rev >> 16, rev & 0xFFFF
    return f"{major}.{minor // 10}" + (f".{minor % 10}" if minor % 10 else "")


def _boot_failure(result: BootResult) -> tuple[str, str]:
    """(status, evidence) for a boot that did not produce this case's probe report."""
    stop = result.stop
    line = f" at {stop.line.strip()!r}" if stop.line.strip() else ""
    if result.foreign:
        return FAIL, f"a probe with another nonce ran ({result.foreign[0].raw.strip()!r}): stale image"
    if stop.reason == "dead-end":
        return FAIL, f"{stop.detail}{line}"
    if stop.reason == "timeout" and not result.tail.strip():
        return ERROR, f"no console output at all within the timeout: is the serial console wired? ({stop.detail})"
    if stop.reason == "timeout":
        return FAIL, f"no probe report: {stop.detail}; last console line {result.tail.splitlines()[-1]!r}"
    if stop.reason == "exited" and not result.tail.strip():
        return ERROR, f"the VM process ended with status {result.exit_status} before printing anything"
    if stop.reason == "exited" and result.exit_status == 0 and not result.lines:
        return ERROR, (
            "the VM powered itself off (exit status 0) but no probe line reached the harness: console output "
            "was lost, or a boot file other than the probe ran"
        )
    if stop.reason == "exited" and result.exit_status is not None and result.exit_status < 0:
        return ERROR, f"the VM process was killed by signal {-result.exit_status} before the probe finished"
    last = result.tail.strip().splitlines()[-1] if result.tail.strip() else ""
    binary = Path(result.command[0]).name if result.command else ""
    if stop.reason == "exited" and result.exit_status not in (0, None) and binary and last.startswith(binary + ":"):
        return ERROR, f"the hypervisor could not run the VM (exit status {result.exit_status}): {last}"
    return FAIL, f"{stop.detail} (exit status {result.exit_status}){line}"


def boot_failure(result: BootResult) -> tuple[str, str]:
    """(status, evidence) for a boot that did not produce this case's probe report."""
    return _boot_failure(result)


def filter_spec(verdicts: Sequence[Verdict], spec: str) -> list[Verdict]:
    """The verdicts whose clause the spec version has."""
    return [v for v in verdicts if cl.get(v.clause).level(spec) is not None]


def worst(statuses: Iterable[str]) -> str:
    order: dict[str, int] = {FAIL: 0, ERROR: 1, NOT_SUPPORTED: 2, PASS: 3}
    return min(statuses, key=lambda s: order[s], default=ERROR)


def enforce(verdicts: Sequence[Verdict], spec: str, context: BootResult | None = None) -> None:
    """Fail on MUST-level fail/error verdicts; warn on SHOULD-level ones."""
    blocking = []
    for vd in verdicts:
        clause = cl.get(vd.clause)
        if vd.status in (FAIL, ERROR):
            if clause.blocking(spec):
                blocking.append(vd)
            else:
                warnings.warn(
                    ClauseWarning(f"{vd.clause} ({clause.level(spec)}) {vd.status}: {vd.evidence}"), stacklevel=2
                )
    if blocking:
        lines = [f"{vd.clause} (MUST) {vd.status}: {vd.evidence}" for vd in blocking]
        msg = "\n".join(lines)
        raise context.fail(msg) if context is not None else CaseFailure(msg)


def roll_up(verdicts: Iterable[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    """One row per clause of ``spec``: the worst status over every case, with the evidence that decided it."""
    by_clause: dict[str, list[dict[str, Any]]] = {}
    for vd in verdicts:
        by_clause.setdefault(vd["clause"], []).append(vd)
    rows = []
    for clause in cl.for_spec(spec):
        seen = by_clause.get(clause.id, [])
        status = worst(v["status"] for v in seen) if seen else "not-tested"
        deciding = [v for v in seen if v["status"] == status]
        rows.append(
            {
                "clause": clause.id,
                "title": clause.title,
                "level": clause.level(spec),
                "status": status,
                "cases": len(seen),
                "deciding_cases": len(deciding),
                "evidence": [f"{v['case']}: {v['evidence']}" for v in deciding[:3]],
                "how": clause.how,
            }
        )
    return rows
