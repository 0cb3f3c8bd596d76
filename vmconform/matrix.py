"""The case matrix of report.html: a row per catalogue case, a column per arch and firmware, a cell per test.

Each cell holds one coloured mark per test that ran the case there (its outcome; ``flaky`` when its boots differed
under ``--repeat``), linking to that test's transcript. Also the clause rows in report order (failures first) and
the counts the page shows, so a test can hold the page's numbers against results.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmconform.records import CaseRecord, ClauseRecord, RunRecord

__all__ = ["Cell", "Matrix", "case_matrix", "clauses_failures_first", "outcome_counts"]

STATUS_ORDER = ("fail", "error", "not-supported", "not-tested", "pass")


@dataclass(frozen=True)
class Cell:
    """One test of one case on one arch and firmware."""

    outcome: str  # passed | failed | skipped | flaky
    test: str
    title: str
    link: str  # the transcript, relative to the run folder ("" when none)


@dataclass(frozen=True)
class Matrix:
    columns: tuple[tuple[str, str], ...]  # (arch, firmware)
    rows: tuple[tuple[str, tuple[tuple[Cell, ...], ...]], ...]  # case (without its arch), one cell list per column


def outcome(row: CaseRecord) -> str:
    return "flaky" if row.extra.get("flaky") else row.outcome


def case_matrix(run: RunRecord, run_dir: Path | None = None) -> Matrix:
    """The run's matrix (see the module docstring); rows sorted by case, columns by arch then firmware."""
    from vmconform.compare import case_key
    from vmconform.report import transcript_link

    fw_order = list(dict.fromkeys(k.rsplit("/", 1)[0] for k in run.firmwares))
    cells: dict[tuple[str, str, str], list[Cell]] = {}
    for row in run.results:
        test, arch, case = case_key(row, run)
        name = case.removeprefix(f"{arch}-") if arch else case
        firmware = row.firmware or (fw_order[0] if len(fw_order) == 1 else "?")
        what = outcome(row)
        title = f"{test} on {case} ({firmware}): {what}" + (f" — {row.message}" if row.message else "")
        if what == "flaky":
            reps = row.extra.get("repeats") or []
            title += " — boots: " + ", ".join(str(r.get("observed", "?")) for r in reps if isinstance(r, dict))
        link = transcript_link(row.transcript, run_dir)
        cells.setdefault((name, arch, firmware), []).append(Cell(what, test, title, link))
    seen = {(a, f) for _, a, f in cells}
    arches = list(dict.fromkeys([*run.arches, *(a for a, _ in seen)]))
    columns = [(a, f) for a in arches for f in [*fw_order, "?"] if (a, f) in seen]
    names = sorted({n for n, _, _ in cells})
    rows = tuple(
        (n, tuple(tuple(sorted(cells.get((n, a, f), []), key=lambda c: c.test)) for a, f in columns)) for n in names
    )
    return Matrix(tuple(columns), rows)


def clauses_failures_first(run: RunRecord) -> list[ClauseRecord]:
    """The clause rows, failing ones first (fail, error, not-supported, not-tested, pass), else in catalogue order."""
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}
    return sorted(run.clauses, key=lambda c: rank.get(c.status, len(rank)))


def outcome_counts(run: RunRecord) -> dict[str, int]:
    """Cases per outcome (flaky counted apart) and clauses per status, as the page shows them."""
    out: dict[str, int] = {}
    for row in run.results:
        out[f"cases-{outcome(row)}"] = out.get(f"cases-{outcome(row)}", 0) + 1
    for c in run.clauses:
        out[f"clauses-{c.status}"] = out.get(f"clauses-{c.status}", 0) + 1
    return out
