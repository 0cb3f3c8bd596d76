"""Verdicts for the firmware, hardware-description and platform clauses, from real captured probe lines.

tests/facts_data/ holds the probe's lines from real boots (QEMU 7.2 `virt`, Debian AAVMF/AAVMF32 2022.11, TCG):
aarch64 with ACPI (the default), aarch64 with `-machine acpi=off`, arm (DT only). Each failing case below edits
one field of a real line, so a verdict is seen to turn on exactly that value.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vmconform.enums import StoreKind
from vmconform.facts import ProbeFacts
from vmconform.hypervisors import VariableStore
from vmconform.probe import parse_lines
from vmconform.verdicts import firmware as vfirm
from vmconform.verdicts import hwdesc as vhw
from vmconform.verdicts import platform as vplat
from vmconform.vm import VmShape, configured_cpus, memory_bytes

DATA = Path(__file__).parent / "facts_data"
VM = VmShape(cpus=1, memory=512 << 20)


def text(name: str) -> str:
    return (DATA / name).read_text()


def facts(name: str, edit: tuple[str, str] | None = None) -> ProbeFacts:
    t = text(name)
    if edit is not None:
        t, n = re.subn(edit[0], edit[1], t)
        assert n == 1, edit
    return ProbeFacts.from_lines(parse_lines(t))


def by_clause(vs: list) -> dict:
    return {v.clause: v for v in vs}


# ---------------------------------------------------------------------------------------------- FW-9


def test_rtc_passes_on_real_boots() -> None:
    for name in ("aarch64-acpi.log", "arm-dtb.log"):
        (v,) = vfirm.rtc(facts(name), "2.0", "c")
        assert v.status == "pass" and "valid, advanced 1 s across the 1 s Stall" in v.evidence, v.evidence


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        ((r"t0=EA07", "t0=6B07"), "the first EFI_TIME is invalid: Year 1899 outside 1900..9999"),  # 0x076B
        ((r"set=0000000000000000", "set=8000000000000003"), "SetTime(the time just read) returned EFI_UNSUPPORTED"),
        ((r"get1=0000000000000000", "get1=8000000000000007"), "GetTime #2 returned EFI_DEVICE_ERROR"),
        ((r"t1=EA070B1B1028280000", "t1=EA070B1B1028270000"), "the time moved +0 s across a 1 s Stall"),
    ],
)
def test_rtc_fails_on_each_bad_value(edit: tuple[str, str], why: str) -> None:
    (v,) = vfirm.rtc(facts("aarch64-acpi.log", edit), "1.0")
    assert v.status == "fail" and why in v.evidence, v.evidence


def test_rtc_without_a_time_line_is_an_error() -> None:
    t = "\n".join(ln for ln in text("aarch64-acpi.log").splitlines() if " TIME " not in ln)
    (v,) = vfirm.rtc(ProbeFacts.from_lines(parse_lines(t)), "2.0")
    assert v.status == "error"


# ---------------------------------------------------------------------------------------------- HW, PLAT, V2


def test_acpi_only_passes_spec_1_hw1_fails_hw2_and_spec_2_both_clause() -> None:
    f = facts("aarch64-acpi.log")
    v1, v2 = by_clause(vhw.hardware_description(f, VM, "1.0")), by_clause(vhw.hardware_description(f, VM, "2.0"))
    assert v1["HW-1"].status == "pass" and "ACPI_20" in v1["HW-1"].evidence
    assert v1["HW-2"].status == "fail" and "no DTB entry (B1B621D5-F19C-41A5-830B-D9152C69AAE0)" in v1["HW-2"].evidence
    assert "V2-5" not in v1 and "HW-2" not in v2
    assert v2["V2-5"].status == "fail" and "no DTB (B1B621D5-F19C-41A5-830B-D9152C69AAE0) entry" in v2["V2-5"].evidence
    assert {c: v2[c].status for c in ("PLAT-1", "PLAT-3", "PLAT-4", "V2-3", "V2-6")} == dict.fromkeys(
        ("PLAT-1", "PLAT-3", "PLAT-4", "V2-3", "V2-6"), "pass"
    )
    assert v2["V2-3"].evidence == "FADT ARM_BOOT_ARCH 0x3: PSCI_COMPLIANT, conduit hvc"
    assert v2["V2-6"].evidence == "SPCR interface type 0x3 (ARM PL011) at 0x9000000"
    assert "SMBIOS type 17 memory devices total 512 MiB" in v2["PLAT-1"].evidence
    assert v2["PLAT-4"].evidence == "MADT GICD GicVersion 2 at 0x8000000"


@pytest.mark.parametrize("name", ["aarch64-dtb.log", "arm-dtb.log"])
def test_dt_only_passes_hw2_and_fails_v2_5(name: str) -> None:
    v1 = by_clause(vhw.hardware_description(facts(name), VM, "1.0"))
    v2 = by_clause(vhw.hardware_description(facts(name), VM, "2.0"))
    assert v1["HW-2"].status == "pass", v1["HW-2"].evidence
    for seen in (
        "DT /cpus has 1 cpu node(s)",
        "DT memory nodes describe 512 MiB",
        "'arm,cortex-a15-gic'",
        "DT /pl011@9000000 compatible 'arm,pl011'",
        "lists 4 PPI(s)",
        "'arm,psci-1.0', method hvc",
    ):
        assert seen in v1["HW-2"].evidence
    assert v2["V2-5"].status == "fail" and "no ACPI 2.0 (8868E871-E4F1-11D3-BC22-0080C73C8881)" in v2["V2-5"].evidence
    assert v2["V2-3"].status == v2["V2-6"].status == v2["PLAT-4"].status == "pass"


def test_a_vm_with_more_cpus_or_memory_than_described_fails() -> None:
    v = by_clause(vhw.hardware_description(facts("aarch64-dtb.log"), VmShape(2, 1 << 30), "1.0"))
    assert v["HW-2"].status == "fail" and v["PLAT-1"].status == "fail"
    assert "DT /cpus has 1 cpu node(s), the VM is configured with 2 vCPU(s)" in v["PLAT-1"].evidence
    assert "DT memory nodes describe 512 MiB, the VM is configured with 1024 MiB" in v["PLAT-1"].evidence
    a = by_clause(vhw.hardware_description(facts("aarch64-acpi.log"), VmShape(4, 512 << 20), "2.0"))
    assert a["PLAT-1"].status == "fail" and "the MADT has 1 enabled GICC entries" in a["PLAT-1"].evidence


def test_psci_without_0_2_fails() -> None:
    # the compatible list "arm,psci-1.0\0arm,psci-0.2\0arm,psci" with the versions blotted out: only "arm,psci" is left
    psci = "61726D2C707363692D312E300061726D2C707363692D302E32"  # "arm,psci-1.0\0arm,psci-0.2"
    old = "61726D2C707363692D782E790061726D2C707363692D782E7A"  # "arm,psci-x.y\0arm,psci-x.z"
    t = text("aarch64-dtb.log")
    assert psci in t
    f = ProbeFacts.from_lines(parse_lines(t.replace(psci, old)))
    v = by_clause(vhw.hardware_description(f, VM, "2.0"))
    assert v["V2-3"].status == "fail" and "names no arm,psci-0.2 or later" in v["V2-3"].evidence


def test_no_tables_line_is_an_error_for_every_clause() -> None:
    t = "\n".join(ln for ln in text("arm-dtb.log").splitlines() if " TABLES " not in ln)
    vs = vhw.hardware_description(ProbeFacts.from_lines(parse_lines(t)), VM, "2.0")
    assert {v.status for v in vs} == {"error"} and len(vs) == 7


# ---------------------------------------------------------------------------------------------- platform


def test_counter_and_exception_level_pass_on_real_boots() -> None:
    for name, arch, where in (
        ("aarch64-acpi.log", "aarch64", "CurrentEL 0x4: the application runs at EL1"),
        ("arm-dtb.log", "arm", "the application runs at SVC (PL1)"),
    ):
        (c,) = vplat.counter(facts(name), "2.0")
        assert c.status == "pass" and "CNTFRQ 62500000 Hz" in c.evidence and "= 1.000 s" in c.evidence
        (e,) = vplat.exception_level(facts(name), arch, "2.0")
        assert e.status == "pass" and where in e.evidence
    assert vplat.exception_level(facts("aarch64-acpi.log"), "aarch64", "1.0") == []  # V2-2 is spec 2.0 only


def test_counter_fails_without_frequency_or_when_stopped() -> None:
    (v,) = vplat.counter(facts("aarch64-acpi.log", (r"cntfrq=0000000003B9ACA0", "cntfrq=0000000000000000")), "2.0")
    assert v.status == "fail" and v.evidence.startswith("CNTFRQ reads 0")
    (v,) = vplat.counter(facts("aarch64-acpi.log", (r"cntvct1=0000000005C6C8D2", "cntvct1=00000000020D0B25")), "1.0")
    assert v.status == "fail" and "= 0.000 s (required: 0.5..2 s" in v.evidence


def test_el2_fails_v2_2() -> None:
    (v,) = vplat.exception_level(
        facts("aarch64-acpi.log", (r"el=0000000000000004", "el=0000000000000008")), "aarch64", "2.0"
    )
    assert v.status == "fail" and v.evidence == "CurrentEL 0x8: the application runs at EL2 (required: EL1)"


def test_gic_versions() -> None:
    acpi, dt = facts("aarch64-acpi.log"), facts("arm-dtb.log")
    assert vhw.gic_seen(acpi) == (2, "MADT GICD GicVersion 2 at 0x8000000")
    assert vhw.gic_seen(dt) == (2, "DT /intc@8000000 compatible 'arm,cortex-a15-gic'")
    ok = vplat.gic_versions({2: (2, "a"), 3: (3, "b")}, (2, 3), "2.0")
    assert [(v.status, v.evidence) for v in ok] == [("pass", "gic-version=2: a; gic-version=3: b")]
    (bad,) = vplat.gic_versions({2: (2, "a"), 3: (2, "MADT GICD GicVersion 2")}, (2, 3), "2.0")
    assert bad.status == "fail" and "gic-version=3: MADT GICD GicVersion 2 (GICv2)" in bad.evidence
    (only2,) = vplat.gic_versions({2: (2, "a")}, (2,), "2.0")
    assert only2.status == "fail" and "GICv3 is not configured" in only2.evidence
    (none,) = vplat.gic_versions({}, (), "2.0")
    assert none.status == "error" and "gic_versions: [2, 3]" in none.evidence
    assert vplat.gic_versions({}, (), "1.0") == []


# ---------------------------------------------------------------------------------------------- NVRAM


PFLASH = VariableStore(StoreKind.PFLASH_FILE, "a per-VM copy of VARS.fd on pflash", True)
BOOT_ROM = VariableStore(StoreKind.BOOT_ROM, "none of its own: u-boot is the boot ROM (-bios)", False)
ESP_FILE = VariableStore(StoreKind.ESP_FILE, "\\ubootefi.var on the domU's own ESP (inside the image)", False)


def test_preflight_messages() -> None:
    assert vfirm.nvram_preflight(PFLASH, ["-smp", "2"], True, None, "edk2") == []
    [(status, why)] = vfirm.nvram_preflight(PFLASH, ["-drive", "if=pflash,snapshot=on"], True, None, "edk2")
    assert status == "fail" and "extra_args has 'if=pflash,snapshot=on'" in why
    [(status, why)] = vfirm.nvram_preflight(PFLASH, [], False, None, "edk2")
    assert status == "error" and "not writable" in why
    [(status, why)] = vfirm.nvram_preflight(PFLASH, [], True, "vars V is 1 bytes, code C is 2", "edk2")
    assert status == "error" and why.endswith("CODE and VARS do not belong together: vars V is 1 bytes, code C is 2")


@pytest.mark.parametrize("store", [BOOT_ROM, ESP_FILE], ids=lambda s: str(s.kind))
def test_preflight_says_the_backends_words_for_a_store_that_is_not_the_vms(store: VariableStore) -> None:
    """FW-4/FW-5 fail before booting in the backend's own words; FW-6 (no own store required) goes on to boot."""
    [(status, why)] = vfirm.nvram_preflight(store, [], None, None, "u-boot")
    assert status == "fail" and f"no persistent variable store of its own ({store.kind}): {store.description};" in why
    assert vfirm.nvram_preflight(store, [], None, None, "u-boot", own_store_required=False) == []


