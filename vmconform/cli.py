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

from vmconform import cases as casemod
from vmconform import config as cfgmod
from vmconform.hypervisors import backend_for

EPILOG_MAIN = """\
examples:
  vmconform gen --arch aarch64 -o disk.img            write the aarch64 reference image
  vmconform boot disk.img                             boot it on the default hypervisor, console on stdout
  vmconform boot --hypervisor qemu --keep out/ disk.img   keep transcript and command line in out/

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
        help="write a reference disk image (GPT + FAT32 ESP + the EFI probe)",
        description="Write a case's disk image: protective MBR, GPT, a FAT32 EFI System Partition and the probe "
        "at the removable-media path. Same arguments, same bytes. The file is sparse.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The nonce is the value the probe prints in every line (VMCONFORM <nonce> ...), so a boot can tell "
        "its own image from a stale one.\nWithout --nonce it is derived from the case name.",
    )
    g.add_argument(
        "--arch", choices=casemod.ARCH_NAMES, default="aarch64", help="guest architecture (default: aarch64)"
    )
    g.add_argument("--layout", default="reference", help="disk layout from the catalogue (default: reference)")
    g.add_argument("--nonce", help="1-32 characters of [0-9A-Za-z_-] (default: derived from the case)")
    g.add_argument("-o", "--output", required=True, type=Path, help="image file to write (overwritten)")

    b = sub.add_parser(
        "boot",
        help="boot a disk image on a configured hypervisor and stream its serial console",
        description="Boot DISK (raw) with the hypervisor's UEFI firmware and a fresh copy of its variable-store "
        "template, print the serial console as it comes, and stop when the probe reports END, the firmware "
        "reaches a dead end (UEFI Shell, boot menu, CPU exception), the VM exits, or the timeout passes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 when the VM powered itself off with status 0; 1 when it did not "
        "(dead end, timeout, error exit); 2 on bad arguments or configuration.",
    )
    b.add_argument("disk", type=Path, help="raw disk image (it is used in place and may be written by the firmware)")
    b.add_argument("--hypervisor", help="entry of hypervisors.yaml (default: its 'default' key)")
    b.add_argument(
        "--hypervisors-file", type=Path, default=None, help="configuration file (default: ./hypervisors.yaml)"
    )
    b.add_argument(
        "--arch", choices=casemod.ARCH_NAMES, default="aarch64", help="guest architecture (default: aarch64)"
    )
    b.add_argument("--firmware", help="firmware name of the entry (default: the first listed)")
    b.add_argument("--nonce", help="only accept probe lines with this nonce (default: any)")
    b.add_argument("--timeout", type=float, help="seconds before giving up (default: the entry's timeout)")
    b.add_argument("--keep", type=Path, metavar="DIR", help="keep the transcript, command line and vars copy in DIR")
    b.add_argument("-q", "--quiet", action="store_true", help="do not stream the console")
    return p


def _cmd_gen(args: argparse.Namespace) -> int:
    try:
        case = casemod.find(args.arch, args.layout)
    except KeyError as e:
        raise CliError(str(e.args[0])) from None
    nonce = args.nonce or casemod.default_nonce(case)
    try:
        casemod.write_image(case, nonce, args.output)
    except ValueError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"{args.output}: cannot write ({e.strerror})") from None
    print(f"{args.output}: {case.name} image, nonce {nonce}", file=sys.stderr)
    return 0


def _default_hvfile() -> Path:
    return Path.cwd() / "hypervisors.yaml"


def _cmd_boot(args: argparse.Namespace) -> int:
    from vmconform.runner import boot

    if not args.disk.is_file():
        raise CliError(f"{args.disk}: no such disk image file")
    try:
        hvfile = cfgmod.load(args.hypervisors_file or _default_hvfile())
        entry = hvfile.get(args.hypervisor)
        fwname = args.firmware or entry.default_firmware
        cfgmod.check_ready(entry, [args.arch], [fwname])
        fw = cfgmod.resolve_firmware(entry, fwname, args.arch)
    except cfgmod.ConfigError as e:
        raise CliError(str(e)) from None

    def echo(data: bytes) -> None:
        os.write(sys.stdout.fileno(), data)

    with tempfile.TemporaryDirectory(prefix="vmconform-boot-") as tmp:
        workdir = args.keep if args.keep else Path(tmp)
        result = boot(
            backend_for(entry),
            args.arch,
            (args.disk.resolve(),),
            fw,
            args.nonce,
            workdir.resolve(),
            args.timeout or entry.timeout,
            echo=None if args.quiet else echo,
        )
        print(file=sys.stderr)
        print(f"vmconform: {result.describe().splitlines()[0]}", file=sys.stderr)
        status = "killed by the harness" if result.exit_status is None else f"exit status {result.exit_status}"
        print(
            f"vmconform: VM {status} after {result.elapsed:.1f} s; {len(result.lines)} probe lines",
            file=sys.stderr,
        )
        if args.keep:
            print(f"vmconform: transcript and command line in {args.keep}/", file=sys.stderr)
    return 0 if result.exit_status == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "gen":
            return _cmd_gen(args)
        return _cmd_boot(args)
    except CliError as e:
        print(f"vmconform: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vmconform: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
