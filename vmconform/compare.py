"""Comparing two runs, or two firmwares of one run: regressions, fixes, flakes, new and removed cases, set-up.

A case's identity survives a change of firmware or hypervisor: it is (test, arch, catalogue case), e.g.
``("test_must_boot", "aarch64", "aarch64-esp-second")``, never the test ID (which names both). When a side
still holds more than one firmware, the firmware name joins the key, so like pairs with like.

Per case: a *regression* is passed -> failed, a *fix* failed -> passed, a *flake* a case whose boots differed
under ``--repeat`` on either side (listed apart, never a regression), *new* and *removed* cases are on one side
only. Per clause (rolled up again from the cases' verdicts, so a firmware of a run has its own): pass ->
fail/error is a regression unless every case that failed it in B is flaky (then a flake). The set-up changes
are the firmware per arch (name, identity as the probe reported it, code sha256), the hypervisor and its
version, the spec and the accelerator.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vmconform.records import CaseRecord, RunRecord, firmware_identities
from vmconform.verdicts import roll_up, short

__all__ = ["CaseChange", "ClauseChange", "Comparison", "CompareError", "Side", "case_key", "compare", "side"]

BAD = ("fail", "error")


class CompareError(Exception):
    """Two runs (or firmwares) that cannot be compared as asked; the message is one line."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a run, optionally narrowed to one firmware."""

    label: str
    run: RunRecord
    firmware: str | None = None

    @property
    def results(self) -> tuple[CaseRecord, ...]:
        if self.firmware is None:
            return self.run.results
        return tuple(r for r in self.run.results if r.firmware == self.firmware)

    @property
    def firmware_names(self) -> tuple[str, ...]:
        names = [k.rsplit("/", 1)[0] for k in self.run.firmwares]
        return tuple(dict.fromkeys(n for n in names if self.firmware in (None, n)))

    def describe(self) -> str:
        run = self.run
        fws = ", ".join(self.firmware_names) or "?"
        version = run.hypervisor_version or "version not recorded"
        when = f"; {run.started}" if run.started else ""
        return f"{self.label} (hypervisor {run.hypervisor}: {version}; firmware {fws}; spec {run.spec}{when})"


def side(label: str, run: RunRecord, firmware: str | None = None) -> Side:
    """A side; CompareError when `firmware` is not one of the run's."""
    s = Side(label, run, firmware)
    if firmware is not None and not s.firmware_names:
        names = ", ".join(dict.fromkeys(k.rsplit("/", 1)[0] for k in run.firmwares)) or "none"
        raise CompareError(f"{label}: no firmware {firmware!r} in this run; it has: {names}")
    return s


def case_key(row: CaseRecord, run: RunRecord, with_firmware: bool = False) -> tuple[str, ...]:
    """(test, arch, catalogue case[, firmware]) of a case record; an old or bare record is read from its test ID."""
    name = row.test.split("::")[-1]
    test, _, param = name.partition("[")
    param = param.rstrip("]")
    case = row.case
    if not case and param:
        rest = param.removeprefix(f"{row.hypervisor or run.hypervisor}-")
        fws = sorted({k.rsplit("/", 1)[0] for k in run.firmwares} | {row.firmware} - {""}, key=len, reverse=True)
        case = next((rest.removeprefix(f"{fw}-") for fw in fws if rest.startswith(f"{fw}-")), rest)
    arch = row.arch or next((a for a in ("aarch64", "arm") if case.startswith(f"{a}-")), "")
    key = (test, arch, case)
    return (*key, row.firmware) if with_firmware else key


def is_flaky(row: CaseRecord) -> bool:
    return bool(row.extra.get("flaky"))


def repeats_text(row: CaseRecord) -> str:
    reps = row.extra.get("repeats") or []
    return ", ".join(str(r.get("observed") or r.get("stop") or "?") for r in reps if isinstance(r, dict))


@dataclass(frozen=True)
class CaseChange:
    kind: str  # regression | fix | flake | new | removed | changed
    key: tuple[str, ...]
    a: str  # outcome in A ("" when new)
    b: str  # outcome in B ("" when removed)
    detail: str = ""

    @property
    def name(self) -> str:
        """``test[case]``, with `` on FIRMWARE`` when firmwares pair by name."""
        test, _, case, *fw = self.key
        return f"{test}[{case}]" + (f" on {fw[0]}" if fw else "")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "test": self.key[0], "arch": self.key[1], "case": self.key[2],
                **({"firmware": self.key[3]} if len(self.key) > 3 else {}),
                "a": self.a, "b": self.b, "detail": self.detail}  # fmt: skip