def test_flow_and_store_verdicts() -> None:
    passed = vfirm.nvram_flow("power", True, "power: the NV variable survived", "t.log", "2.0")
    assert [(v.clause, v.status) for v in passed] == [("FW-4", "pass"), ("FW-5", "pass")]
    (failed,) = vfirm.nvram_flow("warm", False, "warm: phase 1 ran twice\ntail", "t.log", "1.0")
    assert failed.status == "fail" and failed.evidence == "warm: phase 1 ran twice (transcript: t.log)"
    a, b = "a" * 64, "b" * 64
    (v,) = vfirm.instance_store(a, a, "EFI_SUCCESS", 1, "vars file", "", "2.0")
    assert v.status == "pass" and "byte-identical" in v.evidence
    (v,) = vfirm.instance_store(
        a, b, "EFI_SUCCESS", None, "", "U-Boot variable file (ubootefi.var) at byte 2071552", "2.0"
    )
    assert v.status == "fail" and "(U-Boot variable file (ubootefi.var) at byte 2071552)" in v.evidence
    (v,) = vfirm.instance_store(a, a, "EFI_SUCCESS", 0, "vars file", "", "2.0")
    assert v.status == "error" and "never reached the instance's vars file" in v.evidence
    (v,) = vfirm.instance_store(a, a, None, None, "", "", "2.0")
    assert v.status == "error"
    # variables in RAM (no store file of the instance) with the image byte-identical: FW-6 holds
    (v,) = vfirm.instance_store(a, a, "EFI_SUCCESS", None, "", "", "2.0")
    assert v.status == "pass" and "byte-identical" in v.evidence and "RAM" in v.evidence


