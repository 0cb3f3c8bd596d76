"""The host side of the line protocol."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from vmconform.probe import ProbeLine, parse_line, parse_lines
from vmconform.probe.protocol import format_line

FW = (
    "VMCONFORM a1b2c3 FW st_sig=5453595320494249 uefi_rev=00020046 fw_rev=00010000 "
    "rt_sig=56524553544E5552 vendor=EDK II"
)


def test_boot_line() -> None:
    line = parse_line("VMCONFORM a1b2c3 BOOT aarch64")
    assert line == ProbeLine("a1b2c3", "BOOT", ("aarch64",), MappingProxyType({}), "VMCONFORM a1b2c3 BOOT aarch64")


def test_fw_line_vendor_runs_to_end_of_line() -> None:
    line = parse_line(FW + "\r")
    assert line is not None
    assert line.key == "FW" and line.args == ()
    assert dict(line.fields) == {
        "st_sig": "5453595320494249",
        "uefi_rev": "00020046",
        "fw_rev": "00010000",
        "rt_sig": "56524553544E5552",
        "vendor": "EDK II",
    }
    assert line.raw == FW


@pytest.mark.parametrize("vendor", ["", "EDK II", "  spaced  out  ", "a=b c=d", "VMCONFORM x FW y"])
def test_vendor_verbatim(vendor: str) -> None:
    line = parse_line(f"VMCONFORM n FW fw_rev=1 vendor={vendor}\r\n")
    assert line is not None and line.fields["vendor"] == vendor and line.fields["fw_rev"] == "1"


def test_end_line() -> None:
    line = parse_line("VMCONFORM a1b2c3 END shutdown\r\n")
    assert line is not None and (line.key, line.args, dict(line.fields)) == ("END", ("shutdown",), {})


@pytest.mark.parametrize("noise", ["", "BdsDxe: starting Boot0001 ", "\x00garbage", "ABCVMCONFORM"])
def test_leading_noise(noise: str) -> None:
    line = parse_line(f"{noise}VMCONFORM a1b2c3 BOOT aarch64\r")
    assert line is not None and line.nonce == "a1b2c3" and line.args == ("aarch64",)
    assert line.raw == "VMCONFORM a1b2c3 BOOT aarch64"


def test_key_without_items_and_multiple_spaces() -> None:
    line = parse_line("VMCONFORM n PING")
    assert line is not None and line.key == "PING" and line.args == () and dict(line.fields) == {}
    line = parse_line("VMCONFORM n K  a   b=1  c ")
    assert line is not None and line.args == ("a", "c") and dict(line.fields) == {"b": "1"}


def test_fields_are_read_only() -> None:
    line = parse_line("VMCONFORM n K a=1")
    assert line is not None
    with pytest.raises(TypeError):
        line.fields["a"] = "2"  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "VMCONFORM",
        "VMCONFORM a1b2c3",
        "VMCONFORM a1b2c3 ",
        "VMCONFORM a1b2c3 boot x",
        "VMCONFORM a.b BOOT x",
        "VMCONFORM " + "a" * 33 + " BOOT x",
        "vmconform a BOOT x",
        "VMCONFORM  a BOOT x",
        "BdsDxe: failed to load Boot0001",
    ],
)
def test_not_a_probe_line(text: str) -> None:
    assert parse_line(text) is None


def test_parse_lines_of_a_transcript() -> None:
    transcript = (
        "UEFI firmware\r\nBdsDxe: starting Boot0001\r\nVMCONFORM a BOOT aarch64\r\n" + FW + "\r\n"
        "VMCONFORM a1b2c3 END shutdown\r\n"
    )
    assert [(line.nonce, line.key) for line in parse_lines(transcript)] == [
        ("a", "BOOT"),
        ("a1b2c3", "FW"),
        ("a1b2c3", "END"),
    ]


def test_format_line_round_trips() -> None:
    text = format_line("a1b2c3", "FW", fields={"st_sig": "5453595320494249", "vendor": "EDK II"})
    assert text == "VMCONFORM a1b2c3 FW st_sig=5453595320494249 vendor=EDK II\r\n"
    line = parse_line(text)
    assert line is not None and dict(line.fields) == {"st_sig": "5453595320494249", "vendor": "EDK II"}
    assert format_line("n", "END", args=["shutdown"]) == "VMCONFORM n END shutdown\r\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nonce": "bad nonce"},
        {"key": "lower"},
        {"args": ["a b"]},
        {"args": ["a=b"]},
        {"fields": [("vendor", "x"), ("a", "1")]},
        {"fields": [("a", "x y")]},
        {"fields": [("1a", "x")]},
    ],
)
def test_format_line_rejects(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"nonce": "n", "key": "K"} | kwargs
    with pytest.raises(ValueError):
        format_line(**args)  # type: ignore[arg-type]
