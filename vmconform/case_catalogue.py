"""The catalogue's rows, before they are multiplied by architecture: the layouts a conforming firmware must boot,
the images that break the VM spec but that UEFI firmware reads, and the GPT, MBR, FAT and boot-file defects.

Each row says what the UEFI specification requires of a boot (`vmconform.outcomes`), what EDK2 did and where that
was seen, the `vmconform check` rows that must fail on the image, why (the UEFI / spec text it rests on) and the
clauses a boot evidences (IDs as in ``shared/spec/clauses.md``). `vmconform.cases.catalogue` makes the cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmconform.outcomes import BOOTS, EITHER, FALLS_THROUGH, RECOVERS

EDK2_OBSERVED = "observed: Debian AAVMF 2022.11-6+deb12u2 on QEMU 7.2 TCG"
"""Where an `edk2` outcome was seen in a real boot (tests/test_matrix_boot.py boots every case)."""
EDK2_OBSERVED_BY_ARCH = {
    "aarch64": EDK2_OBSERVED,
    "arm": "observed: Debian AAVMF32 2022.11-6+deb12u2 on QEMU 7.2 TCG (qemu-system-arm)",
}

REMOVABLE_BOOT_CLAUSES = ("IMG-1", "IMG-2", "IMG-3", "IMG-4", "IMG-5", "IMG-6", "FW-1", "FW-7")
"""What booting a conforming image evidences."""
ROBUSTNESS_CLAUSES = ("FW-1", "FW-7")
"""What a malformed image's boot evidences: the firmware follows UEFI's rules for it and moves on."""


@dataclass(frozen=True)
class CatalogueRow:
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


def _boots(layout: str, rationale: str, evidence: str = EDK2_OBSERVED) -> CatalogueRow:
    return CatalogueRow(layout, "none", BOOTS, BOOTS, evidence, (), rationale)


ROWS: tuple[CatalogueRow, ...] = (
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
    CatalogueRow(
        "reference",
        "esp-fat16",
        BOOTS,
        BOOTS,
        EDK2_OBSERVED,
        ("esp.fat.type",),
        "UEFI §13.3: firmware must support FAT12, FAT16 and FAT32 (E-12); the VM spec wants FAT32 (IMG-3)",
    ),
    CatalogueRow(
        "reference",
        "esp-basic-data-guid",
        EITHER,
        BOOTS,
        EDK2_OBSERVED,
        ("esp.count",),
        "UEFI §13.3.3: firmware may boot from conforming FAT partitions without the ESP GUID (E-9)",
    ),
    CatalogueRow(
        "reference",
        "mbr-only",
        BOOTS,
        BOOTS,
        EDK2_OBSERVED,
        ("mbr.protective", "gpt.primary", "gpt.backup", "esp.count"),
        "UEFI §5.2.1 and §13.3.2: legacy MBR disks and their 0xEF partitions are supported (E-20)",
    ),
    CatalogueRow(
        "reference",
        "superfloppy",
        EITHER,
        BOOTS,
        EDK2_OBSERVED,
        ("mbr.protective", "gpt.primary", "gpt.backup", "esp.count"),
        "UEFI §13.3.2 describes unpartitioned FAT for removable media only; a fixed disk may be refused (E-20)",
    ),
    # --- GPT defects -----------------------------------------------------------------------------------
    CatalogueRow(
        "reference",
        "gpt-primary-crc",
        RECOVERS,
        RECOVERS,
        EDK2_OBSERVED,
        ("gpt.primary",),
        "UEFI §5.3.2: a corrupt primary means the backup must be used, and the primary should be restored (E-1)",
    ),
    CatalogueRow(
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
    CatalogueRow(
        "reference",
        "gpt-backup-crc",
        RECOVERS,
        RECOVERS,
        EDK2_OBSERVED,
        ("gpt.backup",),
        "UEFI §5.3.2: with a valid primary and a corrupt backup, software must restore the backup (E-2)",
    ),
    CatalogueRow(
        "reference",
        "gpt-both-crc",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("gpt.primary", "gpt.backup", "esp.count"),
        "UEFI §5.3.2: with both headers invalid the device has no valid GPT, so no ESP (E-4)",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
        "reference",
        "gpt-array-crc",
        RECOVERS,
        RECOVERS,
        EDK2_OBSERVED,
        ("gpt.primary.array", "gpt.backup.mirror"),
        "UEFI §5.3.2: an entry-array CRC mismatch makes the primary invalid; the backup must be used (E-5)",
    ),
    CatalogueRow(
        "reference",
        "gpt-backup-not-last",
        RECOVERS,
        BOOTS,
        EDK2_OBSERVED,
        ("mbr.size", "gpt.primary.lbas", "gpt.backup"),
        "UEFI §5.3.2: the primary is valid and names its backup, so the disk boots; firmware may move the "
        "backup to the last LBA (E-3)",
    ),
    CatalogueRow(
        "reference",
        "partitions-overlap",
        EITHER,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("gpt.partitions.overlap",),
        "UEFI §5.3.3 forbids overlapping partitions but does not say what firmware does; EDK2 drops both (E-11)",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
        "reference",
        "esp-outside-usable",
        EITHER,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("gpt.partitions.range",),
        "UEFI §5.3.3: partitions lie within the usable LBAs; EDK2 drops one that does not (E-11)",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
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
    CatalogueRow(
        "reference",
        "no-pmbr",
        EITHER,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("mbr.signature", "mbr.protective"),
        "UEFI §5.2.3 requires a protective MBR on a bootable GPT disk but not how firmware treats one without (E-7)",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
        "reference",
        "hybrid-mbr",
        EITHER,
        BOOTS,
        EDK2_OBSERVED,
        ("mbr.protective",),
        "UEFI §5.2.3: a hybrid MBR is not a protective MBR; firmware may treat the disk as MBR or GPT (E-7)",
    ),
    # --- FAT defects -----------------------------------------------------------------------------------
    CatalogueRow(
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
    CatalogueRow(
        "reference",
        "fat-chain-loop",
        EITHER,
        BOOTS,
        EDK2_OBSERVED,
        ("esp.fat.chains",),
        "A cyclic chain is a corrupt file system; the file's own size is still readable. The VM must not hang",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
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
    CatalogueRow(
        "reference",
        "missing-boot-file",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.present",),
        "UEFI §3.3 / §3.5.1.1: no boot file on the device, so the next boot option (E-14)",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
        "reference",
        "empty-boot-file",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.pe",),
        "UEFI §3.5.1.1: an empty file is no image; LoadImage fails (E-16)",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
        "reference",
        "pe-x64",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.machine",),
        "UEFI §3.5.1.1: the file must hold an image of this architecture; LoadImage returns EFI_UNSUPPORTED (E-15)",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
        "reference",
        "pe-other-arm",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.machine",),
        "UEFI §3.5.1.1: AArch32 and AArch64 images are distinct machine types (E-15)",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
        "reference",
        "pe-truncated",
        FALLS_THROUGH,
        FALLS_THROUGH,
        EDK2_OBSERVED,
        ("boot_file.sections",),
        "UEFI §2.1.1 / PE/COFF: section data beyond the end of the file; LoadImage fails (E-16)",
        ROBUSTNESS_CLAUSES,
    ),
    CatalogueRow(
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
