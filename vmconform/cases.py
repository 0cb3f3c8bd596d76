"""The case catalogue: every image vmconform makes and what a conforming VM must do with it, and a case's disks.

A case is data: architecture, layout (`vmconform.image.layouts`), defect (`vmconform.image.defects`),
the outcome the UEFI specification requires (`expect`, in `vmconform.outcomes`' words), what EDK2 does
(`edk2`, with where that comes from), the spec clauses a boot evidences (IDs as in ``shared/spec/clauses.md``),
and the `vmconform check` rows that must fail on the image (`fails`). The rows the cases are made of are in
`vmconform.case_catalogue`; what ``vmconform gen --list`` and ``--all`` write, in `vmconform.case_manifest`.
The suite, the CLI (``vmconform gen``, ``vmconform check``'s tests) and the docs all read this one catalogue.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vmconform.case_catalogue import EDK2_OBSERVED, EDK2_OBSERVED_BY_ARCH, ROBUSTNESS_CLAUSES, ROWS
from vmconform.enums import Arch
from vmconform.image import EspFile, SparseImage, plan_disk, render_disk
from vmconform.image.defects import DEFECTS, garbage, set_machine, truncate_in_section
from vmconform.image.layouts import LAYOUTS
from vmconform.outcomes import BOOTS, EITHER, FALLS_THROUGH, RECOVERS
from vmconform.probe import PROBE_ARCHES, removable_media_path
from vmconform.vm import Disk

ARCH_NAMES = ("aarch64", "arm")

MACHINE_X64 = 0x8664


@dataclass(frozen=True)
class Case:
    arch: str
    layout: str = "reference"
    defect: str = "none"
    expect: str = BOOTS
    """What the UEFI specification requires: boots | recovers | falls-through | either."""
    edk2: str = BOOTS
    """What EDK2 (ArmVirtQemu) does with the image: boots | recovers | falls-through."""
    edk2_evidence: str = ""
    """Where `edk2` comes from: a real boot (EDK2_OBSERVED) or clauses.md §3 (read from code)."""
    clauses: tuple[str, ...] = ()
    """Clauses a boot of this case evidences."""
    fails: tuple[str, ...] = ()
    """`vmconform check` rows (IDs) that must fail on this image; every other row passes or is skipped."""
    summary: str = ""
    rationale: str = ""
    """Why `expect` is what it is: the UEFI / spec text it rests on."""
    sector_size: int = 512
    """The logical block size the VM must present the disk with."""
    read_only: bool = False
    """The VM must present the disk read-only (QEMU readonly=on: VIRTIO_BLK_F_RO)."""

    @property
    def name(self) -> str:
        """``<arch>-<layout>[-<defect>]``: the part of a test ID after the hypervisor."""
        base = f"{self.arch}-{self.layout}"
        return base if self.defect == "none" else f"{base}-{self.defect}"

    @property
    def needs_fallback(self) -> bool:
        """Boot this case with a second, valid disk after it: a correct firmware may reach it, or EDK2 does
        (then a firmware that wrongly skips the disk is seen doing so at once, not at a timeout)."""
        return self.expect in (FALLS_THROUGH, EITHER) or self.edk2 == FALLS_THROUGH

    @property
    def writes_disk(self) -> bool:
        """The firmware may write this image (GPT repair): boot a throw-away copy."""
        return self.expect == RECOVERS or self.edk2 == RECOVERS

    @property
    def violates(self) -> tuple[str, ...]:
        """The spec clauses this image breaks (those of its failing `vmconform check` rows)."""
        from vmconform.check import CHECKS

        return tuple(sorted({CHECKS[row].clause for row in self.fails}))


@lru_cache(maxsize=1)
def catalogue() -> tuple[Case, ...]:
    """Every case, in a stable order: all aarch64 cases, then all arm cases."""
    out = []
    for arch in ARCH_NAMES:
        for row in ROWS:
            layout = LAYOUTS[row.layout]
            defect = DEFECTS[row.defect]
            summary = layout.summary if row.defect == "none" else defect.summary
            if row.defect == "pe-other-arm":
                summary = (
                    "the boot file is an AArch32 PE32 (0x01C2)"
                    if arch == Arch.AARCH64
                    else ("the boot file is an AArch64 PE32+ (0xAA64)")
                )
            out.append(
                Case(
                    arch=arch,
                    layout=row.layout,
                    defect=row.defect,
                    expect=row.expect,
                    edk2=row.edk2,
                    edk2_evidence=EDK2_OBSERVED_BY_ARCH[arch] if row.evidence == EDK2_OBSERVED else row.evidence,
                    # A malformed image evidences how the firmware follows UEFI's rules for it (FW-1, FW-7),
                    # not the image clauses it breaks.
                    clauses=row.clauses if row.defect == "none" else ROBUSTNESS_CLAUSES,
                    fails=row.fails,
                    summary=summary.replace("bootaa64.efi", _boot_file(arch).lower()),
                    rationale=row.rationale,
                    sector_size=layout.sector_size,
                    read_only=row.read_only,
                )
            )
    return tuple(out)


def _boot_file(arch: str) -> str:
    return removable_media_path(arch).rsplit("/", 1)[-1]


def find(arch: str, layout: str = "reference", defect: str = "none") -> Case:
    for case in catalogue():
        if (case.arch, case.layout, case.defect) == (arch, layout, defect):
            return case
    name = f"{arch}-{layout}" + ("" if defect == "none" else f"-{defect}")
    if arch not in ARCH_NAMES:
        raise KeyError(f"no case {name}: unknown arch {arch!r}; known: {', '.join(ARCH_NAMES)}")
    layouts = sorted({c.layout for c in catalogue()})
    defects = sorted({c.defect for c in catalogue() if c.defect != "none"})
    raise KeyError(
        f"no case {name}; known: layouts {', '.join(layouts)}; defects (on the reference layout) "
        f"{', '.join(defects)} (vmconform gen --list shows every case)"
    )


def find_name(name: str) -> Case:
    """The case called `name` (``<arch>-<layout>[-<defect>]``), or KeyError."""
    for case in catalogue():
        if case.name == name:
            return case
    raise KeyError(f"no case named {name!r} (vmconform gen --list shows every case)")


def has_probe(arch: str) -> bool:
    return arch in PROBE_ARCHES


def new_nonce() -> str:
    """A fresh per-boot nonce: a probe line carrying any other value comes from a stale image."""
    return secrets.token_hex(6)


def default_nonce(case: Case) -> str:
    """The nonce ``vmconform gen`` uses when none is given: derived from the case, so output is stable."""
    return hashlib.sha256(case.name.encode()).hexdigest()[:12]


def fallback_case(case: Case) -> Case:
    """The valid image booted after `case` when it may fall through: the same arch's reference case."""
    return find(case.arch)


