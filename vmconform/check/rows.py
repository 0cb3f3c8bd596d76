"""The rows of `vmconform check`: one rule each, with its clause (VM spec v1.0 "Image Format" and
"Virtual Firmware" as catalogued in shared/spec/clauses.md §1.2: IMG-1..IMG-5, FW-6, FW-8).

Verdicts: pass, fail, skip (not decidable because an earlier rule failed) and error (not decided: a
cost budget stopped the check first; the evidence names the budget).
"""

from __future__ import annotations

from dataclasses import dataclass

PASS, FAIL, SKIP, ERROR = "pass", "fail", "skip", "error"


@dataclass(frozen=True)
class CheckDef:
    id: str
    clause: str
    title: str


CHECK_DEFS: tuple[CheckDef, ...] = (
    CheckDef("mbr.signature", "IMG-1", "LBA 0 ends with the 55 AA signature"),
    CheckDef("mbr.protective", "IMG-1", "protective MBR: one 0xEE record from LBA 1, the others zero"),
    CheckDef("mbr.size", "IMG-1", "the 0xEE record covers the disk (SizeInLBA last LBA, or 0xFFFFFFFF)"),
    CheckDef("gpt.primary", "IMG-1", "primary header at LBA 1: signature, revision 1.0, HeaderSize, CRC32, MyLBA 1"),
    CheckDef("gpt.primary.lbas", "IMG-1", "primary AlternateLBA is the last LBA"),
    CheckDef("gpt.primary.layout", "IMG-1", "entry size and count, entry array and usable LBAs consistent"),
    CheckDef("gpt.primary.array", "IMG-1", "primary entry array CRC32"),
    CheckDef("gpt.backup", "IMG-1", "backup header at the last LBA: valid, MyLBA last, AlternateLBA 1"),
    CheckDef("gpt.backup.mirror", "IMG-1", "backup header mirrors the primary"),
    CheckDef("gpt.backup.array", "IMG-1", "backup entry array CRC32 and same entries as the primary"),
    CheckDef("gpt.partitions.range", "IMG-1", "partitions lie within FirstUsableLBA..LastUsableLBA"),
    CheckDef("gpt.partitions.overlap", "IMG-1", "partitions do not overlap"),
    CheckDef("esp.count", "IMG-2", "exactly one partition has the ESP type GUID"),
    CheckDef("esp.blockio", "IMG-2", "the ESP does not have attribute bit 1 (No Block IO Protocol)"),
    CheckDef("esp.fat.boot_sector", "IMG-3", "the ESP's boot sector and BPB are consistent"),
    CheckDef("esp.fat.type", "IMG-3", "the ESP is FAT32: FATSz16 0, FATSz32 set, >= 65525 clusters"),
    CheckDef("esp.fat.fsinfo", "IMG-3", "the FAT32 FSInfo sector is present"),
    CheckDef("esp.fat.tree", "IMG-3", "the directory tree is a tree (no loops)"),
    CheckDef("esp.fat.chains", "IMG-3", "cluster chains end, fit their files and are not shared"),
    CheckDef("boot_file.present", "IMG-4", "\\EFI\\BOOT\\BOOTAA64.EFI or BOOTARM.EFI (any case)"),
    CheckDef("boot_file.pe", "IMG-5", "the boot file is a PE/COFF image (MZ, PE signature, headers in the file)"),
    CheckDef("boot_file.machine", "IMG-5", "machine and optional-header magic match the file name"),
    CheckDef("boot_file.subsystem", "IMG-5", "Subsystem 10 (EFI application)"),
    CheckDef("boot_file.sections", "IMG-5", "every section's raw data lies inside the file"),
    CheckDef("image.vars_store", "FW-6", "no UEFI variable store inside the image"),
    CheckDef("image.firmware", "FW-8", "no firmware volume (_FVH) inside the image"),
)
CHECKS: dict[str, CheckDef] = {c.id: c for c in CHECK_DEFS}


@dataclass(frozen=True)
class Row:
    id: str
    verdict: str
    evidence: str

    @property
    def clause(self) -> str:
        return CHECKS[self.id].clause


def n(count: int, one: str, many: str | None = None) -> str:
    """'1 file', '2 files' ('directory', 'directories' with `many`)."""
    return f"{count} {one if count == 1 else many or one + 's'}"
