"""The case catalogue: every image vmconform makes and what a conforming VM must do with it.

A case is data: architecture, layout (`vmconform.image.layouts`), defect (`vmconform.image.defects`),
the outcome the UEFI specification requires (`expect`), what EDK2 does (`edk2`, with where that
comes from), the spec clauses a boot evidences (IDs as in ``shared/spec/clauses.md``), and the
`vmconform check` rows that must fail on the image (`fails`). The suite, the CLI (``vmconform gen``,
``vmconform check``'s tests) and the docs all read this one catalogue.

Outcomes:

- ``boots``: the probe on this disk runs (and the disk is not written).
- ``recovers``: the probe on this disk runs; the firmware may (UEFI: should) rewrite the damaged GPT
  copy, so such cases boot a throw-away copy and the host reports what changed (`gpt_changes`).
- ``falls-through``: the firmware must not run this disk's boot file; it moves on to the next boot
  option, the *fallback disk* (the reference image with its own nonce), whose probe must run.
- ``either``: the UEFI specification allows booting this disk or falling through; the VM must do
  one of them (reach a probe), never hang or crash. Run with the fallback disk.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vmconform.enums import Arch
from vmconform.image import EspFile, SparseImage, plan_disk, render_disk
from vmconform.image.defects import DEFECTS, garbage, set_machine, truncate_in_section
from vmconform.image.layouts import LAYOUTS
from vmconform.probe import PROBE_ARCHES, removable_media_path
from vmconform.vm import Disk

ARCH_NAMES = ("aarch64", "arm")

BOOTS = "boots"
RECOVERS = "recovers"
FALLS_THROUGH = "falls-through"
EITHER = "either"
OUTCOMES = (BOOTS, RECOVERS, FALLS_THROUGH, EITHER)

EDK2_OBSERVED = "observed: Debian AAVMF 2022.11-6+deb12u2 on QEMU 7.2 TCG"
"""Where an `edk2` outcome was seen in a real boot (tests/test_matrix_boot.py boots every case)."""
EDK2_OBSERVED_BY_ARCH = {
    "aarch64": EDK2_OBSERVED,
    "arm": "observed: Debian AAVMF32 2022.11-6+deb12u2 on QEMU 7.2 TCG (qemu-system-arm)",
}

MACHINE_X64 = 0x8664

REMOVABLE_BOOT_CLAUSES = ("IMG-1", "IMG-2", "IMG-3", "IMG-4", "IMG-5", "IMG-6", "FW-1", "FW-7")
"""What booting a conforming image evidences."""
ROBUSTNESS_CLAUSES = ("FW-1", "FW-7")
"""What a malformed image's boot evidences: the firmware follows UEFI's rules for it and moves on."""


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


@dataclass(frozen=True)
class _Row:
    """One catalogue line before it is multiplied by architecture."""

    layout: str
    defect: str
    expect: str
    edk2: str
    evidence: str
    fails: tuple[str, ...]
    rationale: str
    clauses: tuple[str, ...] = REMOVABLE_BOOT_CLAUSES
    read_only: bool = False


def _boots(layout: str, rationale: str, evidence: str = EDK2_OBSERVED) -> _Row:
    return _Row(layout, "none", BOOTS, BOOTS, evidence, (), rationale)


_ROWS: tuple[_Row, ...] = (
    # --- Layouts a conforming firmware must boot -----------------------------------------------------
    _boots("reference", "IMG-1..IMG-6: the portable image the spec describes"),
    _boots("esp-second", "UEFI §13.3.3: no restriction on the position of the system partition"),
    _boots("esp-last", "UEFI §13.3.3 and §5.3.2: any entry of the array may be used, unused entries are zero"),
    _boots("esp-among", "UEFI §3.5.1.1: every file system of the device is searched for the boot file"),
    _boots("sector-4k", "UEFI §5.3.1: GPT at LBA 1 of the device's own block size (E-17)"),
    _boots("over-2tib", "UEFI §5.2.3 and §5.3: 64-bit LBAs; PMBR SizeInLBA 0xFFFFFFFF past 2 TiB (E-19)"),
    _boots("lowercase", "UEFI §13.3.1.3: FAT names compare case-insensitively (E-13)"),
    _boots("lowercase-ntcase", "UEFI §13.3.1.3: FAT names compare case-insensitively (E-13)"),
    _boots("lfn", "UEFI §13.3.1.1: FAT as fatgen103 defines it, long file names included"),
    _boots("gpt-256-entries", "UEFI §5.3.2: NumberOfPartitionEntries is the header's, not 128"),
    _boots("esp-unaligned", "UEFI §5.3.3: partitions need no alignment (alignment is a SHOULD for performance)"),
    # --- Images that break the VM spec but that UEFI firmware reads ------------------------------------
    _Row(
        "reference",
        "esp-fat16",
        BOOTS,
        BOOTS,
        EDK2_OBSERVED,
        ("esp.fat.type",),
        "UEFI §13.3: firmware must support FAT12, FAT16 and FAT32 (E-12); the VM spec wants FAT32 (IMG-3)",
    ),
    _Row(
        "reference",
        "esp-basic-data-guid",
        EITHER,
        BOOTS,
        EDK2_OBSERVED,
        ("esp.count",),
        "UEFI §13.3.3: firmware may boot from conforming FAT partitions without the ESP GUID (E-9)",
    ),
    _Row(
        "reference",
        "mbr-only",
        BOOTS,
        BOOTS,
        EDK2_OBSERVED,
        ("mbr.protective", "gpt.primary", "gpt.backup", "esp.count"),
        "UEFI §5.2.1 and §13.3.2: legacy MBR disks and their 0xEF partitions are supported (E-20)",
    ),
    _Row(
        "reference",
        "superfloppy",
        EITHER,
        BOOTS,
        EDK2_OBSERVED,
        ("mbr.protective", "gpt.primary", "gpt.backup", "esp.count"),
        "UEFI §13.3.2 describes unpartitioned FAT for removable media only; a fixed disk may be refused (E-20)",
    ),
    # --- GPT defects -----------------------------------------------------------------------------------
    _Row(
        "reference",
        "gpt-primary-crc",
        RECOVERS,
        RECOVERS,
        EDK2_OBSERVED,
        ("gpt.primary",),
        "UEFI §5.3.2: a corrupt primary means the backup must be used, and the primary should be restored (E-1)",
    ),
    _Row(
        "reference",
        "gpt-primary-crc-ro",
        BOOTS,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("gpt.primary",),
        "UEFI §5.3.2: if the primary is corrupt the backup must be used; restoring it is a SHOULD that read-only "
        "media rules out. EDK2 2022.11 gives up instead (E-1, read-only media)",
        read_only=True,
    ),
    _Row(
        "reference",
        "gpt-backup-crc",
        RECOVERS,
        RECOVERS,
        EDK2_OBSERVED,
        ("gpt.backup",),
        "UEFI §5.3.2: with a valid primary and a corrupt backup, software must restore the backup (E-2)",
    ),
    _Row(
        "reference",
        "gpt-both-crc",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("gpt.primary", "gpt.backup", "esp.count"),
        "UEFI §5.3.2: with both headers invalid the device has no valid GPT, so no ESP (E-4)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "gpt-array-crc",
        RECOVERS,
        RECOVERS,
        EDK2_OBSERVED,
        ("gpt.primary.array", "gpt.backup.mirror"),
        "UEFI §5.3.2: an entry-array CRC mismatch makes the primary invalid; the backup must be used (E-5)",
    ),
    _Row(
        "reference",
        "gpt-backup-not-last",
        RECOVERS,
        BOOTS,
        EDK2_OBSERVED,
        ("mbr.size", "gpt.primary.lbas", "gpt.backup"),
        "UEFI §5.3.2: the primary is valid and names its backup, so the disk boots; firmware may move the "
        "backup to the last LBA (E-3)",
    ),
    _Row(
        "reference",
        "partitions-overlap",
        EITHER,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("gpt.partitions.overlap",),
        "UEFI §5.3.3 forbids overlapping partitions but does not say what firmware does; EDK2 drops both (E-11)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "esp-outside-usable",
        EITHER,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("gpt.partitions.range",),
        "UEFI §5.3.3: partitions lie within the usable LBAs; EDK2 drops one that does not (E-11)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "esp-no-blockio",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("esp.blockio",),
        "UEFI §5.3.3 attribute bit 1: firmware must not produce a Block I/O protocol for the partition (E-10)",
        ROBUSTNESS_CLAUSES,
    ),
    # --- MBR defects -----------------------------------------------------------------------------------
    _Row(
        "reference",
        "no-pmbr",
        EITHER,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("mbr.signature", "mbr.protective"),
        "UEFI §5.2.3 requires a protective MBR on a bootable GPT disk but not how firmware treats one without (E-7)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "hybrid-mbr",
        EITHER,
        BOOTS,
        EDK2_OBSERVED,
        ("mbr.protective",),
        "UEFI §5.2.3: a hybrid MBR is not a protective MBR; firmware may treat the disk as MBR or GPT (E-7)",
    ),
    # --- FAT defects -----------------------------------------------------------------------------------
    _Row(
        "reference",
        "fat32-few-clusters",
        EITHER,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("esp.fat.type",),
        "fatgen103 §3.5: the cluster count alone decides the FAT type, so this FAT32 BPB describes an "
        "invalid volume; EDK2 refuses it (E-12)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "fat-chain-loop",
        EITHER,
        BOOTS,
        EDK2_OBSERVED,
        ("esp.fat.chains",),
        "A cyclic chain is a corrupt file system; the file's own size is still readable. The VM must not hang",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "fat-dir-loop",
        EITHER,
        BOOTS,
        EDK2_OBSERVED,
        ("esp.fat.tree",),
        "A directory loop is a corrupt file system off the boot path. The VM must not hang",
        ROBUSTNESS_CLAUSES,
    ),
    # --- Boot file defects -------------------------------------------------------------------------------
    _Row(
        "reference",
        "missing-boot-file",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.present",),
        "UEFI §3.3 / §3.5.1.1: no boot file on the device, so the next boot option (E-14)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "empty-boot-file",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.pe",),
        "UEFI §3.5.1.1: an empty file is no image; LoadImage fails (E-16)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "pe-x64",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.machine",),
        "UEFI §3.5.1.1: the file must hold an image of this architecture; LoadImage returns EFI_UNSUPPORTED (E-15)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "pe-other-arm",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.machine",),
        "UEFI §3.5.1.1: AArch32 and AArch64 images are distinct machine types (E-15)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "pe-truncated",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.sections",),
        "UEFI §2.1.1 / PE/COFF: section data beyond the end of the file; LoadImage fails (E-16)",
        ROBUSTNESS_CLAUSES,
    ),
    _Row(
        "reference",
        "pe-garbage",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.pe",),
        "UEFI §3.5.1.1: not a PE/COFF image (E-16)",
        ROBUSTNESS_CLAUSES,
    ),
)


@lru_cache(maxsize=1)
def catalogue() -> tuple[Case, ...]:
    """Every case, in a stable order: all aarch64 cases, then all arm cases."""
    out = []
    for arch in ARCH_NAMES:
        for row in _ROWS:
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


def gpt_changes(image: SparseImage, path: Path, sector_size: int = 512) -> tuple[str, ...]:
    """Which GPT structures differ between the image as built and the disk file after a boot.

    Names: "protective MBR", "primary header", "primary entries", "backup header", "backup entries".
    The entry arrays are located through the built image's headers (intact ones; a corrupted header
    still names its array).
    """
    ss = sector_size
    last = image.size // ss - 1
    regions = [("protective MBR", 0, ss), ("primary header", ss, ss), ("backup header", last * ss, ss)]
    for name, lba in (("primary entries", 1), ("backup entries", last)):
        header = image.read(lba * ss, ss)
        if header[:8] == b"EFI PART":
            array_lba, count, size = struct.unpack_from("<QII", header, 72)
            regions.append((name, array_lba * ss, min(count * size, 1 << 20)))
    changed = []
    with path.open("rb") as f:
        for name, offset, length in regions:
            if offset < 0 or offset + length > image.size:
                continue
            f.seek(offset)
            if f.read(length).ljust(length, b"\0") != image.read(offset, length):
                changed.append(name)
    return tuple(changed)


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


def observed_outcome(
    case_nonce: str, fallback_nonce: str | None, nonces_seen: tuple[str, ...], gpt_changed: tuple[str, ...]
) -> str:
    """What a boot showed, in the catalogue's outcome words, from the probe nonces that printed (in order)
    and `gpt_changes` of the case's disk: boots | recovers | falls-through | no-probe | wrong-probe."""
    if not nonces_seen:
        return "no-probe"
    first = nonces_seen[0]
    if first == case_nonce:
        return RECOVERS if gpt_changed else BOOTS
    if fallback_nonce is not None and first == fallback_nonce:
        return FALLS_THROUGH
    return "wrong-probe"


def conforms(case: Case, observed: str) -> bool:
    """Whether an observed outcome is one the UEFI specification allows for this case."""
    allowed = {
        BOOTS: {BOOTS},
        RECOVERS: {BOOTS, RECOVERS},
        FALLS_THROUGH: {FALLS_THROUGH},
        EITHER: {BOOTS, RECOVERS, FALLS_THROUGH},
    }[case.expect]
    return observed in allowed
