"""``vmconform gen``: write a case's disk image, the whole matrix (``--all``), the case catalogue (``--list``) or
the probe's assembly listing (``--listing``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vmconform import case_manifest
from vmconform import cases as casemod
from vmconform.cli_common import ARCH_NAMES, CliError
from vmconform.probe.contract import FACTS, MODES

__all__ = ["add_command", "run"]


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gen`` to the ``vmconform`` parser."""
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


def run(args: argparse.Namespace) -> int:
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
