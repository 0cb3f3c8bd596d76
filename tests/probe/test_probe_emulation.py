"""The probe's machine code on both architectures, run in unicorn against a fake firmware (no VM).

Every mode is checked for the exact sequence of firmware calls and their arguments, and the printed lines
are read back through the host side (vmconform.facts), so the two ends of the protocol are tested together.
"""

from __future__ import annotations

import struct
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from probe_emulator import (
    CON_OUT,
    DEVICE_HANDLE,
    DEVICE_PATH_GUID,
    IMAGE_HANDLE,
    LOADED_IMAGE_GUID,
    PARTITION_GUID,
    PLATFORM_CANARY,
    STACK_TOP,
    FakeFirmware,
    Variable,
    VariableStore,
    build_fdt,
    disk_device_path,
    efi_time,
    file_path,
    run_probe,
)

from vmconform.facts import ProbeFacts
from vmconform.probe import build_probe, parse_line, parse_lines, protocol
from vmconform.probe.program import BOOTNEXT_OPTION, NEXT_PATH, VENDOR_GUID

ARCHES = ("aarch64", "arm")
GLOBAL = UUID("8BE4DF61-93CA-11D2-AA0D-00E098032B8C")
DTB = UUID("B1B621D5-F19C-41A5-830B-D9152C69AAE0")
ACPI20 = UUID("8868E871-E4F1-11D3-BC22-0080C73C8881")
SMBIOS3 = UUID("F2FD1544-9794-4A2C-992E-E5BBCF20E394")


def ptr_digits(arch: str) -> int:
    return 16 if arch == "aarch64" else 8


def status(arch: str, code: int = 0) -> str:
    """An EFI_STATUS as the probe prints it on `arch` (code: an error code, 0 = EFI_SUCCESS)."""
    digits = ptr_digits(arch)
    value = ((1 << (4 * digits - 1)) | code) if code else 0
    return f"{value:0{digits}X}"


SECUREBOOT_CALLS = ["GetVariable"] * 8  # SecureBoot, SetupMode, AuditMode, DeployedMode, PK, KEK, db, dbx


def facts_of(emu_output: str) -> ProbeFacts:
    return ProbeFacts.from_lines(parse_lines(emu_output))


@pytest.mark.parametrize("arch", ARCHES)
def test_boot_mode_calls_and_output(arch: str) -> None:
    emu = run_probe(build_probe(arch, "a1b2c3"))
    assert emu.services == ["HandleProtocol", "HandleProtocol", *SECUREBOOT_CALLS, "ResetSystem"]
    li, dp, *_, reset = (c for c in emu.calls if c.service != "OutputString")
    assert (li.args[0], li.detail) == (IMAGE_HANDLE, LOADED_IMAGE_GUID)
    assert (dp.args[0], dp.detail) == (DEVICE_HANDLE, DEVICE_PATH_GUID)
    assert reset.args[:4] == (2, 0, 0, 0)  # EfiResetShutdown, EFI_SUCCESS, DataSize 0, ResetData NULL
    lines = emu.lines()
    assert [parse_line(line).key for line in lines] == ["BOOT", "FW", "SECUREBOOT", "END"]  # type: ignore[union-attr]
    ok = status(arch)
    assert lines[0] == (
        f"VMCONFORM a1b2c3 BOOT {arch} image={ok} device={ok} devpath={disk_device_path().hex().upper()} "
        f"filepath={file_path(chr(92) + 'EFI' + chr(92) + 'BOOT' + chr(92) + 'BOOTAA64.EFI').hex().upper()} "
        "path=\\EFI\\BOOT\\BOOTAA64.EFI"
    )
    assert lines[1] == ("VMCONFORM a1b2c3 FW st_sig=5453595320494249 uefi_rev=00020046 fw_rev=00010000 "
                        "rt_sig=56524553544E5552 vendor=EDK II")  # fmt: skip
    assert lines[2].startswith(f"VMCONFORM a1b2c3 SECUREBOOT SecureBoot={status(arch, 14)} SecureBoot_attr=00000000 ")
    assert lines[3] == "VMCONFORM a1b2c3 END shutdown"
    boot = facts_of(emu.output).boot
    assert boot is not None and boot.partition is not None
    assert (boot.partition.number, boot.partition.guid, boot.partition.start) == (1, PARTITION_GUID, 0x800)
    assert boot.loaded_path == "\\EFI\\BOOT\\BOOTAA64.EFI"
    for call in emu.calls:
        if call.service == "OutputString":
            assert call.args[0] == CON_OUT  # This


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("mode", ["boot", "warm", "bootnext"])
def test_calling_convention_at_every_call(arch: str, mode: str) -> None:
    emu = run_probe(build_probe(arch, "x", mode=mode, facts=("tables", "time", "cpu", "dump")))
    alignment = 16 if arch == "aarch64" else 8
    canary = PLATFORM_CANARY & ((1 << (4 * ptr_digits(arch))) - 1)
    assert len(emu.calls) > 20
    for call in emu.calls:
        assert call.sp % alignment == 0, f"{call.service}: sp {call.sp:#x} not {alignment}-byte aligned"
        assert STACK_TOP - 0x1000 < call.sp < STACK_TOP, f"{call.service}: sp {call.sp:#x} outside a small frame"
        assert call.platform == canary, f"{call.service}: the platform register was clobbered"