def default_fallback_nonce(case: Case) -> str:
    return hashlib.sha256(f"{case.name}/fallback".encode()).hexdigest()[:12]


@lru_cache(maxsize=64)
def _probe(arch: str, nonce: str) -> bytes:
    from vmconform.probe import build_probe

    return build_probe(arch=arch, nonce=nonce)


def _other_arm_pe(arch: str, nonce: str) -> bytes:
    """A PE for the other Arm architecture carrying this nonce: built from the AArch64 probe's code, so a
    firmware that ran it anyway would be seen printing the case's nonce."""
    from vmconform.probe.pe import MACHINE_ARMTHUMB_MIXED, PeFormat, PeImage, write_pe
    from vmconform.probe.program import ENTRY_LABEL

    if arch == Arch.ARM:
        return _probe("aarch64", nonce)
    from vmconform.probe import assemble_probe

    assembled = assemble_probe("aarch64", nonce)
    return write_pe(PeImage(MACHINE_ARMTHUMB_MIXED, PeFormat.PE32, assembled.code, assembled.offset_of(ENTRY_LABEL)))


def boot_file_bytes(case: Case, nonce: str, probe: bytes | None = None) -> bytes | None:
    """What the case stores at the removable-media path (None: no boot file).

    `probe` None: the arch's probe with `nonce` (ValueError, naming the case, while there is none);
    tests may pass a stand-in PE for an arch without a probe.
    """
    kind = DEFECTS[case.defect].payload
    if kind == "none":
        return None
    if kind == "empty":
        return b""
    if kind == "pe-other-arm":
        return _other_arm_pe(case.arch, nonce)
    if probe is None:
        if not has_probe(case.arch):
            raise ValueError(
                f"case {case.name}: no probe for {case.arch} yet (have: {', '.join(PROBE_ARCHES)}); "
                f"choose --arch {PROBE_ARCHES[0]}"
            )
        probe = _probe(case.arch, nonce)
    if kind == "probe":
        return probe
    if kind == "pe-x64":
        return set_machine(probe, MACHINE_X64)
    if kind == "pe-truncated":
        return truncate_in_section(probe)
    if kind == "garbage":
        return garbage(len(probe), f"{case.name}:{nonce}")
    raise AssertionError(f"unknown payload kind {kind!r}")


def build_image(case: Case, nonce: str, probe: bytes | None = None) -> SparseImage:
    """The case's disk image with a probe carrying ``nonce``; same inputs, same bytes.

    Raises ValueError (naming the case) when the arch has no probe yet and none is given.
    """
    if probe is None and not has_probe(case.arch):
        raise ValueError(
            f"case {case.name}: no probe for {case.arch} yet (have: {', '.join(PROBE_ARCHES)}); "
            f"choose --arch {PROBE_ARCHES[0]}"
        )
    path = removable_media_path(case.arch)
    data = boot_file_bytes(case, nonce, probe)
    if data is None:
        files = (EspFile(path.rsplit("/", 1)[0] + "/README.TXT", b"vmconform: no boot file on purpose\r\n"),)
    else:
        files = (EspFile(path, data),)
    layout = LAYOUTS[case.layout]
    defect = DEFECTS[case.defect]
    spec = layout.build(files, f"{case.name}:{nonce}", case.arch)
    if defect.spec is not None:
        spec = defect.spec(spec)
    built = render_disk(plan_disk(spec))
    if defect.edit is None:
        return built.image
    return defect.edit(built, tuple(path.split("/")))


def write_image(case: Case, nonce: str, path: Path) -> Path:
    build_image(case, nonce).save(path)
    return path


def write_disks(
    case: Case,
    nonce: str,
    directory: Path,
    fallback_nonce: str | None = None,
    probe: bytes | None = None,
    fallback_probe: bytes | None = None,
) -> tuple[Disk, ...]:
    """Write the case's disk (and, when it needs one, the fallback disk after it) into `directory`.

    The result is what `runner.boot` takes: the case's disk with its logical block size, then the
    fallback (the arch's reference image carrying `fallback_nonce`, default derived from the case).
    `probe` replaces the case's default probe (a probe built with other modes or facts), `fallback_probe` the
    fallback's (a signed one, for a Secure Boot firmware).
    """
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / f"{case.name}.img"
    build_image(case, nonce, probe).save(image)
    disks = [Disk(image, logical_block_size=case.sector_size, read_only=case.read_only)]
    if case.needs_fallback:
        fb = fallback_case(case)
        fb_nonce = fallback_nonce or default_fallback_nonce(case)
        fb_path = directory / f"{case.name}.fallback.img"
        build_image(fb, fb_nonce, fallback_probe).save(fb_path)
        disks.append(Disk(fb_path))
    return tuple(disks)
