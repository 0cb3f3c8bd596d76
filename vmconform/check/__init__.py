"""`vmconform check`: read any disk image and judge it against the spec's image clauses.

    report = check_image(Path("disk.img"))      # raises DiskError (one line) if it is not a disk at all
    print(report.table()); sys.exit(report.exit_status)

Each row is one rule (`CHECKS`), with its clause, the clause's level (from `vmconform.clauses`),
a verdict (pass / fail / skip: not decidable because an earlier rule failed / error: not decided
because a cost budget stopped the check, see budget.py) and the evidence.
Exit status: 0 when every MUST-level row holds, 1 when one fails or could not be decided (2 is the
CLI's, for DiskError). The text table escapes control characters read from the image (text.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmconform import clauses as cl
from vmconform.check.rules import CHECK_DEFS, CHECKS, ERROR, FAIL, PASS, SKIP, CheckDef, Checker, Row
from vmconform.check.source import DiskError, MemorySource, Source, open_image
from vmconform.check.text import printable

__all__ = [
    "CHECKS",
    "CHECK_DEFS",
    "CheckDef",
    "DiskError",
    "ERROR",
    "FAIL",
    "MemorySource",
    "PASS",
    "Report",
    "Row",
    "SKIP",
    "Source",
    "check_image",
    "check_source",
    "level_of",
]


def level_of(clause: str) -> str:
    """The clause's level (MUST / SHOULD ...) in the default spec version."""
    try:
        return cl.get(clause).level(cl.DEFAULT_SPEC) or cl.MUST
    except KeyError:
        return cl.MUST


@dataclass(frozen=True)
class Report:
    image: str
    format: str
    size: int
    sector_size: int
    sector_size_note: str
    rows: tuple[Row, ...]

    @property
    def failed(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.verdict == FAIL)

    @property
    def must_failures(self) -> tuple[Row, ...]:
        return tuple(r for r in self.failed if level_of(r.clause) == cl.MUST)

    @property
    def warnings(self) -> tuple[Row, ...]:
        return tuple(r for r in self.failed if level_of(r.clause) != cl.MUST)

    @property
    def must_errors(self) -> tuple[Row, ...]:
        """MUST rows not decided: a cost budget stopped the check before it could tell."""
        return tuple(r for r in self.rows if r.verdict == ERROR and level_of(r.clause) == cl.MUST)

    @property
    def exit_status(self) -> int:
        return 1 if self.must_failures or self.must_errors else 0

    def verdict(self, check_id: str) -> str:
        return next(r.verdict for r in self.rows if r.id == check_id)

    def clause_verdict(self, clause: str) -> str:
        """fail if any of the clause's rows fails; else error if one was not decided; skip if all were
        skipped; else pass."""
        verdicts = {r.verdict for r in self.rows if r.clause == clause}
        if FAIL in verdicts:
            return FAIL
        return ERROR if ERROR in verdicts else SKIP if verdicts == {SKIP} else PASS

    def failed_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "format": self.format,
            "size": self.size,
            "sector_size": self.sector_size,
            "sector_size_from": self.sector_size_note,
            "exit_status": self.exit_status,
            "must_failures": [r.id for r in self.must_failures],
            "must_errors": [r.id for r in self.must_errors],
            "warnings": [r.id for r in self.warnings],
            "clauses": {clause: self.clause_verdict(clause) for clause in dict.fromkeys(c.clause for c in CHECK_DEFS)},
            "rows": [
                {
                    "id": r.id,
                    "clause": r.clause,
                    "level": level_of(r.clause),
                    "verdict": r.verdict,
                    "title": CHECKS[r.id].title,
                    "evidence": r.evidence,
                }
                for r in self.rows
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n"

    def table(self) -> str:
        size = _human(self.size)
        lines = [
            f"{printable(self.image)}: {self.format}, {size}, {self.sector_size}-byte sectors "
            f"({self.sector_size_note})",
            "",
            f"{'CLAUSE':<6} {'LEVEL':<6} {'VERDICT':<7} {'CHECK':<22} EVIDENCE",
        ]
        for r in self.rows:
            level = "MUST" if level_of(r.clause) == cl.MUST else "SHOULD"
            verdict = r.verdict.upper() if r.verdict in (FAIL, ERROR) else r.verdict
            lines.append(f"{r.clause:<6} {level:<6} {verdict:<7} {r.id:<22} {_one_line(r.evidence)}")
        lines.append("")
        if self.must_failures:
            clauses = ", ".join(dict.fromkeys(r.clause for r in self.must_failures))
            lines.append(f"result: FAIL: {len(self.must_failures)} MUST rule(s) broken ({clauses})")
        elif self.must_errors:
            ids = ", ".join(r.id for r in self.must_errors)
            lines.append(f"result: INCOMPLETE: {len(self.must_errors)} MUST rule(s) not decided within budget ({ids})")
        else:
            lines.append("result: pass: every MUST rule holds")
        if self.warnings:
            lines.append(
                f"warnings: {len(self.warnings)} SHOULD rule(s) broken: " + ", ".join(r.id for r in self.warnings)
            )
        return "\n".join(lines) + "\n"


def _one_line(text: str, width: int = 160) -> str:
    """`text` as one terminal-safe line (line breaks and escapes from the image escaped), cut to `width`."""
    text = printable(text)
    return text if len(text) <= width else text[: width - 3] + "..."


def _human(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_source(
    source: Source, name: str = "<image>", fmt: str = "raw", arch: str | None = None, sector_size: int | None = None
) -> Report:
    """Judge an opened image. Never raises for any content (short, random, self-referencing)."""
    if source.size < 512:
        raise DiskError(f"{name}: {source.size} bytes is smaller than one 512-byte sector; not a disk image")
    result = Checker(source, arch=arch, sector_size=sector_size).run()
    return Report(name, fmt, source.size, result.sector_size, result.sector_size_note, result.rows)


def check_image(path: Path, arch: str | None = None, sector_size: int | None = None) -> Report:
    """Judge the disk image at `path` (raw; qcow2, vmdk, vhdx, vdi through qemu-img).

    `arch` limits the boot file looked for (aarch64: BOOTAA64.EFI, arm: BOOTARM.EFI; None: either).
    `sector_size` overrides detection (GPT header at byte 512 or 4096, else 512).
    Raises DiskError (one line naming the file) when the file cannot be read as a disk at all.
    """
    with open_image(path) as (source, fmt):
        return check_source(source, str(path), fmt, arch, sector_size)