@pytest.mark.parametrize("arch", ARCHES)
def test_never_returns_when_reset_system_returns(arch: str) -> None:
    emu = run_probe(build_probe(arch, "x"), FakeFirmware(reset_returns=True), 50_000)
    assert emu.services[-1] == "ResetSystem"  # nothing after it, no return to firmware
    assert emu.spinning, f"expected to spin on a branch to itself, stopped at {emu.final_pc:#x}"


@pytest.mark.parametrize("arch", ARCHES)
def test_no_loaded_image_no_device_path(arch: str) -> None:
    emu = run_probe(build_probe(arch, "n"), FakeFirmware(vendor=None, loaded_image=False))
    assert emu.services == ["HandleProtocol", *SECUREBOOT_CALLS, "ResetSystem"]
    boot, fw = (parse_line(line) for line in emu.lines()[:2])
    assert boot is not None and fw is not None
    assert boot.fields == {"image": status(arch, 3), "device": status(arch, 14)}  # UNSUPPORTED; NOT_FOUND
    assert fw.fields["vendor"] == ""


@pytest.mark.parametrize("arch", ARCHES)
def test_device_without_device_path(arch: str) -> None:
    emu = run_probe(build_probe(arch, "n"), FakeFirmware(device_path=None))
    boot = parse_line(emu.lines()[0])
    assert boot is not None and boot.fields["device"] == status(arch, 3)
    assert "devpath" not in boot.fields and boot.fields["path"] == "\\EFI\\BOOT\\BOOTAA64.EFI"


@pytest.mark.parametrize("arch", ARCHES)
def test_tables_time_cpu(arch: str) -> None:
    guids = (DTB, ACPI20, UUID("12345678-9ABC-DEF0-1122-334455667788"))
    t0, t1 = efi_time(second=58), efi_time(minute=21, second=0, nanosecond=5)
    fw = FakeFirmware(tables=tuple((g, b"\0" * 64) for g in guids), times=(t0, t1), set_time_status="DEVICE_ERROR")
    emu = run_probe(build_probe(arch, "t", facts=("tables", "time", "cpu")), fw)
    assert emu.services == ["HandleProtocol", "HandleProtocol", *SECUREBOOT_CALLS, "GetTime", "Stall", "GetTime",
                            "SetTime", "ResetSystem"]  # fmt: skip
    calls = {c.service: c for c in emu.calls}
    assert calls["Stall"].args[0] == 1_000_000
    assert calls["GetTime"].args[1] == 0  # Capabilities: NULL
    assert calls["SetTime"].detail == t1  # the second reading written back
    facts = facts_of(emu.output)
    assert facts.tables is not None and facts.tables.guids == guids
    assert facts.tables.names[:2] == ("DTB", "ACPI_20")
    assert facts.time is not None
    assert (facts.time.get0.ok, facts.time.get1.ok, facts.time.stall.ok) == (True, True, True)
    assert facts.time.set.name == "EFI_DEVICE_ERROR"
    assert facts.time.advanced == 2.0 and facts.time.t1.nanosecond == 5
    assert facts.cpu is not None
    regs = facts.cpu.registers
    if arch == "aarch64":
        assert set(regs) == {"el", "cntfrq", "midr", "pfr0", "cntvct0", "cntvct1"}
    else:
        assert set(regs) == {"cpsr", "cntfrq", "midr", "pfr1", "cntvct0", "cntvct1"}
        assert regs["midr"] >> 24 == 0x41 and regs["cpsr"] >> 32 == 0  # Arm Ltd.; a 32-bit register
    assert regs["cntvct1"] > regs["cntvct0"]


