"""Reports from a run record (``results.json``): the overall verdict, the HTML certificate, comparing two runs.

The run record (`vmconform.records`) is the one source: the pytest layer writes it, and everything here can
be re-made from it later (``vmconform report RUN``, ``vmconform compare A B``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmconform.enums import Status
from vmconform.records import CaseRecord, RecordError, RunRecord, load_run

CONFORMS, DOES_NOT_CONFORM, INCOMPLETE = "conforms", "does not conform", "incomplete"


ReportError = RecordError  # a run folder or results file that cannot be read (one-line message)


def load_results(path: Path) -> RunRecord:
    """``path`` is a run folder (or ``reports/latest``) or a results.json file."""
    return load_run(path)


def overall(run: RunRecord) -> tuple[str, str]:
    """(verdict, why) over the MUST clauses of the run's spec.

    Only a MUST clause that *fails* (evidence that the VM did wrong) makes the run not conform; a MUST
    clause in error (the harness or host could not decide) or not tested leaves it incomplete.
    """
    must = [c for c in run.clauses if c.level == "MUST"]
    failed = [c.clause for c in must if c.status == Status.FAIL]
    errors = [c.clause for c in must if c.status == Status.ERROR]
    untested = [c.clause for c in must if c.status == Status.NOT_TESTED]
    if failed:
        more = f"; undecided: {', '.join(errors)}" if errors else ""
        return DOES_NOT_CONFORM, f"MUST clauses failing: {', '.join(failed)}{more}"
    if errors:
        return INCOMPLETE, f"the harness could not decide MUST clauses {', '.join(errors)} (see their evidence)"
    if untested:
        return INCOMPLETE, f"MUST clauses not tested by this run: {', '.join(untested)}"
    return CONFORMS, f"all {len(must)} MUST clauses pass"


def firmware_identities(run: RunRecord) -> list[str]:
    """Vendor and revisions as the probe reported them, one entry per distinct firmware."""
    seen: dict[str, str] = {}
    for row in run.results:
        for line in row.probe:
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[2] == "FW":
                fields = parts[3]
                vendor = fields.split("vendor=", 1)[1] if "vendor=" in fields else "?"
                rev = next((f.split("=")[1] for f in fields.split() if f.startswith("fw_rev=")), "?")
                uefi = next((f.split("=")[1] for f in fields.split() if f.startswith("uefi_rev=")), "?")
                key = f"{row.firmware or '?'}/{row.arch or '?'}"
                seen[key] = f"{vendor}, firmware revision 0x{rev}, UEFI revision 0x{uefi}"
    return [f"{k}: {v}" for k, v in sorted(seen.items())]


def transcript_link(transcript: str, run_dir: Path | None) -> str:
    """A transcript as a link inside the run folder, or "" when it is not one: only relative paths below the
    run folder are links (never an absolute path, ``..``, or a URL such as ``javascript:``)."""
    if not transcript:
        return ""
    path = Path(transcript)
    if path.is_absolute():
        if run_dir is None:
            return ""
        try:
            path = path.relative_to(run_dir.resolve())
        except ValueError:
            try:
                path = path.relative_to(run_dir)
            except ValueError:
                return ""
    text = path.as_posix()
    if ".." in path.parts or ":" in text or text.startswith("/") or any(ord(ch) < 32 for ch in text):
        return ""
    return text


@functools.cache
def _templates() -> Any:
    """The report templates (jinja2 loads here, when a report is first rendered)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("vmconform", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )


def render_html(run: RunRecord, run_dir: Path | None = None) -> str:
    verdict, why = overall(run)
    rows = [{**r.to_json(), "transcript_link": transcript_link(r.transcript, run_dir)} for r in run.results]
    template = _templates().get_template("report.html.j2")
    from vmconform import matrix

    html: str = template.render(doc=run, verdict=verdict, why=why, rows=rows, identities=firmware_identities(run),
                                matrix=matrix.case_matrix(run, run_dir), clauses=matrix.clauses_failures_first(run),
                                counts=matrix.outcome_counts(run))  # fmt: skip
    return html


