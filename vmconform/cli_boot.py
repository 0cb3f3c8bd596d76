"""``vmconform boot``: boot disk images on a configured hypervisor with its UEFI firmware and a fresh variable store,
streaming the serial console, until the probe reports END, a dead end, the VM's exit or the timeout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from vmconform.cli_common import ARCH_NAMES, CliError

__all__ = ["add_command", "run"]


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``boot`` to the ``vmconform`` parser."""
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


def run(args: argparse.Namespace) -> int:
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