@pytest.mark.parametrize("arch", ARCHES)
def test_dumps_are_reassembled_byte_for_byte(arch: str) -> None:
    fdt = build_fdt({"/": {"compatible": b"linux,dummy-virt\0"}, "/psci": {"compatible": b"arm,psci-0.2\0"},
                     "/cpus": {}, "/cpus/cpu@0": {"reg": bytes(4)}}, slack=300)  # fmt: skip
    # RSDP (revision 2) -> XSDT -> two tables; addresses fixed up once the fake places them
    fake = FakeFirmware(tables=((DTB, fdt),))
    emu = run_probe(build_probe(arch, "d", facts=("dump",)), fake)
    facts = facts_of(emu.output)
    dump = facts.dumps["dtb"]
    assert dump.size == len(fdt) and dump.shown == len(fdt) - 300 and dump.complete
    assert dump.data == fdt[: len(fdt) - 300]
    tree = facts.fdt()
    assert tree is not None and tree.find("/psci").compatible == ("arm,psci-0.2",)  # type: ignore[union-attr]
    assert facts.acpi() is None and facts.smbios3() is None


@pytest.mark.parametrize("arch", ARCHES)
def test_acpi_and_smbios_dumps_follow_their_pointers(arch: str) -> None:
    # the fake places the blob of table i at BLOBS + 0x1000 * i: RSDP -> XSDT (2) -> TEST (3); SMBIOS3 -> 4
    blobs = 0x5000_8000
    table = b"TEST" + struct.pack("<I", 40) + bytes(32)
    xsdt = b"XSDT" + struct.pack("<I", 44) + bytes(28) + struct.pack("<Q", blobs + 0x3000)
    rsdp = b"RSD PTR " + bytes(7) + b"\x02" + bytes(4) + struct.pack("<IQ", 36, blobs + 0x2000) + bytes(4)
    table_blob = struct.pack("<BBH", 127, 4, 0) + b"\0\0"
    entry = b"_SM3_" + bytes([0, 24, 3, 0, 0, 1, 0]) + struct.pack("<IQ", len(table_blob), blobs + 0x4000)
    fake = FakeFirmware(tables=((ACPI20, rsdp), (SMBIOS3, entry), (UUID(int=1), xsdt), (UUID(int=2), table),
                                (UUID(int=3), table_blob)))  # fmt: skip
    emu = run_probe(build_probe(arch, "d", facts=("dump",)), fake)
    dumps = facts_of(emu.output).dumps
    assert {name: d.data for name, d in dumps.items()} == {
        "rsdp": rsdp,
        "xsdt": xsdt,
        "acpi00": table,
        "smbios3": entry,
        "smbios3_table": table_blob,
    }


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize(("mode", "reset_type"), [("warm", 1), ("cold", 0), ("power", 2)])
def test_nvram_flow_across_a_reset(arch: str, mode: str, reset_type: int) -> None:
    nonce = "f1ow-" + mode
    image = build_probe(arch, nonce, mode=mode)
    store = VariableStore()
    first = run_probe(image, store=store)
    nv, vol = f"VmcNv-{nonce}", f"VmcVol-{nonce}"
    assert [(c.service, c.text) for c in first.calls if c.service != "OutputString"][2:] == [
        ("GetVariable", nv), ("SetVariable", nv), ("SetVariable", vol), ("GetVariable", nv), ("GetVariable", vol),
        ("ResetSystem", None)]  # fmt: skip
    sets = [c for c in first.calls if c.service == "SetVariable"]
    assert [c.detail for c in sets] == [(VENDOR_GUID, 7, nonce.encode()), (VENDOR_GUID, 6, nonce.encode())]
    assert first.calls[-1].args[0] == reset_type
    assert [ln.split(" ", 3)[2:] for ln in first.lines()[2:]] == [
        ["NVRAM", f"phase1 mode={mode} get={status(arch, 14)}"],
        ["NVRAM", f"set nv={status(arch)} vol={status(arch)}"],
        ["NVRAM", f"readback nv={status(arch)} nv_attr=00000007 nv_size={len(nonce):08X} "
                  f"nv_data={nonce.encode().hex().upper()} vol={status(arch)} vol_attr=00000006 "
                  f"vol_size={len(nonce):08X} vol_data={nonce.encode().hex().upper()}"],
        ["RESET", mode] if mode != "power" else ["END", "shutdown"],
    ]  # fmt: skip
    store.reset()
    second = run_probe(image, store=store)
    assert [(c.service, c.text) for c in second.calls if c.service != "OutputString"][2:] == [
        ("GetVariable", nv),
        ("GetVariable", vol),
        ("SetVariable", nv),
        ("ResetSystem", None),
    ]
    assert [c.detail for c in second.calls if c.service == "SetVariable"] == [(VENDOR_GUID, 0, b"")]
    assert second.calls[-1].args[0] == 2
    assert [ln.split(" ", 3)[2:] for ln in second.lines()[2:]] == [
        ["NVRAM", f"phase2 mode={mode} get={status(arch)} get_attr=00000007 get_size={len(nonce):08X} "
                  f"get_data={nonce.encode().hex().upper()}"],
        ["NVRAM", f"volatile get={status(arch, 14)}"],
        ["NVRAM", f"delete status={status(arch)}"],
        ["NVRAM", "done"],
        ["END", "shutdown"],
    ]  # fmt: skip
    assert store.variables == {}


