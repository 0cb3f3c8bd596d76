"""Reports from a run record (``results.json``): the overall verdict and the HTML certificate.

The run record (`vmconform.records`) is the one source: the pytest layer writes it, and everything here can
be re-made from it later (``vmconform report RUN``); comparing runs is `vmconform.compare`, several runs at once
(merge, history) `vmconform.history`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from vmconform.enums import Status
from vmconform.records import RecordError, RunRecord, load_run

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


def secure_boot_lines(run: RunRecord) -> list[str]:
    """Per firmware and arch, whether the VM enforces Secure Boot and what follows (`vmconform.secureboot`)."""
    from vmconform.secureboot import run_lines

    return run_lines((r.firmware, r.arch, str(r.extra.get("secure_boot_keys", "")), r.probe) for r in run.results)


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
                                secure_boot=secure_boot_lines(run),
                                matrix=matrix.case_matrix(run, run_dir), clauses=matrix.clauses_failures_first(run),
                                counts=matrix.outcome_counts(run))  # fmt: skip
    return html


def write_html(run: RunRecord, run_dir: Path) -> Path:
    out = run_dir / "report.html"
    out.write_text(render_html(run, run_dir))
    return out
