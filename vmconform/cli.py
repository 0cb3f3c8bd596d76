"""``vmconform``: generate reference disk images and boot any disk image on a configured hypervisor.

Errors are one line on stderr (``vmconform: error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vmconform import case_manifest
from vmconform import cases as casemod
from vmconform.enums import Arch
from vmconform.probe.contract import FACTS, MODES

ARCH_NAMES = tuple(a.value for a in Arch)

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


class CliError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vmconform",
        description="Reference disk images and boots for the VM System Specification for Arm Processors.",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser(
        "gen",
        help="write a case's disk image, list the case catalogue, or write the whole matrix",
        description="Write a case's disk image: protective MBR, GPT, a FAT32 EFI System Partition and the probe "
        "at the removable-media path, in one of the catalogue's layouts, optionally with one of its defects. "
        "Same arguments, same bytes. The file is sparse.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The nonce is the value the probe prints in every line (VMCONFORM <nonce> ...), so a boot can tell "
        "its own image from a stale one.\nWithout --nonce it is derived from the case name.\n\n"
        "Expected outcomes (UEFI): boots; recovers (boots, may rewrite the GPT: use a copy); falls-through (the\n"
        "next boot option must run: boot it with the fallback image, the arch's reference, as a second disk);\n"
        "either (booting or falling through both conform; hanging does not).",
    )
    g.add_argument("--arch", choices=ARCH_NAMES, default="aarch64", help="guest architecture (default: aarch64)")
    g.add_argument("--layout", default="reference", help="disk layout from the catalogue (default: reference)")
    g.add_argument("--defect", default="none", help="defect from the catalogue (default: none)")
    g.add_argument("--nonce", help="1-32 characters of [0-9A-Za-z_-] (default: derived from the case)")
    g.add_argument(
        "--mode",
        choices=MODES,
        default="boot",
        help="the probe's mode: boot (report and power off), warm/cold/power (NVRAM flows), bootnext (default: boot)",
    )
    g.add_argument(
        "--facts",
        default="",
        metavar="LIST",
        help=f"extra facts the probe reports, comma-separated: {', '.join(FACTS)} (default: none)",
    )
    g.add_argument("-o", "--output", type=Path, help="image file to write (overwritten); with --all, a directory")
    g.add_argument("--list", action="store_true", help="print the case catalogue instead of writing an image")
    g.add_argument(
        "--signed",
        action="store_true",
        help="sign the probe (Authenticode, sbsign) with vmconform's test key, made on first use in the cache: it "
        "runs where that key is enrolled (vmconform.signing.secure_boot_vars); the signature holds its signing time",
    )
    g.add_argument(
        "--listing",
        action="store_true",
        help="print the probe's assembly for --arch (with --mode, --facts, --nonce) with its comments, instead of "
        "writing an image",
    )
    g.add_argument("--json", action="store_true", help="with --list: the catalogue as JSON")
    g.add_argument(
        "--all", action="store_true", help="write every case with a probe into the directory -o, plus manifest.json"
    )

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

    b = sub.add_parser(
        "boot",
        help="boot a disk image on a configured hypervisor and stream its serial console",
        description="Boot DISK (raw) with the hypervisor's UEFI firmware and a fresh copy of its variable-store "
        "template, print the serial console as it comes, and stop when the probe reports END, the firmware "
        "reaches a dead end (UEFI Shell, boot menu, CPU exception), the VM exits, or the timeout passes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 when the probe reported END and the VM powered itself off with status 0; 1 when "
        "not (no probe line, dead end, timeout, error exit); 2 on bad arguments or configuration.",
    )
    b.add_argument(
        "disk",
        type=Path,
        nargs="+",
        help="raw disk image(s), attached in this order (a case that may fall through: its image, then the "
        "fallback); used in place, and the firmware may write them",
    )
    b.add_argument(
        "--sector-size",
        type=int,
        choices=(512, 4096),
        default=512,
        help="logical block size the VM presents the first disk with (4096 for the sector-4k case)",
    )
    b.add_argument("--read-only", action="store_true", help="present the first disk read-only")
    b.add_argument("--hypervisor", help="entry of hypervisors.yaml (default: its 'default' key)")
    b.add_argument(
        "--hypervisors-file", type=Path, default=None, help="configuration file (default: ./hypervisors.yaml)"
    )
    b.add_argument(
        "--arch",
        choices=ARCH_NAMES,
        help="guest architecture (default: the arch of the first image's removable-media boot file, "
        "BOOTAA64.EFI or BOOTARM.EFI)",
    )
    b.add_argument("--firmware", help="firmware name of the entry (default: the first listed)")
    b.add_argument("--nonce", help="only accept probe lines with this nonce (default: any)")
    b.add_argument("--timeout", type=float, help="seconds before giving up (default: the entry's timeout)")
    b.add_argument("--keep", type=Path, metavar="DIR", help="keep the transcript, command line and vars copy in DIR")
    b.add_argument("-q", "--quiet", action="store_true", help="do not stream the console")

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


def _probe_facts(text: str) -> tuple[str, ...]:
    facts = tuple(f for f in text.split(",") if f)
    for f in facts:
        if f not in FACTS:
            raise CliError(f"--facts {f}: unknown fact; choose from {', '.join(FACTS)}")
    return facts


def _signed(probe: bytes) -> bytes:
    from vmconform.signing import SigningError, sign

    try:
        return sign(probe)
    except SigningError as e:
        raise CliError(str(e)) from None


def _cmd_gen(args: argparse.Namespace) -> int:
    if args.listing:
        from vmconform.probe import assemble_probe

        nonce = args.nonce or "listing"
        try:
            assembled = assemble_probe(args.arch, nonce, mode=args.mode, facts=_probe_facts(args.facts))
        except ValueError as e:
            raise CliError(str(e)) from None
        print(f"; vmconform probe for {args.arch}, mode {args.mode}, facts {args.facts or '-'}, nonce {nonce}: "
              f"{len(assembled.code)} bytes of .text (code, then the data area)")  # fmt: skip
        print(assembled.listing_text(), end="")
        return 0
    if args.list:
        print(case_manifest.catalogue_json() if args.json else case_manifest.catalogue_table(), end="")
        return 0
    if args.json:
        raise CliError("--json goes with --list (vmconform gen --list --json)")
    if args.output is None:
        raise CliError("gen needs -o FILE (or -o DIR with --all, or --list)")
    if args.all:
        if args.nonce:
            raise CliError("--all derives one nonce per case; drop --nonce")
        if args.signed:
            raise CliError("--signed signs the probe of one image; drop --all")
        try:
            written, skipped = case_manifest.write_matrix(args.output)
        except OSError as e:
            raise CliError(f"{args.output}: cannot write ({e.strerror})") from None
        note = f"; skipped {len(skipped)} cases without a probe ({', '.join(sorted({c.arch for c in skipped}))})"
        print(f"{args.output}: {len(written)} images and manifest.json" + (note if skipped else ""), file=sys.stderr)
        return 0
    try:
        case = casemod.find(args.arch, args.layout, args.defect)
    except KeyError as e:
        raise CliError(str(e.args[0])) from None
    nonce = args.nonce or casemod.default_nonce(case)
    facts = _probe_facts(args.facts)
    try:
        custom = (args.mode, facts, args.signed) != ("boot", (), False)
        from vmconform.probe import build_probe

        probe = build_probe(case.arch, nonce, mode=args.mode, facts=facts) if custom else None
        if probe is not None and args.signed:
            probe = _signed(probe)
        casemod.build_image(case, nonce, probe).save(args.output)
    except ValueError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"{args.output}: cannot write ({e.strerror})") from None
    signed = " (probe signed with vmconform's test key)" if args.signed else ""
    print(f"{args.output}: {case.name} image{signed}, nonce {nonce}; expected: {case.expect}", file=sys.stderr)
    if case.needs_fallback:
        print(
            f"vmconform: boot it with a fallback disk after it (vmconform gen --arch {case.arch} -o fallback.img; "
            f"vmconform boot {args.output} fallback.img): a conforming firmware may reach the fallback's probe",
            file=sys.stderr,
        )
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


def _default_hvfile() -> Path:
    return Path.cwd() / "hypervisors.yaml"


def _image_arch(disk: Path, sector_size: int) -> str:
    """The arch whose removable-media boot file (BOOTAA64.EFI / BOOTARM.EFI) the image holds (vmconform check)."""
    from vmconform.check import DiskError, check_image

    found = []
    for arch in ARCH_NAMES:
        try:
            report = check_image(disk, arch=arch, sector_size=sector_size)
        except DiskError as e:
            raise CliError(f"{e}; give --arch if the image is meant for another layout") from None
        if any(r.id == "boot_file.present" and r.verdict == "pass" for r in report.rows):
            found.append(arch)
    if len(found) != 1:
        what = "both BOOTAA64.EFI and BOOTARM.EFI" if found else "no \\EFI\\BOOT\\BOOTAA64.EFI or BOOTARM.EFI"
        raise CliError(f"{disk}: the image holds {what}; choose the guest with --arch aarch64|arm")
    return found[0]


def _keep_dir(keep: Path) -> Path:
    """--keep DIR: an existing writable folder or a new one; one line otherwise."""
    if keep.exists() and not keep.is_dir():
        raise CliError(f"--keep {keep}: is a file, not a folder; give a folder for the transcript")
    try:
        keep.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"--keep {keep}: cannot create the folder ({e.strerror})") from None
    if not os.access(keep, os.W_OK | os.X_OK):
        raise CliError(f"--keep {keep}: the folder is not writable; give another")
    return keep.resolve()


def _cmd_boot(args: argparse.Namespace) -> int:
    from vmconform.runner import boot
    from vmconform.session import SetupError, check_timeout, open_run
    from vmconform.vm import Disk

    for disk in args.disk:
        if not disk.is_file():
            raise CliError(f"{disk}: no such disk image file")
    hvfile = args.hypervisors_file or _default_hvfile()
    if args.arch is None:  # the configuration is checked first: its errors say more than the image's
        from vmconform import config

        try:
            config.load(hvfile).get(args.hypervisor)
        except config.ConfigError as e:
            raise CliError(str(e)) from None
    arch = args.arch or _image_arch(args.disk[0], args.sector_size)
    disks = tuple(
        Disk(d.resolve(), args.sector_size, args.read_only) if i == 0 else Disk(d.resolve())
        for i, d in enumerate(args.disk)
    )
    keep = _keep_dir(args.keep) if args.keep else None
    try:
        timeout = check_timeout(args.timeout, "--timeout") if args.timeout is not None else None
        setup = open_run(
            hvfile,
            args.hypervisor,
            arches=(arch,),
            firmware_names=(args.firmware,) if args.firmware else (),
            timeout=timeout,
        )
    except SetupError as e:
        raise CliError(str(e)) from None
    fw = setup.firmware(setup.firmware_names[0], arch)

    def echo(data: bytes) -> None:
        os.write(sys.stdout.fileno(), data)

    print(f"vmconform: booting {arch} on {setup.entry.name} with {fw.name} ({fw.code})", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="vmconform-boot-") as tmp:
        workdir = keep or Path(tmp).resolve()
        try:
            result = boot(setup.backend, arch, disks, fw, args.nonce, workdir, setup.timeout,
                          echo=None if args.quiet else echo)  # fmt: skip
        finally:
            setup.backend.close()
        print(file=sys.stderr)
        print(f"vmconform: {result.describe().splitlines()[0]}", file=sys.stderr)
        status = "killed by the harness" if result.exit_status is None else f"exit status {result.exit_status}"
        print(f"vmconform: VM {status} after {result.elapsed:.1f} s; {len(result.lines)} probe lines", file=sys.stderr)
        from vmconform.secureboot import boot_line

        if (sb := boot_line(result.lines, result.stop.detail, fw.secure_boot)) is not None:
            print(f"vmconform: {sb}", file=sys.stderr)
        if keep:
            print(f"vmconform: transcript and command line in {keep}/", file=sys.stderr)
    ended = any(line.key == "END" for line in result.lines)
    if result.exit_status == 0 and not ended:
        print("vmconform: the VM powered off but the probe never reported END: not a successful probe run",
              file=sys.stderr)  # fmt: skip
    return 0 if result.exit_status == 0 and ended else 1


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
            return _cmd_gen(args)
        if args.command == "check":
            return _cmd_check(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command in ("compare", "history"):
            from vmconform import cli_runs

            return cli_runs.run(args)
        return _cmd_boot(args)
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
