"""The ``vmconform`` commands over finished runs: ``compare``, ``history`` and ``report merge``.

Each reads run folders (or their results.json) as run records; a problem is one line on stderr
(``vmconform: error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["COMMANDS", "add_commands", "merge_main", "run"]

COMMANDS = ("compare", "history")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``compare`` and ``history`` to the ``vmconform`` parser."""
    m = sub.add_parser(
        "compare",
        help="compare two runs (e.g. firmware release A vs B), or two firmwares of one run",
        description="Compare run A with run B (or, with one RUN, its --firmware A with its --firmware B). Cases pair "
        "by test, arch and catalogue case, whatever firmware or hypervisor ran them. It prints the set-up changes "
        "(firmware per arch: name, identity as the probe reported it, code sha256; hypervisor and its version), "
        "per case the regressions (passed -> failed), flakes (boots that differed under --repeat), fixes, other "
        "changes, new and removed cases, and per clause the regressions (pass -> fail/error), flakes and fixes.",
        epilog="exit status: 0 when B has no regression against A, 1 when it has one (a case or a clause), "
        "2 on unreadable input or bad arguments.",
    )
    m.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="A and B (run folders or results.json), or one")
    m.add_argument("--firmware", action="append", default=[], metavar="NAME",
                   help="twice: A's and B's firmware (with one RUN, two firmwares of that run)")  # fmt: skip
    fmt = m.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the comparison as JSON")
    fmt.add_argument("--html", type=Path, metavar="FILE", help="also write the comparison as an HTML page")
    h = sub.add_parser(
        "history",
        help="one HTML page over several runs: a row per clause (or case), a column per run",
        description="Render RUN... as one page: a row per clause (--by-case: per case), a column per run headed by "
        "its date, firmware and hypervisor versions, every cell coloured by verdict.",
    )
    h.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (or results.json), oldest first")
    h.add_argument("--by-case", action="store_true", help="a row per case (test, arch, catalogue case)")
    h.add_argument("-o", "--output", type=Path, default=Path("history.html"), help="default: history.html")


def _fail(msg: str) -> int:
    print(f"vmconform: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Run ``compare`` or ``history``; the exit status."""
    from vmconform.compare import CompareError, compare_runs
    from vmconform.history import history_html
    from vmconform.records import RecordError, load_run

    try:
        runs = [(str(p), load_run(p)) for p in args.runs]
        if args.command == "history":
            html = history_html(runs, by_case=args.by_case)
            args.output.write_text(html)
            print(f"wrote {args.output} ({len(runs)} runs)", file=sys.stderr)
            return 0
        cmp = compare_runs(runs, args.firmware)
        if args.html:
            args.html.write_text(cmp.html())
    except (RecordError, CompareError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename}: cannot write ({e.strerror})")
    print(cmp.dumps() if args.json else cmp.text(), end="")
    return cmp.exit_status


def merge_main(argv: Sequence[str]) -> int:
    """``vmconform report merge RUN... -o DIR``."""
    from vmconform.history import MergeError, write_merged
    from vmconform.records import RecordError, load_run
    from vmconform.report import overall

    p = argparse.ArgumentParser(
        prog="vmconform report merge",
        description="Merge the shards of one matrix run (parts run by separate CI jobs) into one run folder: "
        "results.json, report.html and the transcripts. Shards of different hypervisors (entry or version) or "
        "spec versions are refused unless --allow-mixed.",
    )
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="the shards' run folders (or results.json)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="the merged run folder")
    p.add_argument("--allow-mixed", action="store_true", help="merge shards of different hypervisors or specs")
    args = p.parse_args(argv)
    try:
        shards = [(path, load_run(path)) for path in args.runs]
        merged = write_merged(shards, args.output, args.allow_mixed)
    except (RecordError, MergeError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename}: cannot write ({e.strerror})")
    verdict, why = overall(merged)
    print(f"{verdict.upper()}: {why}")
    print(f"merged {len(shards)} runs ({len(merged.results)} cases) into {args.output}", file=sys.stderr)
    return 0
