"""The PE/COFF writer, read back by pefile (an independent parser)."""

from __future__ import annotations

import pefile
import pytest

from vmconform.probe import build_probe
from vmconform.probe.pe import MACHINE_ARMTHUMB_MIXED, PeFormat, PeImage, write_pe


def _check_common(pe: pefile.PE, data: bytes) -> None:
    fh, opt = pe.FILE_HEADER, pe.OPTIONAL_HEADER
    assert data[:2] == b"MZ"
    assert pe.DOS_HEADER.e_lfanew + 264 <= len(data)  # what EDK2's BDS pre-check reads
    assert opt.Subsystem == 10  # EFI application
    assert not fh.IMAGE_FILE_RELOCS_STRIPPED
    assert fh.IMAGE_FILE_EXECUTABLE_IMAGE
    assert fh.TimeDateStamp == 0 and opt.CheckSum == pe.generate_checksum() != 0
    assert opt.ImageBase == 0
    assert (opt.SectionAlignment, opt.FileAlignment) == (0x1000, 0x200)
    assert opt.NumberOfRvaAndSizes == 16
    assert all(d.VirtualAddress == 0 and d.Size == 0 for d in opt.DATA_DIRECTORY)
    assert fh.NumberOfSections == 1
    text = pe.sections[0]
    assert text.Name.rstrip(b"\0") == b".text"
    assert text.Characteristics == 0x60000020  # code, execute, read: mapped R-X by AAVMF
    assert text.VirtualAddress <= opt.AddressOfEntryPoint < text.VirtualAddress + text.Misc_VirtualSize
    assert text.VirtualAddress >= opt.SizeOfHeaders and text.PointerToRawData >= opt.SizeOfHeaders
    assert text.PointerToRawData % opt.FileAlignment == 0 and text.SizeOfRawData % opt.FileAlignment == 0
    assert text.PointerToRawData + text.SizeOfRawData <= len(data)
    assert text.SizeOfRawData >= text.Misc_VirtualSize
    assert opt.SizeOfImage % opt.SectionAlignment == 0
    assert opt.SizeOfImage >= text.VirtualAddress + text.Misc_VirtualSize
    assert opt.SizeOfHeaders % opt.FileAlignment == 0
    assert opt.SizeOfHeaders >= pe.sections[0].get_file_offset() + 40
    assert [w for w in pe.get_warnings() if not w.startswith("Byte 0x00 makes up")] == []


def test_probe_image_is_a_pe32plus_arm64_efi_application() -> None:
    data = build_probe(arch="aarch64", nonce="a1b2c3")
    pe = pefile.PE(data=data)
    assert pe.FILE_HEADER.Machine == 0xAA64
    assert pe.OPTIONAL_HEADER.Magic == 0x20B
    assert pe.FILE_HEADER.SizeOfOptionalHeader == 112 + 8 * 16
    _check_common(pe, data)


def test_arm_probe_is_a_pe32_efi_application_entered_in_arm_state() -> None:
    data = build_probe(arch="arm", nonce="a1b2c3")
    pe = pefile.PE(data=data)
    assert pe.FILE_HEADER.Machine == 0x01C2
    assert pe.OPTIONAL_HEADER.Magic == 0x10B
    assert pe.FILE_HEADER.SizeOfOptionalHeader == 96 + 8 * 16
    assert pe.OPTIONAL_HEADER.AddressOfEntryPoint % 4 == 0  # bit 0 clear: A32, not Thumb
    _check_common(pe, data)


def test_writer_makes_pe32_for_arm() -> None:
    data = write_pe(PeImage(MACHINE_ARMTHUMB_MIXED, PeFormat.PE32, b"\xfe\xff\xff\xea" * 3, entry_offset=4))
    pe = pefile.PE(data=data)
    assert pe.FILE_HEADER.Machine == 0x01C2
    assert pe.OPTIONAL_HEADER.Magic == 0x10B
    assert pe.FILE_HEADER.SizeOfOptionalHeader == 96 + 8 * 16
    assert pe.FILE_HEADER.IMAGE_FILE_32BIT_MACHINE
    assert pe.OPTIONAL_HEADER.AddressOfEntryPoint == pe.sections[0].VirtualAddress + 4
    _check_common(pe, data)


def test_text_is_placed_verbatim() -> None:
    text = bytes(range(256)) * 5
    data = write_pe(PeImage(0xAA64, PeFormat.PE32_PLUS, text, entry_offset=0))
    section = pefile.PE(data=data).sections[0]
    assert section.get_data()[: len(text)] == text
    assert section.Misc_VirtualSize == len(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"text": b""},
        {"entry_offset": 8},
        {"entry_offset": -1},
        {"section_alignment": 0x1800},
        {"file_alignment": 0x100},
        {"section_alignment": 0x200, "file_alignment": 0x400},
    ],
)
def test_writer_rejects_inconsistent_layouts(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "machine": 0xAA64,
        "format": PeFormat.PE32_PLUS,
        "text": b"\0" * 8,
        "entry_offset": 0,
    } | kwargs
    with pytest.raises(ValueError):
        PeImage(**args)  # type: ignore[arg-type]
