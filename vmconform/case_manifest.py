"""The catalogue as `vmconform gen` writes it out: the text table and JSON of ``gen --list``, and ``gen --all``'s
directory holding every case image that has a probe, with ``manifest.json`` describing each.
"""

from __future__ import annotations

import json
from pathlib import Path

from vmconform.cases import Case, catalogue, default_nonce, fallback_case, has_probe, write_image


def case_record(case: Case) -> dict[str, object]:
    """The case as plain data (what `vmconform gen --list --json` and manifest.json hold)."""
    return {
        "name": case.name,
        "arch": case.arch,
        "layout": case.layout,
        "defect": case.defect,
        "expect": case.expect,
        "edk2": case.edk2,
        "edk2_evidence": case.edk2_evidence,
        "clauses": list(case.clauses),
        "violates": list(case.violates),
        "check_fails": list(case.fails),
        "needs_fallback": case.needs_fallback,
        "writes_disk": case.writes_disk,
        "sector_size": case.sector_size,
        "read_only": case.read_only,
        "summary": case.summary,
        "rationale": case.rationale,
        "has_probe": has_probe(case.arch),
    }


def catalogue_json() -> str:
    return json.dumps([case_record(c) for c in catalogue()], indent=2, ensure_ascii=False) + "\n"


def catalogue_table() -> str:
    """The catalogue as a text table: one line per case."""
    rows = [("CASE", "EXPECT", "EDK2", "BREAKS", "SUMMARY")]
    for case in catalogue():
        edk2 = case.edk2 if case.edk2_evidence.startswith("observed") else f"{case.edk2}?"
        summary = case.summary + ("" if has_probe(case.arch) else " [no probe yet]")
        rows.append((case.name, case.expect, edk2, ",".join(case.violates) or "-", summary))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    legend = (
        "EXPECT: what UEFI requires (recovers = boots, may rewrite the GPT; falls-through = the next boot option "
        "runs;\neither = both conform). EDK2: what ArmVirtQemu did (? = predicted from reading its code). BREAKS: "
        "the spec clauses\nthe image violates (vmconform check fails them)."
    )
    return "\n".join(lines) + "\n\n" + legend + "\n"


def write_matrix(directory: Path) -> tuple[list[Path], list[Case]]:
    """Write every case that has a probe into `directory` (``<case>.img``) and ``manifest.json``.

    Returns (files written, cases skipped for want of a probe). A case that may fall through names its
    fallback: the same arch's reference image (its nonce differs from every other case's).
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: list[Case] = []
    manifest = []
    for case in catalogue():
        if not has_probe(case.arch):
            skipped.append(case)
            continue
        nonce = default_nonce(case)
        path = write_image(case, nonce, directory / f"{case.name}.img")
        written.append(path)
        record = case_record(case) | {"file": path.name, "nonce": nonce}
        if case.needs_fallback:
            fb = fallback_case(case)
            record |= {"fallback_file": f"{fb.name}.img", "fallback_nonce": default_nonce(fb)}
        manifest.append(record)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return written, skipped