@pytest.mark.parametrize("arch", ARCHES)
def test_nvram_store_that_forgets_shows_phase_one_again(arch: str) -> None:
    image = build_probe(arch, "forget", mode="cold")
    store = VariableStore(persist=False)
    run_probe(image, store=store)
    store.reset()
    again = run_probe(image, store=store)
    assert [parse_line(ln).args[0] for ln in again.lines() if "NVRAM" in ln][0] == "phase1"  # type: ignore[union-attr]


@pytest.mark.parametrize("arch", ARCHES)
def test_nvram_unexpected_status_is_reported_not_acted_on(arch: str) -> None:
    store = VariableStore({("VmcNv-big", VENDOR_GUID): Variable(7, b"x" * 100)})
    emu = run_probe(build_probe(arch, "big", mode="warm"), store=store)
    assert emu.services[2:] == ["GetVariable", "ResetSystem"]
    assert emu.lines()[2] == f"VMCONFORM big NVRAM error get={status(arch, 5)}"  # BUFFER_TOO_SMALL
    assert emu.calls[-1].args[0] == 2


@pytest.mark.parametrize("arch", ARCHES)
def test_bootnext_writes_a_load_option_then_next_cleans_up(arch: str) -> None:
    store = VariableStore()
    first = run_probe(build_probe(arch, "one", mode="bootnext"), store=store)
    assert first.services[2:] == ["GetVariable", "CopyMem", "CopyMem", "CopyMem", "SetVariable", "SetVariable",
                                  "ResetSystem"]  # fmt: skip
    assert first.calls[-1].args[0] == 0  # EfiResetCold
    option = store.variables[(f"Boot{BOOTNEXT_OPTION:04X}", GLOBAL)]
    boot_next = store.variables[("BootNext", GLOBAL)]
    assert (option.attributes, boot_next.attributes, boot_next.data) == (7, 7, struct.pack("<H", BOOTNEXT_OPTION))
    description = "vmconform NEXT".encode("utf-16-le") + b"\0\0"
    paths = disk_device_path()[:-4] + file_path(NEXT_PATH)
    assert option.data == struct.pack("<IH", 1, len(paths)) + description + paths  # EFI_LOAD_OPTION
    assert first.lines()[-2:] == [
        f"VMCONFORM one BOOTNEXT set option={BOOTNEXT_OPTION:04X} option_status={status(arch)} "
        f"next_status={status(arch)}", "VMCONFORM one RESET cold"]  # fmt: skip

    store.variables[("BootCurrent", GLOBAL)] = Variable(6, struct.pack("<H", BOOTNEXT_OPTION))
    nxt = run_probe(build_probe(arch, "two", mode="next"), FakeFirmware(file_path=file_path(NEXT_PATH)), store=store)
    assert [(c.service, c.text) for c in nxt.calls if c.service != "OutputString"][2:] == [
        ("GetVariable", "BootCurrent"),
        ("SetVariable", f"Boot{BOOTNEXT_OPTION:04X}"),
        ("ResetSystem", None),
    ]
    assert nxt.lines()[2:] == [
        f"VMCONFORM two BOOTNEXT next current_status={status(arch)} current={BOOTNEXT_OPTION:04X}",
        f"VMCONFORM two BOOTNEXT delete status={status(arch)}", "VMCONFORM two END shutdown"]  # fmt: skip
    assert (f"Boot{BOOTNEXT_OPTION:04X}", GLOBAL) not in store.variables

    again = run_probe(build_probe(arch, "one", mode="bootnext"), store=VariableStore(
        {(f"Boot{BOOTNEXT_OPTION:04X}", GLOBAL): option}))  # fmt: skip
    # the option is bigger than the probe's buffer: any status but EFI_NOT_FOUND means "it is there"
    assert again.lines()[2] == f"VMCONFORM one BOOTNEXT again get={status(arch, 5)}"
    assert again.calls[-1].args[0] == 2


