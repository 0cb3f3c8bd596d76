"""PE/COFF writer for UEFI applications: one `.text` section, no relocations, deterministic output.

Implements the Microsoft PE/COFF spec (MS-DOS stub header, COFF file header, PE32/PE32+ optional
header, section table) as UEFI §2.1.1 requires of UEFI images (machine types: 0xAA64 AArch64,
0x01C2 AArch32/Thumb-mixed, 0x8664 x64, 0x014C IA32), for the removable-media boot files of §3.5.1.1.

Facts measured on Debian's AAVMF (shared/notes/probe-prototype.md): the firmware needs an "MZ" header
with e_lfanew, Subsystem 10, a consistent SizeOfOptionalHeader, a non-zero SectionAlignment, and
IMAGE_FILE_RELOCS_STRIPPED clear (with it set, the loader must place the image at ImageBase, and 0 fails).
Data directories are all zero: the code is position-independent, so there is no .reloc section.

The file is ready for an Authenticode signature (`vmconform.signing`): 16 data directories, so the
certificate table's entry exists; raw data ends at a FileAlignment boundary (a multiple of 8, where the
signer appends the table); CheckSum is the PE image checksum (the signer recomputes it over the signed file).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "PeFormat",
    "PeImage",
    "write_pe",
    "MACHINE_ARM64",
    "MACHINE_ARMTHUMB_MIXED",
    "MACHINE_AMD64",
    "MACHINE_I386",
    "SUBSYSTEM_EFI_APPLICATION",
    "TEXT_CHARACTERISTICS",
    "pe_checksum",
    "checksum_offset",
]

MACHINE_I386 = 0x014C
MACHINE_ARMTHUMB_MIXED = 0x01C2
MACHINE_AMD64 = 0x8664
MACHINE_ARM64 = 0xAA64

SUBSYSTEM_EFI_APPLICATION = 10

# COFF file header characteristics
_RELOCS_STRIPPED = 0x0001
_EXECUTABLE_IMAGE = 0x0002
_LARGE_ADDRESS_AWARE = 0x0020
_32BIT_MACHINE = 0x0100
_DEBUG_STRIPPED = 0x0200

# section characteristics: CNT_CODE | MEM_EXECUTE | MEM_READ
TEXT_CHARACTERISTICS = 0x00000020 | 0x20000000 | 0x40000000

_DOS_HEADER_SIZE = 64
_E_LFANEW_OFFSET = 0x3C
_COFF_HEADER_SIZE = 20
_SECTION_HEADER_SIZE = 40
_DATA_DIRECTORIES = 16


class PeFormat(Enum):
    """Optional-header magic: PE32 (32-bit address fields) or PE32+ (64-bit)."""

    PE32 = 0x10B
    PE32_PLUS = 0x20B

    @property
    def optional_header_size(self) -> int:
        """Standard + Windows-specific fields, then 8 bytes for each data directory."""
        return (96 if self is PeFormat.PE32 else 112) + 8 * _DATA_DIRECTORIES


@dataclass(frozen=True)
class PeImage:
    """What goes into the image: code+data for `.text` and where in it the entry point is."""

    machine: int
    format: PeFormat
    text: bytes
    entry_offset: int
    subsystem: int = SUBSYSTEM_EFI_APPLICATION
    section_alignment: int = 0x1000
    file_alignment: int = 0x200

    def __post_init__(self) -> None:
        for name in ("section_alignment", "file_alignment"):
            value = getattr(self, name)
            if value <= 0 or value & (value - 1):
                raise ValueError(f"{name} {value:#x} is not a power of two")
        if not 0x200 <= self.file_alignment <= 0x10000:
            raise ValueError(f"file_alignment {self.file_alignment:#x} outside 0x200..0x10000")
        if self.section_alignment < self.file_alignment:
            raise ValueError("section_alignment must be at least file_alignment")
        if not self.text:
            raise ValueError(".text is empty")
        if not 0 <= self.entry_offset < len(self.text):
            raise ValueError(f"entry offset {self.entry_offset:#x} outside .text ({len(self.text):#x} bytes)")


def _align(value: int, alignment: int) -> int:
    return value + -value % alignment


def checksum_offset(data: bytes | bytearray) -> int:
    """The file offset of the optional header's CheckSum field (the same in PE32 and PE32+)."""
    pe_offset = int.from_bytes(data[_E_LFANEW_OFFSET : _E_LFANEW_OFFSET + 4], "little")
    return pe_offset + 4 + _COFF_HEADER_SIZE + 64