def write_html(run: RunRecord, run_dir: Path) -> Path:
    out = run_dir / "report.html"
    out.write_text(render_html(run, run_dir))
    return out


# --- comparing two runs (firmware release A vs B) ------------------------------


@dataclass
class Comparison:
    a: str
    b: str
    clause_changes: list[tuple[str, str, str, str]] = field(default_factory=list)  # clause, level, a, b
    case_changes: list[tuple[str, str, str]] = field(default_factory=list)  # case key, a, b
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    setup_changes: list[tuple[str, str, str]] = field(default_factory=list)  # what, a, b

    @property
    def regressions(self) -> list[tuple[str, str, str, str]]:
        return [c for c in self.clause_changes if c[2] == Status.PASS and c[3] in (Status.FAIL, Status.ERROR)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "setup_changes": [dict(zip(("what", "a", "b"), c, strict=True)) for c in self.setup_changes],
            "clause_changes": [dict(zip(("clause", "level", "a", "b"), c, strict=True)) for c in self.clause_changes],
            "case_changes": [dict(zip(("case", "a", "b"), c, strict=True)) for c in self.case_changes],
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "regressions": [c[0] for c in self.regressions],
        }

    def text(self) -> str:
        out = [f"A: {self.a}", f"B: {self.b}"]
        for what, a, b in self.setup_changes:
            out.append(f"  setup    {what}: {a} -> {b}")
        if not (self.clause_changes or self.case_changes or self.only_in_a or self.only_in_b):
            out.append("no differences in clause verdicts or case outcomes")
        for clause, level, a, b in self.clause_changes:
            mark = "REGRESSION" if a == Status.PASS and b in (Status.FAIL, Status.ERROR) else "changed"
            out.append(f"  {mark:<10} {clause} ({level}): {a} -> {b}")
        for case, a, b in self.case_changes:
            out.append(f"  case       {case}: {a} -> {b}")
        out += [f"  only in A  {c}" for c in self.only_in_a]
        out += [f"  only in B  {c}" for c in self.only_in_b]
        return "\n".join(out)


def _case_key(row: CaseRecord) -> str:
    # The test id without the hypervisor part varies only by case and firmware name.
    return row.test.split("::")[-1]


def compare(a: RunRecord, b: RunRecord, a_name: str = "A", b_name: str = "B") -> Comparison:
    cmp = Comparison(a_name, b_name)
    for what in ("hypervisor", "spec", "accel"):
        if getattr(a, what) != getattr(b, what):
            cmp.setup_changes.append((what, str(getattr(a, what)), str(getattr(b, what))))
    for key in sorted(set(a.firmwares) | set(b.firmwares)):
        sa = a.firmwares[key].sha256.get("code", "-") if key in a.firmwares else "-"
        sb = b.firmwares[key].sha256.get("code", "-") if key in b.firmwares else "-"
        if sa != sb:
            cmp.setup_changes.append((f"firmware {key} code sha256", sa[:16], sb[:16]))
    ca = {c.clause: c for c in a.clauses}
    cb = {c.clause: c for c in b.clauses}
    for clause in [c for c in ca if c in cb] + [c for c in cb if c not in ca]:
        sa = ca[clause].status if clause in ca else "absent"
        sb = cb[clause].status if clause in cb else "absent"
        if sa != sb:
            level = (cb.get(clause) or ca[clause]).level
            cmp.clause_changes.append((clause, level, sa, sb))
    ra = {_case_key(r): r.outcome for r in a.results}
    rb = {_case_key(r): r.outcome for r in b.results}
    for key in ra:
        if key in rb and ra[key] != rb[key]:
            cmp.case_changes.append((key, ra[key], rb[key]))
    cmp.only_in_a = [k for k in ra if k not in rb]
    cmp.only_in_b = [k for k in rb if k not in ra]
    return cmp
