"""Host-side decoding of the probe's facts: statuses, device paths, time, CPU, DUMP reassembly, FDT/ACPI/SMBIOS.

The transcripts in tests/facts_data/ are the probe's lines from real boots (QEMU 7.2 `virt`, Debian AAVMF/AAVMF32
2022.11, TCG): aarch64 with ACPI (the default), aarch64 with `-machine acpi=off`, and arm (DT only). The tables
built by hand below are written from the specifications' offsets, independently of the decoders.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from uuid import UUID

import pytest
from host_tools import require

from vmconform.facts import EfiStatus, EfiTime, FactError, ProbeFacts, TablesFact
from vmconform.facts import acpi as acpimod
from vmconform.facts.devicepath import device_path_text, parse_device_path
from vmconform.facts.fdt import FdtError, parse_fdt
from vmconform.facts.smbios import SmbiosError, parse_entry_point, parse_structures
from vmconform.probe import parse_line, parse_lines
from vmconform.probe.protocol import format_line

DATA = Path(__file__).parent / "facts_data"


def facts(name: str) -> ProbeFacts:
    return ProbeFacts.from_lines(parse_lines((DATA / name).read_text()))


# ---------------------------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("text", "name", "ok", "error"),
    [
        ("0000000000000000", "EFI_SUCCESS", True, False),
        ("00000000", "EFI_SUCCESS", True, False),
        ("800000000000000E", "EFI_NOT_FOUND", False, True),
        ("8000000E", "EFI_NOT_FOUND", False, True),
        ("80000005", "EFI_BUFFER_TOO_SMALL", False, True),
        ("8000000000000007", "EFI_DEVICE_ERROR", False, True),
        ("000000000000000E", "EFI warning 0xe", False, False),  # a 64-bit value: 0xE is no error there
        ("80000063", "EFI error 0x63", False, True),
    ],
)
def test_efi_status(text: str, name: str, ok: bool, error: bool) -> None:
    status = EfiStatus.parse(text)
    assert (status.name, status.ok, status.is_error, str(status)) == (name, ok, error, name)


# ---------------------------------------------------------------------------------------------- BOOT, FW, TABLES


@pytest.mark.parametrize(("name", "arch", "path"), [("aarch64-acpi.log", "aarch64", "\\EFI\\BOOT\\BOOTAA64.EFI"),
                                                    ("arm-dtb.log", "arm", "\\EFI\\BOOT\\BOOTARM.EFI")])  # fmt: skip
def test_boot_fact_from_a_real_boot(name: str, arch: str, path: str) -> None:
    boot = facts(name).boot
    assert boot is not None
    assert (boot.arch, boot.image.ok, boot.device.ok) == (arch, True, True)
    assert boot.loaded_path == boot.path_text == path
    part = boot.partition
    assert part is not None
    assert (part.number, part.start, part.size, part.format, part.signature_type) == (1, 2048, 0x1F000, 2, 2)
    assert part.guid is not None
    assert boot.device_path is not None
    assert device_path_text(boot.device_path) == (
        f"PciRoot(0x0)/Pci(0x1,0x0)/HD(1,GPT,{str(part.guid).upper()},0x800,0x1f000)"
    )


def test_device_path_errors() -> None:
    with pytest.raises(ValueError, match="no end node"):
        parse_device_path(bytes.fromhex("010106000001"))
    with pytest.raises(ValueError, match="length 2"):
        parse_device_path(bytes.fromhex("01010200"))
    nodes = parse_device_path(bytes.fromhex("030a0800aabbccdd7fff0400"))
    assert device_path_text(nodes) == "Path(3,10,AABBCCDD)"


@pytest.mark.parametrize(("revision", "text"), [(0x00020046, "2.7"), (0x00020028, "2.4"), (0x0002001F, "2.3.1"),
                                                (0x0002000A, "2.1")])  # fmt: skip
def test_uefi_version_text(revision: int, text: str) -> None:
    line = parse_line(format_line("n", "FW", fields={"st_sig": "5453595320494249", "uefi_rev": f"{revision:08X}",
                                                     "fw_rev": "0", "rt_sig": "0", "vendor": "X Y"}))  # fmt: skip
    assert line is not None
    fw = ProbeFacts.from_lines([line]).firmware
    assert fw is not None and fw.uefi_version_text == text and fw.st_signature_ok and not fw.rt_signature_ok
    assert fw.vendor == "X Y"


def test_tables_names_from_a_real_boot() -> None:
    acpi_boot, dtb_boot, arm = facts("aarch64-acpi.log"), facts("aarch64-dtb.log"), facts("arm-dtb.log")
    assert acpi_boot.tables is not None and dtb_boot.tables is not None and arm.tables is not None
    assert acpi_boot.tables.has("ACPI_20") and not acpi_boot.tables.has("DTB")  # ArmVirtQemu: ACPI xor DT
    assert dtb_boot.tables.has("DTB") and not dtb_boot.tables.has("ACPI_20")
    assert {"DTB", "SMBIOS", "SMBIOS3", "MEMORY_ATTRIBUTES"} <= set(arm.tables.names)
    assert "FC1BCDB0-7D31-49AA-936A-A4600D9DD083" in acpi_boot.tables.names  # unknown GUIDs stay canonical


def test_tables_count_must_match() -> None:
    line = parse_line("VMCONFORM n TABLES count=00000002 D521B6B19CF1A541830BD9152C69AAE0")
    assert line is not None
    with pytest.raises(FactError, match="count=2 but lists 1"):
        TablesFact.from_line(line)


# ---------------------------------------------------------------------------------------------- TIME, CPU


def test_time_and_cpu_from_real_boots() -> None:
    for name in ("aarch64-acpi.log", "arm-dtb.log"):
        f = facts(name)
        assert f.time is not None and f.cpu is not None
        assert f.time.get0.ok and f.time.get1.ok and f.time.stall.ok and f.time.set.ok
        assert f.time.t0.problems() == [] and f.time.t0.year >= 2024
        assert f.time.advanced is not None and 0.5 <= f.time.advanced <= 3
        assert f.cpu.counter_frequency == 62_500_000
        assert f.cpu.counter_seconds is not None and 0.9 <= f.cpu.counter_seconds <= 1.5
    assert facts("aarch64-acpi.log").cpu.privilege == "EL1"  # type: ignore[union-attr]
    assert facts("arm-dtb.log").cpu.privilege == "SVC (PL1)"  # type: ignore[union-attr]


def test_efi_time_validity() -> None:
    bad = EfiTime.from_bytes(struct.pack("<HBBBBBBIhBB", 1899, 13, 0, 24, 60, 60, 0, 10**9, 2000, 0, 0))
    assert bad.problems() == [
        "Year 1899 outside 1900..9999", "Month 13 outside 1..12", "Day 0 outside 1..31", "Hour 24 outside 0..23",
        "Minute 60 outside 0..59", "Second 60 outside 0..59", "Nanosecond 1000000000 outside 0..999999999",
        "TimeZone 2000 is neither -1440..1440 nor EFI_UNSPECIFIED_TIMEZONE"]  # fmt: skip
    good = EfiTime.from_bytes(struct.pack("<HBBBBBBIhBB", 2026, 2, 28, 23, 59, 59, 0, 0, -60, 1, 0))
    assert good.problems() == [] and str(good) == "2026-02-28 23:59:59.000000000"


# ---------------------------------------------------------------------------------------------- DUMP


def _dump_lines(name: str, data: bytes, size: int, chunks: list[tuple[int, int]]) -> list[str]:
    lines = [f"VMCONFORM n DUMP {name} addr=0000000040000000 size={size:08X} shown={len(data):08X}"]
    lines += [f"VMCONFORM n DUMP {name} off={o:08X} data={data[o : o + n].hex().upper()}" for o, n in chunks]
    return lines


def test_dump_reassembly_in_any_order_and_gaps_are_reported() -> None:
    data = bytes(range(150))
    lines = _dump_lines("blob", data, 4096, [(128, 22), (0, 64), (64, 64)])
    dump = ProbeFacts.from_lines(parse_lines("\n".join(lines))).dumps["blob"]
    assert (dump.data, dump.size, dump.complete, dump.address) == (data, 4096, True, 0x40000000)
    gap = ProbeFacts.from_lines(parse_lines("\n".join(_dump_lines("blob", data, 150, [(0, 64), (128, 22)]))))
    assert gap.dumps["blob"].missing == ((64, 64),) and not gap.dumps["blob"].complete


# ---------------------------------------------------------------------------------------------- FDT


def test_fdt_from_real_boots() -> None:
    for name, timer in (("aarch64-dtb.log", "arm,armv8-timer"), ("arm-dtb.log", "arm,armv7-timer")):
        tree = facts(name).fdt()
        assert tree is not None and tree.version == 17
        assert tree.find("/psci").compatible[-2:] == ("arm,psci-0.2", "arm,psci")  # type: ignore[union-attr]
        assert [n.name for n in tree.find("/cpus").children if n.name.startswith("cpu@")] == ["cpu@0"]  # type: ignore[union-attr]
        assert [p for p, _ in tree.compatible("arm,pl011")] == ["/pl011@9000000"]
        assert [p for p, _ in tree.compatible(timer)] == ["/timer"]
        assert len(tree.find("/timer").cells("interrupts")) == 12  # type: ignore[union-attr]  # 4 PPIs x 3 cells
        assert [p for p, _ in tree.compatible("arm,cortex-a15-gic")] == ["/intc@8000000"]
        assert [p for p, _ in tree.compatible("pci-host-ecam-generic")] == ["/pcie@10000000"]
        rtc = tree.compatible("arm,pl031")
        assert rtc and not tree.status_okay(rtc[0][1])  # EDK2 hides the PL031 so the OS uses the EFI RTC
    assert facts("aarch64-acpi.log").fdt() is None


def test_fdt_matches_qemu_and_dtc(tmp_path: Path) -> None:
    """QEMU's own DTB (dumpdtb, no boot) decodes to the node set `dtc` sees (dtc is the oracle)."""
    require("qemu-system-aarch64", "dtc")
    qemu, dtc = shutil.which("qemu-system-aarch64"), shutil.which("dtc")
    assert qemu is not None and dtc is not None
    out = tmp_path / "virt.dtb"
    subprocess.run([qemu, "-machine", f"virt,dumpdtb={out}", "-cpu", "cortex-a57", "-smp", "2", "-nodefaults",
                    "-display", "none"], check=True, capture_output=True, timeout=60)  # fmt: skip
    tree = parse_fdt(out.read_bytes())
    paths = [p for p, _ in tree.root.walk()]
    assert {"/cpus/cpu@0", "/cpus/cpu@1", "/psci", "/timer", "/chosen"} <= set(paths)
    assert tree.find("/cpus/cpu@1").string("device_type") == "cpu"  # type: ignore[union-attr]
    dts = subprocess.run([dtc, "-I", "dtb", "-O", "dts", str(out)], check=True, capture_output=True, text=True,
                         timeout=60).stdout  # fmt: skip
    names = [line.strip().split(" {")[0].split(": ")[-1] for line in dts.splitlines() if line.rstrip().endswith("{")]
    assert sorted(n for n in names if n != "/") == sorted(p.rsplit("/", 1)[1] for p in paths if p != "/")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\0" * 10, "shorter than an FDT header"),
        (struct.pack(">10I", 0xD00DFEEE, 40, 0, 0, 0, 17, 16, 0, 0, 0), "bad magic"),
        (struct.pack(">10I", 0xD00DFEED, 40, 40, 40, 40, 17, 16, 0, 0, 8), "structure block"),
        (struct.pack(">10I", 0xD00DFEED, 68, 56, 68, 40, 17, 16, 0, 0, 12) + bytes(16) + struct.pack(">3I", 1, 0, 9),
         "no complete root node"),
    ],
)  # fmt: skip
def test_fdt_errors(blob: bytes, message: str) -> None:
    with pytest.raises(FdtError, match=message):
        parse_fdt(blob)