@settings(max_examples=25, deadline=None)
@given(
    arch=st.sampled_from(ARCHES),
    nonce=st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-", min_size=1,
                  max_size=32),
    st_sig=st.integers(0, (1 << 64) - 1),
    uefi_rev=st.integers(0, (1 << 32) - 1),
    fw_rev=st.integers(0, (1 << 32) - 1),
    rt_sig=st.integers(0, (1 << 64) - 1),
    vendor=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xD7FF), max_size=40),
)  # fmt: skip
def test_fw_line_for_any_firmware(arch: str, nonce: str, st_sig: int, uefi_rev: int, fw_rev: int, rt_sig: int,
                                  vendor: str) -> None:  # fmt: skip
    emu = run_probe(build_probe(arch, nonce), FakeFirmware(st_sig, uefi_rev, fw_rev, rt_sig, vendor))
    parsed = [parse_line(line) for line in emu.lines()]
    assert [(p.nonce, p.key) for p in parsed if p] == [(nonce, "BOOT"), (nonce, "FW"), (nonce, "SECUREBOOT"),
                                                        (nonce, "END")]  # fmt: skip
    fw = parsed[1]
    assert fw is not None
    assert dict(fw.fields) == {
        "st_sig": f"{st_sig:016X}", "uefi_rev": f"{uefi_rev:08X}", "fw_rev": f"{fw_rev:08X}",
        "rt_sig": f"{rt_sig:016X}", "vendor": vendor,
    }  # fmt: skip
    assert emu.services[-1] == "ResetSystem"


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("mode", ["boot", "warm", "bootnext"])
def test_every_line_starts_with_the_protocol_prefix(arch: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The program spells no line prefix itself: all of them come from protocol.PREFIX (through program.lines)."""
    monkeypatch.setattr(protocol, "PREFIX", "XPROBE")
    emu = run_probe(build_probe(arch, "pfx", mode=mode, facts=("tables", "time", "cpu")))
    lines = emu.lines()
    assert len(lines) >= 5 and all(line.startswith("XPROBE pfx ") for line in lines), lines
    assert "VMCONFORM" not in emu.output


IMAGE_SECURITY_DATABASE = UUID("D719B2CB-3D3A-4596-A3BC-DAD00E67656F")
AUTH_NV_BS_RT = 0x27  # NV | BS | RT | TIME_BASED_AUTHENTICATED_WRITE_ACCESS


def secure_boot_store(secure_boot: int, setup_mode: int, keys: dict[str, int]) -> VariableStore:
    """Mode variables (BS|RT, one byte) and key databases of the given sizes, as an EDK2 store holds them."""
    store = VariableStore()
    for name, value in (("SecureBoot", secure_boot), ("SetupMode", setup_mode), ("AuditMode", 0),
                        ("DeployedMode", 0)):  # fmt: skip
        store.variables[(name, GLOBAL)] = Variable(6, bytes([value]))
    for name, size in keys.items():
        guid = GLOBAL if name in ("PK", "KEK") else IMAGE_SECURITY_DATABASE
        store.variables[(name, guid)] = Variable(AUTH_NV_BS_RT, bytes(size))
    return store


@pytest.mark.parametrize("arch", ARCHES)
def test_secureboot_fact_of_an_enforcing_firmware(arch: str) -> None:
    store = secure_boot_store(1, 0, {"PK": 857, "KEK": 1560, "db": 3143, "dbx": 76})
    emu = run_probe(build_probe(arch, "sb"), store=store)
    gets = [c for c in emu.calls if c.service == "GetVariable"]
    assert [(c.text, c.detail) for c in gets] == [
        ("SecureBoot", GLOBAL), ("SetupMode", GLOBAL), ("AuditMode", GLOBAL), ("DeployedMode", GLOBAL),
        ("PK", GLOBAL), ("KEK", GLOBAL), ("db", IMAGE_SECURITY_DATABASE), ("dbx", IMAGE_SECURITY_DATABASE),
    ]  # fmt: skip
    assert [c.args[4] == 0 for c in gets] == [False] * 4 + [True] * 4  # the key databases: Data NULL (and size 0)
    line = emu.lines()[2]
    assert line == (
        f"VMCONFORM sb SECUREBOOT SecureBoot={status(arch)} SecureBoot_attr=00000006 SecureBoot_size=00000001 "
        f"SecureBoot_data=01 SetupMode={status(arch)} SetupMode_attr=00000006 SetupMode_size=00000001 "
        f"SetupMode_data=00 AuditMode={status(arch)} AuditMode_attr=00000006 AuditMode_size=00000001 "
        f"AuditMode_data=00 DeployedMode={status(arch)} DeployedMode_attr=00000006 DeployedMode_size=00000001 "
        f"DeployedMode_data=00 PK={status(arch, 5)} PK_attr=00000027 PK_size=00000359 KEK={status(arch, 5)} "
        f"KEK_attr=00000027 KEK_size=00000618 db={status(arch, 5)} db_attr=00000027 db_size=00000C47 "
        f"dbx={status(arch, 5)} dbx_attr=00000027 dbx_size=0000004C"
    )
    sb = facts_of(emu.output).secureboot
    assert sb is not None and sb.enforcing and not sb.setup and sb.mode == "user"
    assert sb.keys == ("PK", "KEK", "db", "dbx") and (sb.pk.size, sb.db.size, sb.dbx.attributes) == (857, 3143, 0x27)
    assert sb.summary() == "Secure Boot enforcing (user mode; PK, KEK, db, dbx set)"


@pytest.mark.parametrize("arch", ARCHES)
def test_secureboot_fact_in_setup_mode_and_with_errors(arch: str) -> None:
    store = secure_boot_store(0, 1, {})
    del store.variables[("AuditMode", GLOBAL)]
    fw = FakeFirmware(variable_status={"DeployedMode": "DEVICE_ERROR", "dbx": "DEVICE_ERROR"})
    emu = run_probe(build_probe(arch, "setup"), fw, store=store)
    fields = parse_line(emu.lines()[2]).fields  # type: ignore[union-attr]
    assert (fields["AuditMode"], fields["AuditMode_size"], fields["PK"], fields["PK_size"]) == (
        status(arch, 14), "00000000", status(arch, 14), "00000000")  # fmt: skip
    assert "AuditMode_data" not in fields and "DeployedMode_data" not in fields and fields["SetupMode_data"] == "01"
    sb = facts_of(emu.output).secureboot
    assert sb is not None and not sb.enforcing and sb.setup and sb.mode == "setup" and sb.keys == ()
    assert sb.audit_mode.absent and sb.audit_mode.value is None and sb.deployed_mode.status.name == "EFI_DEVICE_ERROR"
    assert [r.describe() for r in sb.readings] == [
        "SecureBoot=0", "SetupMode=1", "AuditMode absent", "DeployedMode: EFI_DEVICE_ERROR", "PK absent",
        "KEK absent", "db absent", "dbx: EFI_DEVICE_ERROR"]  # fmt: skip
    assert sb.summary() == "Secure Boot not enforcing (setup mode; no keys)"


@pytest.mark.parametrize("arch", ARCHES)
def test_secureboot_fact_only_on_request_outside_the_boot_mode(arch: str) -> None:
    keys = [[parse_line(ln).key for ln in run_probe(build_probe(arch, "w", mode="warm", facts=facts)).lines()]
            for facts in ((), ("secureboot",))]  # type: ignore[union-attr]  # fmt: skip
    assert "SECUREBOOT" not in keys[0] and keys[1][:3] == ["BOOT", "FW", "SECUREBOOT"]