@dataclass(frozen=True)
class ClauseChange:
    kind: str  # regression | fix | flake | changed
    clause: str
    level: str
    a: str
    b: str
    evidence: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "clause": self.clause, "level": self.level, "a": self.a, "b": self.b,
                "evidence": self.evidence}  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """What changed from side A to side B."""

    a: str
    b: str
    spec: str
    paired: int
    setup: tuple[tuple[str, str, str], ...] = ()  # what, a, b
    cases: tuple[CaseChange, ...] = ()
    clauses: tuple[ClauseChange, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def of(self, kind: str) -> list[CaseChange]:
        return [c for c in self.cases if c.kind == kind]

    @property
    def regressed(self) -> bool:
        return any(c.kind == "regression" for c in self.cases) or any(k.kind == "regression" for k in self.clauses)

    @property
    def exit_status(self) -> int:
        """1 when B has a regression (a case or a clause), else 0."""
        return 1 if self.regressed else 0

    def counts(self) -> dict[str, int]:
        kinds = ("regression", "fix", "flake", "new", "removed", "changed")
        return {k: sum(1 for c in self.cases if c.kind == k) for k in kinds}

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "spec": self.spec, "paired": self.paired,
            "setup": [{"what": w, "a": a, "b": b} for w, a, b in self.setup],
            "counts": self.counts(),
            "cases": [c.to_json() for c in self.cases],
            "clauses": [c.to_json() for c in self.clauses],
            "notes": list(self.notes),
            "regression": self.regressed,
        }  # fmt: skip

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def text(self) -> str:
        out = [f"A: {self.a}", f"B: {self.b}"]
        out += [f"note: {n}" for n in self.notes]
        out.append("set-up:" if self.setup else "set-up: unchanged")
        out += [f"  {what}: {a} -> {b}" for what, a, b in self.setup]
        n = self.counts()
        out.append(
            f"cases: {self.paired} paired; {n['regression']} regressed, {n['fix']} fixed, {n['flake']} flaky, "
            f"{n['new']} new, {n['removed']} removed, {n['changed']} otherwise changed"
        )
        for c in self.cases:
            if c.kind in ("new", "removed"):
                what = c.b if c.kind == "new" else c.a
            else:
                what = f"{c.a} -> {c.b}"
            out.append(f"  {c.kind.upper():<10} {c.name}: {what}{f' ({c.detail})' if c.detail else ''}")
        m = {k: sum(1 for c in self.clauses if c.kind == k) for k in ("regression", "fix", "flake", "changed")}
        out.append(
            f"clauses (spec {self.spec}): {m['regression']} regressed, {m['fix']} fixed, {m['flake']} flaky, "
            f"{m['changed']} otherwise changed"
        )
        for k in self.clauses:
            ev = f" ({k.evidence})" if k.evidence else ""
            out.append(f"  {k.kind.upper():<10} {k.clause} ({k.level}): {k.a} -> {k.b}{ev}")
        if self.regressed:
            nc = sum(1 for c in self.clauses if c.kind == "regression")
            out.append(f"verdict: REGRESSION ({_plural(n['regression'], 'case')}, {_plural(nc, 'clause')})")
        else:
            out.append("verdict: no regression")
        return "\n".join(out) + "\n"

    def html(self) -> str:
        e = html.escape
        css = {"regression": "#ffebe9", "fix": "#dafbe1", "flake": "#fff8c5", "new": "#ddf4ff", "removed": "#eaeef2",
               "changed": "#ffffff"}  # fmt: skip
        rows = "".join(
            f'<tr style="background:{css[c.kind]}"><td>{e(c.kind)}</td><td>{e(c.key[0])}</td><td>{e(c.key[1])}</td>'
            f"<td>{e(c.key[2])}</td><td>{e(c.a)}</td><td>{e(c.b)}</td><td>{e(c.detail)}</td></tr>"
            for c in self.cases
        )
        clauses = "".join(
            f'<tr style="background:{css[k.kind]}"><td>{e(k.kind)}</td><td>{e(k.clause)}</td><td>{e(k.level)}</td>'
            f"<td>{e(k.a)}</td><td>{e(k.b)}</td><td>{e(k.evidence)}</td></tr>"
            for k in self.clauses
        )
        setup = "".join(f"<tr><td>{e(w)}</td><td>{e(a)}</td><td>{e(b)}</td></tr>" for w, a, b in self.setup)
        verdict = "REGRESSION" if self.regressed else "no regression"
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>vmconform compare: '
            f"{e(verdict)}</title><style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:"
            "collapse}td,th{border:1px solid #d0d7de;padding:.2em .5em;text-align:left}</style></head><body>"
            f"<h1>vmconform compare: {e(verdict)}</h1><p>A: {e(self.a)}<br>B: {e(self.b)}</p>"
            + "".join(f"<p>note: {e(n)}</p>" for n in self.notes)
            + f"<h2>Set-up</h2><table><tr><th>what</th><th>A</th><th>B</th></tr>{setup}</table>"
            f"<h2>Cases ({self.paired} paired)</h2><table><tr><th>change</th><th>test</th><th>arch</th><th>case"
            f"</th><th>A</th><th>B</th><th>detail</th></tr>{rows}</table>"
            f"<h2>Clauses (spec {e(self.spec)})</h2><table><tr><th>change</th><th>clause</th><th>level</th>"
            f"<th>A</th><th>B</th><th>evidence in B</th></tr>{clauses}</table></body></html>\n"
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _setup_changes(a: Side, b: Side) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for what in ("hypervisor", "hypervisor_version", "spec", "accel"):
        va, vb = str(getattr(a.run, what)), str(getattr(b.run, what))
        if va != vb:
            out.append((what.replace("_", " "), va or "-", vb or "-"))
    ia, ib = firmware_identities(a.results), firmware_identities(b.results)
    ran = {r.arch for r in (*a.results, *b.results) if r.arch}  # an arch no case ran on has no set-up to compare
    for arch in sorted(ran or set(a.run.arches) | set(b.run.arches)):
        fa = [k for k in a.run.firmwares if k.endswith(f"/{arch}") and k.rsplit("/", 1)[0] in a.firmware_names]
        fb = [k for k in b.run.firmwares if k.endswith(f"/{arch}") and k.rsplit("/", 1)[0] in b.firmware_names]
        if len(fa) > 1 or len(fb) > 1:
            continue  # several firmwares per side: cases pair by firmware name, set-ups are each run's own
        ka, kb = (fa[0] if fa else ""), (fb[0] if fb else "")
        name_a, name_b = ka.rsplit("/", 1)[0] or "-", kb.rsplit("/", 1)[0] or "-"
        if name_a != name_b:
            out.append((f"firmware {arch}", name_a, name_b))
        ida = (a.run.firmwares[ka].identity if ka else "") or ia.get(ka, "")
        idb = (b.run.firmwares[kb].identity if kb else "") or ib.get(kb, "")
        if ida != idb:
            out.append((f"firmware {arch} identity", ida or "-", idb or "-"))
        sa = a.run.firmwares[ka].sha256.get("code", "-")[:16] if ka else "-"
        sb = b.run.firmwares[kb].sha256.get("code", "-")[:16] if kb else "-"
        if sa != sb:
            out.append((f"firmware {arch} code sha256", sa, sb))
    return out


