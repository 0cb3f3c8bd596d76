"""Several runs at once: merging the shards of one matrix run, and the history page of a series of runs.

``merge`` joins shards (parts of one matrix run by separate CI jobs) into one run record: results, firmwares and
arches united, clauses rolled up again over every case, transcripts copied so their links still work. It refuses
to mix hypervisors (entry or version) or spec versions unless told to (``allow_mixed``).

``history_html`` renders one page: a row per clause (or per case), a column per run (its date, firmware and
hypervisor versions), each cell coloured by verdict.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from vmconform.compare import CaseChange, case_key
from vmconform.records import ClauseRecord, FirmwareRecord, RunRecord, firmware_identities
from vmconform.verdicts import roll_up

__all__ = ["MergeError", "history_html", "merge", "write_merged"]


class MergeError(Exception):
    """Shards that cannot be merged as asked; the message is one line."""


def merge(shards: Sequence[tuple[str, RunRecord]], allow_mixed: bool = False) -> RunRecord:
    """One run record from `shards` (label, record); MergeError on a mix unless `allow_mixed`."""
    if not shards:
        raise MergeError("no runs to merge")
    first_label, first = shards[0]
    for label, run in shards[1:]:
        for what in ("hypervisor", "hypervisor_version", "spec"):
            va, vb = getattr(first, what), getattr(run, what)
            if va != vb and not allow_mixed:
                raise MergeError(
                    f"{label}: {what.replace('_', ' ')} {vb!r}, but {first_label} has {va!r}; merge shards of one "
                    f"hypervisor and spec version (or pass --allow-mixed)"
                )
    firmwares: dict[str, FirmwareRecord] = {}
    for label, run in shards:
        for key, fw in run.firmwares.items():
            if key in firmwares and dict(firmwares[key].sha256) != dict(fw.sha256) and not allow_mixed:
                raise MergeError(
                    f"{label}: firmware {key} differs from the other shards' (sha256); merge shards of one set-up "
                    f"(or pass --allow-mixed)"
                )
            firmwares.setdefault(key, fw)
    results = tuple(r for _, run in shards for r in run.results)
    idents = firmware_identities(results)
    firmwares = {k: fw if fw.identity else replace(fw, identity=idents.get(k, "")) for k, fw in firmwares.items()}
    spec = first.spec
    clauses = tuple(
        ClauseRecord.from_json(c) for c in roll_up((v.to_json() for r in results for v in r.verdicts), spec)
    )
    arches = tuple(dict.fromkeys(a for _, run in shards for a in run.arches))
    notes = [n for _, run in shards for n in run.notes]
    notes.append(f"merged from {len(shards)} runs: {', '.join(label for label, _ in shards)}")
    mixed = {what for what in ("hypervisor", "hypervisor_version", "spec") for _, r in shards
             if getattr(r, what) != getattr(first, what)}  # fmt: skip
    if mixed:
        notes.append(f"the runs differ in {', '.join(sorted(mixed))} (merged with --allow-mixed)")
    return replace(
        first,
        arches=arches,
        firmwares=firmwares,
        exit_status=max(run.exit_status for _, run in shards),
        clauses=clauses,
        results=results,
        vendor_files_changed=tuple(x for _, run in shards for x in run.vendor_files_changed),
        orphan_vms_killed=tuple(x for _, run in shards for x in run.orphan_vms_killed),
        started=min((run.started for _, run in shards if run.started), default=""),
        ended=max((run.ended for _, run in shards if run.ended), default=""),
        notes=tuple(dict.fromkeys(notes)),
    )


def write_merged(shards: Sequence[tuple[Path, RunRecord]], out: Path, allow_mixed: bool = False) -> RunRecord:
    """Merge and write ``out/results.json``, ``out/report.html`` and the shards' ``cases/`` folders."""
    from vmconform import report

    run = merge([(str(p), r) for p, r in shards], allow_mixed)
    out.mkdir(parents=True, exist_ok=True)
    for path, _ in shards:
        src = (path if path.is_dir() else path.parent) / "cases"
        if src.is_dir():
            shutil.copytree(src, out / "cases", dirs_exist_ok=True, symlinks=True)
    (out / "results.json").write_text(run.dumps())
    report.write_html(run, out)
    return run


_COLOURS = {"pass": "#2da44e", "passed": "#2da44e", "fail": "#cf222e", "failed": "#cf222e", "error": "#8250df",
            "not-supported": "#bf8700", "not-tested": "#afb8c1", "skipped": "#afb8c1", "flaky": "#fb8f44"}  # fmt: skip


def _cell(status: str, title: str) -> str:
    if not status:
        return '<td class="none" title="not in this run">—</td>'
    colour = _COLOURS.get(status, "#57606a")
    e = html.escape
    return f'<td class="v" style="background:{colour}" title="{e(title)}">{e(status)}</td>'


def _column_head(label: str, run: RunRecord) -> str:
    e = html.escape
    fws = sorted({k.rsplit("/", 1)[0] for k in run.firmwares})
    idents = [f"{key}: {fw.identity}" for key, fw in sorted(run.firmwares.items()) if fw.identity]
    return (
        f"<th><div>{e(run.started or '?')}</div><div>{e(', '.join(fws))}</div>"
        f"<div class=small>{e('; '.join(idents))}</div><div class=small>{e(run.hypervisor)}: "
        f"{e(run.hypervisor_version or '?')}</div><div class=small>{e(label)}</div></th>"
    )


def history_html(runs: Sequence[tuple[str, RunRecord]], by_case: bool = False) -> str:
    """One page: a row per clause (per case with `by_case`), a column per run, cells coloured by verdict."""
    e = html.escape
    rows: dict[str, list[tuple[str, str]]] = {}
    for i, (_, run) in enumerate(runs):
        if by_case:
            for r in run.results:
                several = len({k.rsplit("/", 1)[0] for k in run.firmwares}) > 1
                name = CaseChange("", case_key(r, run, several), "", "").name  # test[case], " on FW" when several
                status = "flaky" if r.extra.get("flaky") else r.outcome
                rows.setdefault(name, [("", "")] * len(runs))[i] = (status, r.message or r.test)
        else:
            for c in run.clauses:
                label = f"{c.clause} ({c.level})"
                rows.setdefault(label, [("", "")] * len(runs))[i] = (c.status, "; ".join(c.evidence) or c.title)
    head = "".join(_column_head(label, run) for label, run in runs)
    body = "".join(
        f"<tr><th class=row>{e(name)}</th>{''.join(_cell(s, t) for s, t in cells)}</tr>"
        for name, cells in (sorted(rows.items()) if by_case else rows.items())
    )
    what = "case" if by_case else "clause"
    legend = "".join(_cell(s, s) for s in ("pass", "fail", "error", "not-supported", "not-tested", "flaky"))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>vmconform history: {len(runs)} runs by {what}</title><style>"
        "body{font:13px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "th,td{border:1px solid #d0d7de;padding:.25em .5em;text-align:left;vertical-align:top}"
        "td.v{color:#fff;font-weight:600}th.row{font-weight:500;white-space:nowrap}.small{font-size:11px;"
        "color:#57606a;font-weight:400}</style></head><body>"
        f"<h1>vmconform history: {len(runs)} runs, one row per {what}</h1>"
        f"<table><tr><th>legend</th>{legend}</tr></table><p></p>"
        f"<table><tr><th>{what}</th>{head}</tr>{body}</table></body></html>\n"
    )