# ---------------------------------------------------------------------------------------------- ACPI


def test_acpi_from_a_real_boot() -> None:
    a = facts("aarch64-acpi.log").acpi()
    assert a is not None
    assert (a.rsdp.revision, a.rsdp.checksum_ok, a.rsdp.extended_checksum_ok) == (2, True, True)
    assert a.rsdp.xsdt_address == facts("aarch64-acpi.log").dumps["xsdt"].address
    assert a.xsdt is not None and a.xsdt.checksum_ok
    assert [h.signature for h in a.headers] == ["FACP", "APIC", "PPTT", "GTDT", "MCFG", "SPCR", "DBG2", "IORT"]
    assert all(h.checksum_ok for h in a.headers)
    fadt = acpimod.parse_fadt(a.table("FACP"))  # type: ignore[arg-type]
    assert fadt.hw_reduced and fadt.psci_compliant and fadt.psci_use_hvc
    madt = acpimod.parse_madt(a.table("APIC"))  # type: ignore[arg-type]
    assert madt.gic_version == 2 and madt.gicd_base == 0x0800_0000 and madt.gicc == ((0, 0, True),)
    gtdt = acpimod.parse_gtdt(a.table("GTDT"))  # type: ignore[arg-type]
    assert (gtdt.secure_el1, gtdt.non_secure_el1, gtdt.virtual_el1, gtdt.non_secure_el2) == (29, 30, 27, 26)
    spcr = acpimod.parse_spcr(a.table("SPCR"))  # type: ignore[arg-type]
    assert (spcr.interface, spcr.base_address) == ("ARM PL011", 0x0900_0000)
    dbg2 = acpimod.parse_dbg2(a.table("DBG2"))  # type: ignore[arg-type]
    assert [(d.port_type, d.port_subtype, d.base_addresses) for d in dbg2] == [(0x8000, 0x0003, (0x0900_0000,))]
    mcfg = acpimod.parse_mcfg(a.table("MCFG"))  # type: ignore[arg-type]
    assert mcfg == (acpimod.McfgAllocation(0x40_1000_0000, 0, 0, 255),)
    assert facts("aarch64-dtb.log").acpi() is None


