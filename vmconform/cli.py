"""``vmconform``: generate reference disk images and boot any disk image on a configured hypervisor.

The parser and the dispatch, with ``check`` and ``report``; ``gen`` is in `cli_gen`, ``boot`` in `cli_boot`,
``compare``, ``history`` and ``report merge`` in `cli_runs`.

Errors are one line on stderr (``vmconform: error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vmconform import cli_boot, cli_gen
from vmconform.cli_common import ARCH_NAMES, CliError

EPILOG_MAIN = """\
examples:
  vmconform gen --arch aarch64 -o disk.img            write the aarch64 reference image
  vmconform gen --list                                every case: layout, defect, expected outcome, clauses
  vmconform gen --defect gpt-both-crc -o bad.img      one malformed image
  vmconform gen --all -o matrix/                      the whole matrix, with matrix/manifest.json
  vmconform gen --listing --arch arm --mode warm      the probe's assembly, with its comments
  vmconform gen --signed -o sb.img                    the probe signed with vmconform's test key (Secure Boot)
  vmconform check disk.img                            judge any disk image against the image clauses
  vmconform boot disk.img                             boot it on the default hypervisor, console on stdout
  vmconform boot --hypervisor qemu --keep out/ disk.img   keep transcript and command line in out/
  vmconform report reports/latest                     re-render the certificate, print the verdict
  vmconform compare reports/RUN-A reports/RUN-B       what changed between two runs (firmware A vs B)
  vmconform compare RUN --firmware A --firmware B     two firmwares of one run
  vmconform report merge SHARD... -o DIR              one run from the shards of a matrix run
  vmconform history RUN... [--by-case] -o h.html      a row per clause (case), a column per run

The conformance suite itself runs under pytest: `pytest` (or `pytest --hypervisor=kvm`) in the checkout;
see README.md.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vmconform",
        description="Reference disk images and boots for the VM System Specification for Arm Processors.",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    cli_gen.add_command(sub)

    c = sub.add_parser(
        "check",
        help="judge any disk image against the spec's image clauses (GPT, ESP, FAT32, boot file, no firmware)",
        description="Read IMAGE (raw; qcow2, vmdk, vhdx and vdi through qemu-img) and report every image rule: "
        "protective MBR, both GPT headers and entry arrays, partition ranges, exactly one ESP, FAT32 by cluster "
        "count with FSInfo, a loop-free tree, \\EFI\\BOOT\\BOOTAA64.EFI / BOOTARM.EFI in any case, a PE of the "
        "right machine type with subsystem 10, and no firmware volume or variable store inside the image.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 when every MUST rule holds (SHOULD failures are warnings); 1 when one fails, or\n"
        "could not be decided within check's cost budgets (verdict error, result INCOMPLETE); 2 when IMAGE cannot\n"
        "be read as a disk at all, names another file (backing file, data file, extents) or would expand past\n"
        "the conversion cap (one line says why); 3 on an internal error.",
    )
    c.add_argument("image", type=Path, help="disk image file (or block device), opened read-only")
    c.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    c.add_argument("--arch", choices=ARCH_NAMES, help="look only for this architecture's boot file (default: either)")
    c.add_argument(
        "--sector-size",
        type=int,
        choices=(512, 1024, 2048, 4096),
        help="logical block size (default: found from the GPT's position, else 512)",
    )

    cli_boot.add_command(sub)

    r = sub.add_parser(
        "report",
        help="(re)write a run's report.html from its results.json and print its verdict",
        description="Render RUN's report.html (the certificate) from RUN/results.json and print the overall "
        "verdict. RUN is a run folder under reports/ (reports/latest is the newest). `vmconform report merge "
        "RUN... -o DIR` merges the shards of one matrix run.",
    )
    r.add_argument("run", type=Path, help="run folder (or its results.json)")
    r.add_argument("-o", "--output", type=Path, help="HTML file to write (default: RUN/report.html)")

    from vmconform import cli_runs

    cli_runs.add_commands(sub)  # compare, history
    return p


def _cmd_report(args: argparse.Namespace) -> int:
    from vmconform import report

    try:
        doc = report.load_results(args.run)
    except report.ReportError as e:
        raise CliError(str(e)) from None
    run_dir = args.run if args.run.is_dir() else args.run.parent
    out = args.output or run_dir / "report.html"
    try:
        out.write_text(report.render_html(doc, run_dir))
    except OSError as e:
        raise CliError(f"{out}: cannot write ({e.strerror})") from None
    verdict, why = report.overall(doc)
    print(f"{verdict.upper()}: {why}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from vmconform.check import DiskError, check_image

    try:
        report = check_image(args.image, arch=args.arch, sector_size=args.sector_size)
    except DiskError as e:
        raise CliError(str(e)) from None
    except Exception as e:  # a bug in vmconform, not a property of the image: say so in one line
        print(f"vmconform: internal error checking {args.image}: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    print(report.to_json() if args.json else report.table(), end="")
    return report.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["report", "merge"]:  # vmconform report merge RUN... -o DIR
        from vmconform.cli_runs import merge_main

        return merge_main(argv[2:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "gen":
            return cli_gen.run(args)
        if args.command == "check":
            return _cmd_check(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command in ("compare", "history"):
            from vmconform import cli_runs

            return cli_runs.run(args)
        return cli_boot.run(args)
    except CliError as e:
        print(f"vmconform: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vmconform: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
