"""The clauses of the VM System Specification for Arm Processors that vmconform judges.

IDs, levels and how each is checked follow ``shared/spec/clauses.md`` (the
catalogue read from spec v1.0 of 4 Aug 2014 and v2.0 of 4 Apr 2016). A clause's
level depends on the spec version a run targets (``--spec 1.0|2.0``); a clause a
version does not have is not judged for it.

Levels: MUST (a failure fails the run), SHOULD and "strongly recommended" (a
failure is a warning, listed in the summary), INFO (reported, never judged).
"""

from __future__ import annotations

from dataclasses import dataclass

SPEC_VERSIONS = ("1.0", "2.0")
DEFAULT_SPEC = "2.0"

MUST = "MUST"
SHOULD = "SHOULD"
STRONGLY = "SHOULD (strongly)"
LEVELS = (MUST, STRONGLY, SHOULD)


@dataclass(frozen=True)
class Clause:
    id: str
    title: str
    levels: tuple[tuple[str, str], ...]  # (spec version, level) for each version that has the clause
    how: str  # how vmconform checks it

    def level(self, spec: str) -> str | None:
        return dict(self.levels).get(spec)

    def blocking(self, spec: str) -> bool:
        """A failure of this clause fails the run (its level is MUST in ``spec``)."""
        return self.level(spec) == MUST


def _both(level: str) -> tuple[tuple[str, str], ...]:
    return (("1.0", level), ("2.0", level))