def test_configuration_parsing() -> None:
    assert memory_bytes("512M") == 512 << 20 and memory_bytes("1G") == 1 << 30 and memory_bytes("256") == 256 << 20
    assert configured_cpus([]) == 1 and configured_cpus(["-smp", "4"]) == 4
    assert configured_cpus(["-smp", "cpus=2,sockets=1"]) == 2
    with pytest.raises(ValueError, match="unreadable memory size"):
        memory_bytes("lots")


def test_flows_on_a_store_inside_the_image_fail_with_what_the_flow_and_the_host_saw() -> None:
    [problem] = vfirm.nvram_preflight(ESP_FILE, [], None, None, "u-boot")
    assert vfirm.flows_on_image_store(ESP_FILE, [problem]) and vfirm.flows_on_image_store(BOOT_ROM, [problem])
    ram = VariableStore(StoreKind.RAM, "RAM only", False)
    assert not vfirm.flows_on_image_store(ram, vfirm.nvram_preflight(ram, [], None, None, "edk2"))
    two = vfirm.nvram_preflight(BOOT_ROM, ["-snapshot"], None, None, "u-boot")
    assert len(two) == 2 and not vfirm.flows_on_image_store(BOOT_ROM, two)  # an ephemeral disk: no boot
    host = "after phase 1 powered the VM off the host found VmcNv-1 in \\ubootefi.var: attributes 0x7, data b'1'"
    verdicts = vfirm.nvram_flow("power", True, "power: the NV variable survived", "t.log", "2.0", "c", True,
                                problem[1], host)  # fmt: skip
    assert [(v.clause, v.status) for v in verdicts] == [("FW-4", "fail"), ("FW-5", "fail")]
    flow = "the flow on the store it has: power: the NV variable survived"
    assert verdicts[0].evidence == f"{problem[1]}; {flow}; {host}"
    (v,) = vfirm.nvram_flow("warm", False, "warm: boom", "t.log", "2.0", "c", False, problem[1], "")
    assert v.status == "fail" and "the flow's probe never ran" in v.evidence  # the pre-flight's fact stands
    (v,) = vfirm.nvram_flow("warm", True, "warm: ok", "t.log", "2.0", "c", True, "", "")
    assert (v.status, v.evidence) == ("pass", "warm: ok")