def _keyed(s: Side, with_fw: bool, notes: list[str]) -> dict[tuple[str, ...], CaseRecord]:
    out: dict[tuple[str, ...], CaseRecord] = {}
    for r in s.results:
        out[case_key(r, s.run, with_fw)] = r
    if len(out) < len(s.results):
        extra = len(s.results) - len(out)
        notes.append(f"{s.label}: {extra} case record(s) repeat another's key; the last one is compared")
    return out


def _case_changes(a: Side, b: Side, with_fw: bool, notes: list[str]) -> tuple[int, list[CaseChange]]:
    ra, rb = _keyed(a, with_fw, notes), _keyed(b, with_fw, notes)
    changes: list[CaseChange] = []
    paired = 0
    for key, x in ra.items():
        y = rb.get(key)
        if y is None:
            changes.append(CaseChange("removed", key, x.outcome, ""))
            continue
        paired += 1
        if is_flaky(x) or is_flaky(y):
            sides = [f"{n}: {repeats_text(r)}" for n, r in (("A", x), ("B", y)) if is_flaky(r)]
            changes.append(CaseChange("flake", key, x.outcome, y.outcome, "; ".join(sides)))
        elif x.outcome == "passed" and y.outcome == "failed":
            changes.append(CaseChange("regression", key, x.outcome, y.outcome, short(y.message, 160)))
        elif x.outcome == "failed" and y.outcome == "passed":
            changes.append(CaseChange("fix", key, x.outcome, y.outcome))
        elif x.outcome != y.outcome:
            changes.append(CaseChange("changed", key, x.outcome, y.outcome))
    changes += [CaseChange("new", k, "", r.outcome) for k, r in rb.items() if k not in ra]
    order = {"regression": 0, "flake": 1, "fix": 2, "changed": 3, "new": 4, "removed": 5}
    changes.sort(key=lambda c: (order[c.kind], c.key))
    return paired, changes