def _table(signature: bytes, body: bytes, revision: int = 1) -> bytes:
    """An ACPI table with a correct checksum (header fields at the offsets of ACPI 6.5 §5.2.6)."""
    header = struct.pack("<4sIBB6s8sI4sI", signature, 36 + len(body), revision, 0, b"VMCONF", b"TESTTABL", 1,
                         b"VMCF", 1)  # fmt: skip
    raw = bytearray(header + body)
    raw[9] = -sum(raw) % 256
    return bytes(raw)


def test_acpi_hand_built_tables() -> None:
    madt_body = struct.pack("<II", 0, 1)
    # GICC (ACPI 6.5: 82 bytes): CPU interface 7, UID 7, flags 1 (enabled), ..., MPIDR at 68, then 6 more bytes
    gicc = struct.pack("<BBHIIIIIQQQQIQQ", 0x0B, 82, 0, 7, 7, 1, 0, 23, 0, 0, 0, 0, 25, 0, 0x80000001) + bytes(6)
    assert len(gicc) == 82
    gicd = struct.pack("<BBHIQIB3s", 0x0C, 24, 0, 0, 0x2F00_0000, 0, 3, b"\0\0\0")
    its = struct.pack("<BBHIQI", 0x0F, 20, 0, 0, 0x2F02_0000, 0)
    madt = acpimod.parse_madt(_table(b"APIC", madt_body + gicc + gicd + its, 5))
    assert madt.gicc == ((7, 0x80000001, True),) and madt.gic_version == 3 and madt.its == 1
    spcr = acpimod.parse_spcr(_table(b"SPCR", bytes([0x0E, 0, 0, 0]) + struct.pack("<BBBBQ", 0, 32, 0, 3, 0x1C09_0000)))
    assert (spcr.interface, spcr.base_address) == ("ARM SBSA generic", 0x1C09_0000)
    with pytest.raises(acpimod.AcpiError, match="not a FACP"):
        acpimod.parse_fadt(_table(b"APIC", bytes(100)))
    corrupt = bytearray(_table(b"GTDT", bytes(60)))
    corrupt[40] ^= 1
    assert not acpimod.parse_header(bytes(corrupt)).checksum_ok
    rsdp = bytearray(b"RSD PTR " + bytes(1) + b"VMCONF" + b"\x02" + bytes(4) + struct.pack("<IQ", 36, 0x1000))
    rsdp += bytes(4)
    rsdp[8] = -sum(rsdp[:20]) % 256
    rsdp[32] = -sum(rsdp) % 256
    parsed = acpimod.parse_rsdp(bytes(rsdp))
    assert (parsed.revision, parsed.xsdt_address, parsed.checksum_ok, parsed.extended_checksum_ok) == (
        2, 0x1000, True, True)  # fmt: skip


