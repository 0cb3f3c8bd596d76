"""The AArch64 probe's machine code, run in unicorn against a fake firmware (no VM)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from probe_emulator import CON_OUT, STACK_TOP, X18_CANARY, FakeFirmware, run_probe

from vmconform.probe import build_probe, parse_line


def _outputs(nonce: str, *chunks: str) -> list[tuple[str, str]]:
    """OutputString calls for one line: prefix, nonce, then the rest in the probe's chunks."""
    return [("OutputString", "VMCONFORM "), ("OutputString", nonce)] + [("OutputString", c) for c in chunks]


def test_probe_calls_and_output() -> None:
    emu = run_probe(build_probe(arch="aarch64", nonce="a1b2c3"))
    calls = [(c.service, c.text) for c in emu.calls]
    assert calls == [
        *_outputs("a1b2c3", " BOOT aarch64\r\n"),
        *_outputs("a1b2c3", " FW st_sig=", "5453595320494249", " uefi_rev=", "00020046", " fw_rev=", "00010000",
                  " rt_sig=", "56524553544E5552", " vendor=", "EDK II", "\r\n"),
        *_outputs("a1b2c3", " END shutdown\r\n"),
        ("ResetSystem", None),
    ]
    assert emu.output == (
        "VMCONFORM a1b2c3 BOOT aarch64\r\n"
        "VMCONFORM a1b2c3 FW st_sig=5453595320494249 uefi_rev=00020046 fw_rev=00010000 "
        "rt_sig=56524553544E5552 vendor=EDK II\r\n"
        "VMCONFORM a1b2c3 END shutdown\r\n"
    )
    for call in emu.calls[:-1]:
        assert call.args[0] == CON_OUT  # This
    reset = emu.calls[-1]
    assert reset.args[:4] == (2, 0, 0, 0)  # EfiResetShutdown, EFI_SUCCESS, DataSize 0, ResetData NULL


def test_calling_convention_at_every_call() -> None:
    emu = run_probe(build_probe(arch="aarch64", nonce="x"))
    assert emu.calls
    for call in emu.calls:
        assert call.sp % 16 == 0, f"{call.service}: sp {call.sp:#x} not 16-byte aligned"
        assert STACK_TOP - 0x1000 < call.sp < STACK_TOP, f"{call.service}: sp {call.sp:#x} outside a small frame"
        assert call.x18 == X18_CANARY, f"{call.service}: x18 (platform register) clobbered"


def test_never_returns_when_reset_system_returns() -> None:
    emu = run_probe(build_probe(arch="aarch64", nonce="x"), FakeFirmware(reset_returns=True), 20_000)
    assert [c.service for c in emu.calls][-1] == "ResetSystem"  # nothing after it, no return to firmware
    assert emu.spinning, f"expected to spin on `b .`, stopped at {emu.final_pc:#x}"


def test_null_vendor_prints_nothing() -> None:
    emu = run_probe(build_probe(arch="aarch64", nonce="n"), FakeFirmware(vendor=None))
    fw = parse_line(emu.output.split("\n")[1])
    assert fw is not None and fw.fields["vendor"] == ""


@settings(max_examples=40, deadline=None)
@given(
    nonce=st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-", min_size=1,
                  max_size=32),
    st_sig=st.integers(0, (1 << 64) - 1),
    uefi_rev=st.integers(0, (1 << 32) - 1),
    fw_rev=st.integers(0, (1 << 32) - 1),
    rt_sig=st.integers(0, (1 << 64) - 1),
    vendor=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xD7FF), max_size=40),
)
def test_fw_line_for_any_firmware(nonce: str, st_sig: int, uefi_rev: int, fw_rev: int, rt_sig: int,
                                  vendor: str) -> None:
    emu = run_probe(build_probe("aarch64", nonce), FakeFirmware(st_sig, uefi_rev, fw_rev, rt_sig, vendor))
    lines = emu.output.split("\r\n")
    assert lines[-1] == ""
    parsed = [parse_line(line) for line in lines[:-1]]
    assert [(p.nonce, p.key) for p in parsed if p] == [(nonce, "BOOT"), (nonce, "FW"), (nonce, "END")]
    fw = parsed[1]
    assert fw is not None
    assert dict(fw.fields) == {
        "st_sig": f"{st_sig:016X}", "uefi_rev": f"{uefi_rev:08X}", "fw_rev": f"{fw_rev:08X}",
        "rt_sig": f"{rt_sig:016X}", "vendor": vendor,
    }
    assert emu.calls[-1].service == "ResetSystem"
