"""build_probe: determinism, nonce and arch validation, layout, and the whole program vs capstone."""

from __future__ import annotations

import hashlib
import re

import capstone
import pefile
import pytest

from vmconform.probe import PROBE_ARCHES, assemble_probe, build_probe, removable_media_path
from vmconform.probe.program import FACTS, MODES, NONCE_LABEL


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_probe_arches() -> None:
    assert PROBE_ARCHES == ("aarch64", "arm")


def test_same_inputs_same_bytes() -> None:
    assert sha(build_probe(arch="aarch64", nonce="a1b2c3")) == sha(build_probe(arch="aarch64", nonce="a1b2c3"))


def test_different_nonce_different_bytes_only_in_the_nonce_slot() -> None:
    a, b = build_probe("aarch64", "a1b2c3"), build_probe("aarch64", "a1b2c4")
    assert a != b and len(a) == len(b)
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    pe = pefile.PE(data=a)
    slot = pe.sections[0].PointerToRawData + assemble_probe("aarch64", "a1b2c3").offset_of(NONCE_LABEL)
    checksum = pe.OPTIONAL_HEADER.get_field_absolute_offset("CheckSum")
    assert [i for i in diff if not checksum <= i < checksum + 4] == [slot + 2 * 5]  # the sixth UCS-2 character


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"mode": "reboot"}, "unknown probe mode 'reboot'"), ({"facts": ("tables", "gpu")}, "unknown probe facts")],
)
def test_unknown_mode_or_fact(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_probe("arm", "a", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
@pytest.mark.parametrize("mode", MODES)
def test_code_does_not_depend_on_the_nonce(arch: str, mode: str) -> None:
    """Only the data area's nonce slots differ between two nonces: the layout is fixed."""
    a = assemble_probe(arch, "a1b2c3", mode=mode, facts=FACTS)
    b = assemble_probe(arch, "Z" * 32, mode=mode, facts=FACTS)
    assert len(a.code) == len(b.code) and dict(a.labels) == dict(b.labels)
    data_start = a.offset_of(NONCE_LABEL)
    assert a.code[:data_start] == b.code[:data_start]
    assert build_probe(arch, "q", mode=mode, facts=FACTS) == build_probe(arch, "q", mode=mode, facts=FACTS)


def test_removable_media_path() -> None:
    assert removable_media_path("aarch64") == "EFI/BOOT/BOOTAA64.EFI"
    assert removable_media_path("arm") == "EFI/BOOT/BOOTARM.EFI"
    with pytest.raises(ValueError, match="unknown architecture"):
        removable_media_path("mips")


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
@pytest.mark.parametrize("mode", MODES)
def test_every_emitted_instruction_decodes_with_capstone(arch: str, mode: str) -> None:
    assembled = assemble_probe(arch, "a1b2c3", mode=mode, facts=FACTS)
    insns = [line for line in assembled.listing if line.kind == "insn"]
    code = assembled.code[: insns[-1].address + len(insns[-1].data)]
    assert all(line.kind != "insn" for line in assembled.listing if line.address >= len(code))  # data after code
    cs_arch = capstone.CS_ARCH_ARM64 if arch == "aarch64" else capstone.CS_ARCH_ARM
    decoded = list(capstone.Cs(cs_arch, capstone.CS_MODE_ARM).disasm(code, 0))
    words = [(line.address + i, line.data[i : i + 4]) for line in insns for i in range(0, len(line.data), 4)]
    assert [(d.address, bytes(d.bytes)) for d in decoded] == words


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_listing_names_the_services(arch: str) -> None:
    listing = assemble_probe(arch, "a1b2c3").listing_text()
    assert "ConOut->OutputString" in listing
    assert "EFI_RUNTIME_SERVICES.ResetSystem" in listing
    assert listing.startswith(f"{'':10}  {'':16}  entry:")


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_data_labels_are_named_after_what_they_hold(arch: str) -> None:
    assembled = assemble_probe(arch, "a1b2c3", mode="bootnext", facts=FACTS)
    labels = set(assembled.labels)
    assert {"guid_loaded_image", "guid_device_path", "guid_global_variable", "guid_dtb", "guid_acpi_20",
            "guid_smbios3", "next_description", "next_file_path", "text_VMCONFORM", "text_cr_lf",
            "text_FW_st_sig", "nonce"} <= labels  # fmt: skip
    assert not [label for label in labels if re.fullmatch(r"data\d+", label)]
    text = assembled.listing_text()
    assert "adr" in text and "guid_loaded_image" in text


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_helper_frames_follow_their_buffers(arch: str) -> None:
    listing = assemble_probe(arch, "a", facts=("tables",)).listing_text()
    digits, frame = (16, 64) if arch == "aarch64" else (8, 24)  # UCS-2 digits + NUL (+ fp, lr on AArch64)
    assert f"buffer of {digits} UCS-2 digits + NUL" in listing and f"{frame}-byte frame" in listing
    assert f"{288 if arch == 'aarch64' else 264}-byte frame" in listing  # 128 digits + NUL for 64 bytes