def _clauses(s: Side, spec: str) -> dict[str, dict[str, Any]]:
    """The side's clause rows: the run's own roll-up, or (one firmware of a run) rolled up again from its cases."""
    if s.firmware is None:
        return {c.clause: c.to_json() for c in s.run.clauses}
    return {c["clause"]: c for c in roll_up((v.to_json() for r in s.results for v in r.verdicts), spec)}


def _clause_changes(a: Side, b: Side, spec: str) -> list[ClauseChange]:
    ca, cb = _clauses(a, spec), _clauses(b, spec)
    flaky_labels = {v.case for r in b.results if is_flaky(r) for v in r.verdicts}
    out: list[ClauseChange] = []
    for clause, x in ca.items():
        y = cb.get(clause)
        if y is None:
            continue
        if x["status"] == y["status"]:
            continue
        ev = short(y["evidence"][0], 160) if y["evidence"] and y["status"] in BAD else ""
        if x["status"] == "pass" and y["status"] in BAD:
            deciding = {v.case for r in b.results for v in r.verdicts if v.clause == clause and v.status in BAD}
            kind = "flake" if deciding and deciding <= flaky_labels else "regression"
        elif x["status"] in BAD and y["status"] == "pass":
            kind = "fix"
        else:
            kind = "changed"
        out.append(ClauseChange(kind, clause, str(y["level"]), str(x["status"]), str(y["status"]), ev))
    order = {"regression": 0, "flake": 1, "fix": 2, "changed": 3}
    return sorted(out, key=lambda c: order[c.kind])


def compare(a: Side, b: Side, *, allow_spec_change: bool = True) -> Comparison:
    """What changed from `a` to `b` (see the module docstring)."""
    if a.run.spec != b.run.spec and not allow_spec_change:
        raise CompareError(f"A is spec {a.run.spec} and B spec {b.run.spec}; compare runs of one spec version")
    with_fw = len(a.firmware_names) > 1 or len(b.firmware_names) > 1
    notes: list[str] = []
    if with_fw:
        notes.append("a side has several firmwares: cases pair by test, arch, case and firmware name")
    if a.run.spec != b.run.spec:
        notes.append(f"spec {a.run.spec} vs {b.run.spec}: clause levels differ; B's are shown")
    paired, cases = _case_changes(a, b, with_fw, notes)
    return Comparison(a.describe(), b.describe(), b.run.spec, paired, tuple(_setup_changes(a, b)), tuple(cases),
                      tuple(_clause_changes(a, b, b.run.spec)), tuple(notes))  # fmt: skip


def compare_runs(runs: Sequence[tuple[str, RunRecord]], firmwares: Sequence[str] = ()) -> Comparison:
    """``vmconform compare``: two runs (A B), or one run and two firmwares (RUN --firmware A --firmware B)."""
    if len(runs) == 1:
        if len(firmwares) != 2:
            raise CompareError("one run: give two firmwares of it (--firmware A --firmware B); or give two runs")
        (label, run) = runs[0]
        return compare(side(f"{label} firmware {firmwares[0]}", run, firmwares[0]),
                       side(f"{label} firmware {firmwares[1]}", run, firmwares[1]))  # fmt: skip
    if len(runs) != 2:
        raise CompareError(f"give two runs (A B), or one run with --firmware A --firmware B; got {len(runs)}")
    if len(firmwares) not in (0, 2):
        raise CompareError("--firmware: give it twice (A's and B's), or not at all")
    fa, fb = (firmwares[0], firmwares[1]) if firmwares else (None, None)
    return compare(side(runs[0][0], runs[0][1], fa), side(runs[1][0], runs[1][1], fb))