def pe_checksum(data: bytes) -> int:
    """The PE image checksum (as IMAGEHLP's CheckSumMappedFile): the file's 16-bit words summed with the carry
    folded back, the CheckSum field counted as zero, plus the file length."""
    at = checksum_offset(data)
    padded = data[:at] + bytes(4) + data[at + 4 :] + bytes(len(data) % 2)
    total: int = sum(struct.unpack(f"<{len(padded) // 2}H", padded))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFF_FFFF


def write_pe(image: PeImage) -> bytes:
    """The PE/COFF file for `image` (same input, same bytes: TimeDateStamp is 0; CheckSum is the image's)."""
    fmt = image.format
    pe_offset = _DOS_HEADER_SIZE
    section_table = pe_offset + 4 + _COFF_HEADER_SIZE + fmt.optional_header_size
    size_of_headers = _align(section_table + _SECTION_HEADER_SIZE, image.file_alignment)
    text_rva = _align(size_of_headers, image.section_alignment)
    text_raw_size = _align(len(image.text), image.file_alignment)
    size_of_image = _align(text_rva + len(image.text), image.section_alignment)
    entry = text_rva + image.entry_offset

    dos = bytearray(_DOS_HEADER_SIZE)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, _E_LFANEW_OFFSET, pe_offset)

    characteristics = _EXECUTABLE_IMAGE | _DEBUG_STRIPPED
    characteristics |= _32BIT_MACHINE if fmt is PeFormat.PE32 else _LARGE_ADDRESS_AWARE
    assert not characteristics & _RELOCS_STRIPPED
    coff = struct.pack("<HHIIIHH", image.machine, 1, 0, 0, 0, fmt.optional_header_size, characteristics)

    # standard fields: Magic, linker version, SizeOfCode, SizeOfInitializedData, SizeOfUninitializedData,
    # AddressOfEntryPoint, BaseOfCode (+ BaseOfData in PE32)
    standard = struct.pack("<HBBIIIII", fmt.value, 0, 0, text_raw_size, 0, 0, entry, text_rva)
    # Windows-specific fields; ImageBase and the stack/heap sizes are 4 bytes in PE32, 8 in PE32+
    addr = "I" if fmt is PeFormat.PE32 else "Q"
    if fmt is PeFormat.PE32:
        standard += struct.pack("<I", 0)  # BaseOfData: there is no data section
    windows = struct.pack(
        f"<{addr}IIHHHHHHIIIIHH{addr}{addr}{addr}{addr}II",
        0,  # ImageBase: any address (RELOCS_STRIPPED is clear)
        image.section_alignment,
        image.file_alignment,
        0,
        0,
        0,
        0,
        0,
        0,  # OS, image and subsystem versions
        0,  # Win32VersionValue
        size_of_image,
        size_of_headers,
        0,  # CheckSum: set once the whole file is known
        image.subsystem,
        0,  # DllCharacteristics
        0,
        0,
        0,
        0,  # stack reserve/commit, heap reserve/commit
        0,  # LoaderFlags
        _DATA_DIRECTORIES,
    )
    directories = bytes(8 * _DATA_DIRECTORIES)
    optional = standard + windows + directories
    assert len(optional) == fmt.optional_header_size

    section = struct.pack(
        "<8sIIIIIIHHI",
        b".text",
        len(image.text),
        text_rva,
        text_raw_size,
        size_of_headers,
        0,
        0,
        0,
        0,
        TEXT_CHARACTERISTICS,
    )
    headers = bytes(dos) + b"PE\0\0" + coff + optional + section
    data = bytearray(headers.ljust(size_of_headers, b"\0") + image.text.ljust(text_raw_size, b"\0"))
    struct.pack_into("<I", data, checksum_offset(data), pe_checksum(bytes(data)))
    return bytes(data)