# ---------------------------------------------------------------------------------------------- SMBIOS


def test_smbios_from_a_real_boot() -> None:
    result = facts("aarch64-acpi.log").smbios3()
    assert result is not None
    entry, structures = result
    assert entry.version[:2] == (3, 0) and entry.checksum_ok
    assert entry.table_address == facts("aarch64-acpi.log").dumps["smbios3_table"].address
    by_type = {s.type: s for s in structures}
    assert by_type[1].string(4) == "QEMU" and by_type[1].string(5) == "QEMU Virtual Machine"  # Manufacturer, Product
    assert by_type[0].string(4) == "EFI Development Kit II / OVMF"  # BIOS Vendor
    assert structures[-1].type == 127


def test_smbios_errors() -> None:
    with pytest.raises(SmbiosError, match="anchor"):
        parse_entry_point(b"_SM_" + bytes(30))
    with pytest.raises(SmbiosError, match="terminator"):
        parse_structures(struct.pack("<BBH", 1, 4, 0) + b"abc")
    assert parse_structures(struct.pack("<BBH", 1, 5, 7) + b"\x01" + b"Vendor\0\0" + struct.pack("<BBH", 127, 4, 8)
                            + b"\0\0")[0].string(4) == "Vendor"  # fmt: skip


def test_facts_with_missing_lines_are_none() -> None:
    f = ProbeFacts.from_lines(parse_lines("VMCONFORM n BOOT arm\nVMCONFORM n END shutdown\n"))
    assert f.boot is not None and f.boot.arch == "arm" and f.boot.device_path is None
    assert (f.firmware, f.tables, f.time, f.cpu, f.fdt(), f.acpi(), f.smbios3()) == (None,) * 7
    assert UUID(int=0) not in f.dumps
