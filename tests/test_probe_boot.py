"""Real boots of the probe under QEMU TCG: aarch64 on AAVMF, arm on AAVMF32; every fact parsed and sanity-checked.

The partition the firmware reports is compared with the GPT entry read back from the disk image file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from uuid import UUID

import pytest

from vmconform import cases, config, runner
from vmconform.facts import ProbeFacts
from vmconform.facts import acpi as acpimod
from vmconform.hypervisors import backend_for
from vmconform.image import DiskSpec, EspFile, build_disk
from vmconform.probe import build_probe, removable_media_path

pytestmark = pytest.mark.boot
REPO = Path(__file__).resolve().parent.parent
BOOT_FILE = {"aarch64": "\\EFI\\BOOT\\BOOTAA64.EFI", "arm": "\\EFI\\BOOT\\BOOTARM.EFI"}


@pytest.fixture(scope="module")
def entry() -> config.HypervisorEntry:
    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    config.check_ready(entry, ["aarch64", "arm"], ["edk2"])
    return entry


def boot_probe(
    entry: config.HypervisorEntry, arch: str, tmp_path: Path, *, facts: tuple[str, ...] = (),
    extra_args: tuple[str, ...] = (),
) -> tuple[runner.BootResult, Path]:  # fmt: skip
    if extra_args:
        entry = dataclasses.replace(entry, extra_args=(*entry.extra_args, *extra_args))
    nonce = cases.new_nonce()
    disk = tmp_path / "disk.img"
    probe = build_probe(arch, nonce, facts=facts)
    build_disk(DiskSpec(files=(EspFile(removable_media_path(arch), probe),), seed=nonce)).save(disk)
    fw = config.resolve_firmware(entry, "edk2", arch)
    result = runner.boot(backend_for(entry), arch, (disk,), fw, nonce, tmp_path / "run", timeout=90)
    assert result.stop.reason == "matched", result.describe()
    result.expect("END", "shutdown")
    result.expect_clean_poweroff()
    return result, disk


def gpt_partition_guid(disk: Path, index: int = 0) -> UUID:
    """The UniquePartitionGUID of GPT entry `index`, read from the image (512-byte sectors, entries at LBA 2)."""
    with open(disk, "rb") as f:
        f.seek(2 * 512 + index * 128 + 16)
        return UUID(bytes_le=f.read(16))


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_boot_fw_and_the_partition_the_image_came_from(entry: config.HypervisorEntry, arch: str,
                                                       tmp_path: Path) -> None:  # fmt: skip
    result, disk = boot_probe(entry, arch, tmp_path)
    assert [ln.key for ln in result.lines] == ["BOOT", "FW", "SECUREBOOT", "END"]
    result.expect("BOOT", arch)
    facts = ProbeFacts.from_lines(result.lines)
    assert facts.boot is not None and facts.firmware is not None
    assert facts.boot.image.ok and facts.boot.device.ok
    assert facts.boot.loaded_path == facts.boot.path_text == BOOT_FILE[arch]
    part = facts.boot.partition
    assert part is not None and (part.number, part.format, part.signature_type) == (1, 2, 2)
    assert part.guid == gpt_partition_guid(disk)
    fw = facts.firmware
    assert fw.st_signature_ok and fw.rt_signature_ok and fw.vendor == "EDK II"
    assert fw.uefi_revision >= 0x00020028  # UEFI 2.4 or later (FW-3)
    sb = facts.secureboot  # Debian's AAVMF_VARS.fd / AAVMF32_VARS.fd: no keys enrolled, so setup mode
    assert sb is not None and not sb.enforcing and sb.setup and sb.keys == (), [r.describe() for r in sb.readings]
    assert sb.secure_boot.value in (0, None) and sb.setup_mode.attributes == 0x6  # BS|RT
    assert result.elapsed < 30


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_tables_time_and_cpu(entry: config.HypervisorEntry, arch: str, tmp_path: Path) -> None:
    result, _ = boot_probe(entry, arch, tmp_path, facts=("tables", "time", "cpu"))
    facts = ProbeFacts.from_lines(result.lines)
    assert facts.tables is not None and facts.tables.has("SMBIOS3") and len(facts.tables.guids) >= 5
    assert facts.tables.has("ACPI_20") if arch == "aarch64" else facts.tables.has("DTB")
    time = facts.time
    assert time is not None
    assert (time.get0.name, time.stall.name, time.get1.name, time.set.name) == ("EFI_SUCCESS",) * 4
    assert time.t0.problems() == [] and time.t1.problems() == [] and time.t0.year >= 2024
    assert time.advanced is not None and 1 <= time.advanced <= 3, f"{time.t0} -> {time.t1}"
    cpu = facts.cpu
    assert cpu is not None
    assert cpu.privilege == ("EL1" if arch == "aarch64" else "SVC (PL1)")
    assert cpu.counter_frequency > 0
    assert cpu.counter_seconds is not None and 0.9 <= cpu.counter_seconds <= 3, cpu.registers
    assert cpu.registers["midr"] >> 24 == 0x41  # implementer: Arm


def _check_fdt(facts: ProbeFacts, timer: str) -> None:
    tree = facts.fdt()
    assert tree is not None, "no DTB configuration table"
    assert facts.dumps["dtb"].complete and tree.version == 17
    psci = tree.find("/psci")
    assert psci is not None and "arm,psci-0.2" in psci.compatible
    assert [n for n in tree.find("/cpus").children if n.name.startswith("cpu@")]  # type: ignore[union-attr]
    assert tree.compatible("arm,pl011") and tree.compatible(timer)
    assert tree.compatible("arm,cortex-a15-gic", "arm,gic-v3")
    assert tree.compatible("pci-host-ecam-generic")


def test_dtb_decodes_on_arm(entry: config.HypervisorEntry, tmp_path: Path) -> None:
    result, _ = boot_probe(entry, "arm", tmp_path, facts=("dump",))
    facts = ProbeFacts.from_lines(result.lines)
    _check_fdt(facts, "arm,armv7-timer")
    assert facts.acpi() is None  # AAVMF32 publishes no ACPI


def test_dtb_decodes_on_aarch64_with_acpi_off(entry: config.HypervisorEntry, tmp_path: Path) -> None:
    result, _ = boot_probe(entry, "aarch64", tmp_path, facts=("dump",), extra_args=("-machine", "acpi=off"))
    facts = ProbeFacts.from_lines(result.lines)
    _check_fdt(facts, "arm,armv8-timer")
    assert facts.acpi() is None


def test_acpi_and_smbios_decode_on_aarch64(entry: config.HypervisorEntry, tmp_path: Path) -> None:
    result, _ = boot_probe(entry, "aarch64", tmp_path, facts=("dump",))
    facts = ProbeFacts.from_lines(result.lines)
    assert facts.fdt() is None  # ArmVirtQemu: ACPI xor DT (clauses.md §5)
    a = facts.acpi()
    assert a is not None and all(d.complete for d in facts.dumps.values())
    assert a.rsdp.revision >= 2 and a.rsdp.checksum_ok and a.rsdp.extended_checksum_ok
    assert a.xsdt is not None and a.xsdt.checksum_ok and all(h.checksum_ok for h in a.headers)
    assert {"FACP", "APIC", "GTDT", "SPCR", "MCFG"} <= set(a.tables)
    fadt = acpimod.parse_fadt(a.tables["FACP"])
    assert fadt.psci_compliant and fadt.hw_reduced
    madt = acpimod.parse_madt(a.tables["APIC"])
    assert madt.gic_version in (2, 3) and len(madt.gicc) == 1 and madt.gicc[0][2]
    assert acpimod.parse_gtdt(a.tables["GTDT"]).virtual_el1 == 27
    assert acpimod.parse_spcr(a.tables["SPCR"]).interface in ("ARM PL011", "ARM SBSA generic")
    assert acpimod.parse_mcfg(a.tables["MCFG"])
    smbios = facts.smbios3()
    assert smbios is not None and smbios[0].checksum_ok and smbios[1][-1].type == 127