CLAUSES: tuple[Clause, ...] = (
    Clause(
        "IMG-1",
        "the disk is partitioned with GPT (protective MBR, both headers)",
        _both(MUST),
        "a GPT image built to the rules boots; vmconform check reads the headers",
    ),
    Clause(
        "IMG-2",
        "the bootable software is in the ESP (type C12A7328-F81F-11D2-BA4B-00A0C93EC93B)",
        _both(MUST),
        "the probe boots from the ESP; BOOT reports the HD() partition",
    ),
    Clause("IMG-3", "the ESP is FAT32", _both(MUST), "a FAT32 ESP (>= 65525 clusters) boots"),
    Clause(
        "IMG-4",
        "the application is at \\EFI\\BOOT\\BOOTAA64.EFI / BOOTARM.EFI",
        _both(MUST),
        "the probe at the removable-media path runs",
    ),
    Clause(
        "IMG-5",
        "the application is a UEFI PE/COFF application for the architecture",
        _both(MUST),
        "the probe (PE32+ 0xAA64 / PE32 0x01C2, subsystem 10) is loaded and started",
    ),
    Clause(
        "IMG-6",
        "the image boots by the default boot behaviour, with no Boot#### variables",
        _both(MUST),
        "every boot starts from a fresh copy of the vendor's empty variable-store template",
    ),
    Clause(
        "FW-1",
        "the VM is UEFI compliant and boots the application in the ESP",
        _both(MUST),
        "the probe runs and finds the system table (IBI SYST) and runtime services (RUNTSERV) signatures",
    ),
    Clause(
        "FW-2",
        "UEFI is the first software the VM executes",
        _both(SHOULD),
        "the hypervisor loads the firmware as its boot ROM (pflash or -bios), not a kernel",
    ),
    Clause(
        "FW-3",
        "UEFI 2.4A or later (2.6 or later in spec 2.0)",
        (("1.0", SHOULD), ("2.0", SHOULD)),
        "the system table's revision, as the probe reads it",
    ),
    Clause(
        "FW-4",
        "persistent environment storage for the firmware",
        _both(STRONGLY),
        "NVRAM flows: a variable set before a power cycle, and a Boot#### option with BootNext set before a reset, "
        "are there after it",
    ),
    Clause(
        "FW-5",
        "persistent UEFI variable storage",
        _both(STRONGLY),
        "NVRAM flows across warm reset, cold reset and power cycle; host reads the vars store",
    ),
    Clause(
        "FW-6",
        "variable storage belongs to the VM instance, not the portable disk image",
        _both(MUST),
        "the disk image is byte-identical after the NVRAM flows; the variable is in the instance's store",
    ),
    Clause(
        "FW-7",
        "portable images do not rely on a pre-configured UEFI environment",
        _both(MUST),
        "as IMG-6: boots with no Boot#### variables",
    ),
    Clause(
        "FW-8",
        "the firmware binary belongs to the VM implementation, not the image",
        _both(SHOULD),
        "the image carries no firmware volume; the firmware comes from the hypervisor's configuration",
    ),
    Clause(
        "FW-9",
        "UEFI RTC (time services) are supported",
        _both(MUST),
        "GetTime succeeds with a valid time and advances across a 1 s Stall; SetTime succeeds",
    ),
    Clause(
        "HW-1",
        "the system table gives access to hardware description data",
        _both(MUST),
        "the configuration table holds an ACPI or DTB entry",
    ),
    Clause(
        "HW-2",
        "a complete FDT describing the VM is provided through UEFI",
        (("1.0", MUST),),
        "the DTB configuration-table entry decodes and describes CPUs, memory, GIC, UART, timer, PSCI",
    ),
    Clause(
        "V2-5",
        "both ACPI and a DT are provided through UEFI and describe the VM",
        (("2.0", MUST),),
        "both configuration-table entries present, decoding, and each describing the VM (CPUs, memory, GIC, UART, "
        "timer, PSCI)",
    ),
    Clause(
        "PLAT-1",
        "every PE, device and memory region is discoverable",
        _both(MUST),
        "CPU count and memory in the hardware description match the VM's configuration",
    ),
    Clause(
        "PLAT-2",
        "AArch32 and AArch64 guests boot at EL1 where the host CPU allows",
        _both(SHOULD),
        "the arm (BOOTARM.EFI) reference image boots",
    ),
    Clause(
        "PLAT-3",
        "a serial console: PL011, virtio-console or Xen PV console",
        _both(SHOULD),
        "the probe's lines arrive over the serial console; the UART is described",
    ),
    Clause("PLAT-4", "an Arm GICv2 or newer", _both(MUST), "the hardware description names a GIC"),
    Clause(
        "PLAT-5",
        "the architected virtual timer and counter are available (V2-8 in spec 2.0)",
        (("1.0", SHOULD), ("2.0", MUST)),
        "CNTFRQ is non-zero and CNTVCT advances by about CNTFRQ across a 1 s Stall",
    ),
    Clause(
        "PLAT-6",
        "a hot-pluggable bus for block and network devices",
        _both(STRONGLY),
        "the OS probe: a virtio-blk and a virtio-net device hot-plugged onto root ports appear in Linux and go",
    ),
    Clause("V2-2", "the virtual UEFI runs at EL1", (("2.0", SHOULD),), "CurrentEL as the probe reads it"),
    Clause(
        "V2-3",
        "PSCI 0.2 or later",
        (("2.0", MUST),),
        "DT /psci compatible arm,psci-0.2 or later with its method, or FADT PSCI_COMPLIANT; the OS probe: the kernel "
        "finds PSCI 0.2+ and brings every secondary up",
    ),
    Clause(
        "V2-6",
        "an emulated UART meeting the SBSA UART requirements",
        (("2.0", MUST),),
        "SPCR or DT names a PL011 / SBSA UART",
    ),
    Clause(
        "V2-7",
        "both GICv2 and GICv3 are supported",
        (("2.0", MUST),),
        "boots with gic-version=2 and 3; the MADT / DT names that GIC",
    ),
)

BY_ID = {c.id: c for c in CLAUSES}


def get(clause_id: str) -> Clause:
    try:
        return BY_ID[clause_id]
    except KeyError:
        raise KeyError(f"unknown clause {clause_id!r}; known: {', '.join(BY_ID)}") from None


def for_spec(spec: str) -> tuple[Clause, ...]:
    return tuple(c for c in CLAUSES if c.level(spec) is not None)
