"""build_probe: determinism, nonce and arch validation, layout, and the whole program vs capstone."""

from __future__ import annotations

import hashlib

import capstone
import pefile
import pytest

from vmconform.probe import PROBE_ARCHES, assemble_probe, build_probe, removable_media_path
from vmconform.probe.program import NONCE_LABEL


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_probe_arches() -> None:
    assert PROBE_ARCHES == ("aarch64",)


def test_same_inputs_same_bytes() -> None:
    assert sha(build_probe(arch="aarch64", nonce="a1b2c3")) == sha(build_probe(arch="aarch64", nonce="a1b2c3"))


def test_different_nonce_different_bytes_only_in_the_nonce_slot() -> None:
    a, b = build_probe("aarch64", "a1b2c3"), build_probe("aarch64", "a1b2c4")
    assert a != b and len(a) == len(b)
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    text_file_offset = pefile.PE(data=a).sections[0].PointerToRawData
    slot = text_file_offset + assemble_probe("aarch64", "a1b2c3").offset_of(NONCE_LABEL)
    assert diff == [slot + 2 * 5]  # the sixth UCS-2 character


@pytest.mark.parametrize("nonce", ["a", "Z" * 32, "0123456789", "a-b_c", "-", "_"])
def test_valid_nonces(nonce: str) -> None:
    image = build_probe("aarch64", nonce)
    assert nonce.encode("utf-16-le") + b"\0\0" in image
    assert len(image) == len(build_probe("aarch64", "x"))  # fixed-size slot: layout independent of the nonce


@pytest.mark.parametrize(
    "nonce", ["", "a" * 33, "a b", "a=b", "a.b", "a/b", "caf\u00e9", "\u0661", "a\n", "a\r", "a\0", "x\u200b"]
)
def test_invalid_nonces(nonce: str) -> None:
    with pytest.raises(ValueError, match=r"1\.\.32 ASCII characters from \[0-9A-Za-z_-\]"):
        build_probe("aarch64", nonce)


def test_non_string_nonce() -> None:
    with pytest.raises(ValueError, match="nonce"):
        build_probe("aarch64", 123)  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["x86_64", "AARCH64", "", "riscv64"])
def test_unknown_arch(arch: str) -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        build_probe(arch, "a")


def test_known_arch_without_probe_yet() -> None:
    with pytest.raises(ValueError, match="no probe for 'arm' yet"):
        build_probe("arm", "a")


def test_removable_media_path() -> None:
    assert removable_media_path("aarch64") == "EFI/BOOT/BOOTAA64.EFI"
    assert removable_media_path("arm") == "EFI/BOOT/BOOTARM.EFI"
    with pytest.raises(ValueError, match="unknown architecture"):
        removable_media_path("mips")


def test_every_emitted_instruction_decodes_with_capstone() -> None:
    assembled = assemble_probe("aarch64", "a1b2c3")
    insns = [line for line in assembled.listing if line.kind == "insn"]
    code = assembled.code[: insns[-1].address + 4]
    assert all(line.kind != "insn" for line in assembled.listing if line.address >= len(code))  # data after code
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    decoded = list(md.disasm(code, 0))
    assert [(d.address, bytes(d.bytes)) for d in decoded] == [(line.address, line.data) for line in insns]


def test_listing_names_the_services() -> None:
    listing = assemble_probe("aarch64", "a1b2c3").listing_text()
    assert "ConOut->OutputString" in listing
    assert "EFI_RUNTIME_SERVICES.ResetSystem" in listing
    assert listing.startswith(f"{'':10}  {'':16}  entry:")
