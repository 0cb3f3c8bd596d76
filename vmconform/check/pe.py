"""IMG-5 for `vmconform check`: the removable-media boot file is a PE/COFF image that EDK2's loader
would take (MdePkg BasePeCoffLib, PeCoffLoaderGetPeHeader: the header fields it rejects) of the
machine and optional-header magic its file name promises, an EFI application.
"""

from __future__ import annotations

import struct

from vmconform.check.rows import n as _n

BOOT_FILES = {"BOOTAA64.EFI": (0xAA64, 0x20B, "aarch64"), "BOOTARM.EFI": (0x01C2, 0x10B, "arm")}


EFI_APPLICATION = 10
NT_HEADERS_READ = 4 + 20 + 240
"""Bytes EDK2 reads at e_lfanew in one go (EFI_IMAGE_OPTIONAL_HEADER_UNION): all of them must be in the file."""
OPTIONAL_BASE = {0x10B: 96, 0x20B: 112}
"""The optional header's size without its data directories, by magic (PE32, PE32+)."""
MAX_DIRECTORIES = 16
SECURITY_DIRECTORY = 4
SECTION_HEADER = 40
U32 = 0xFFFFFFFF


def _header_problems(data: bytes | bytearray, lfanew: int, magic: int) -> tuple[list[str], int, int]:
    """What EDK2's PeCoffLoaderGetPeHeader rejects in the headers of a PE32/PE32+ file; with the section
    table's offset and the number of sections."""
    opt = lfanew + 24
    n_sections, _stamp, _symbols, _count, opt_size = struct.unpack_from("<HIIIH", data, lfanew + 6)
    base = OPTIONAL_BASE[magic]
    size_of_image, size_of_headers = struct.unpack_from("<II", data, opt + 56)
    (n_dirs,) = struct.unpack_from("<I", data, opt + base - 4)
    table = opt + opt_size
    out = []
    if n_dirs > MAX_DIRECTORIES:
        out.append(f"NumberOfRvaAndSizes {n_dirs} (at most {MAX_DIRECTORIES})")
    elif opt_size != base + 8 * n_dirs:
        out.append(f"SizeOfOptionalHeader {opt_size}, but {n_dirs} data directories make it {base + 8 * n_dirs}")
    if size_of_image <= table or (size_of_image - table) // SECTION_HEADER <= n_sections:
        out.append(f"SizeOfImage {size_of_image:#x} leaves no room for the headers and {n_sections} section headers")
    if size_of_headers <= table or (size_of_headers - table) // SECTION_HEADER < n_sections:
        out.append(f"SizeOfHeaders {size_of_headers:#x} does not cover the {n_sections} section headers at {table:#x}")
    elif size_of_headers >= size_of_image:
        out.append(f"SizeOfHeaders {size_of_headers:#x} is not below SizeOfImage {size_of_image:#x}")
    if size_of_headers > len(data):
        out.append(f"SizeOfHeaders {size_of_headers:#x} lies past the end of the file ({len(data):#x} bytes)")
    if SECURITY_DIRECTORY < min(n_dirs, MAX_DIRECTORIES) and opt + base + 8 * SECURITY_DIRECTORY + 8 <= len(data):
        va, size = struct.unpack_from("<II", data, opt + base + 8 * SECURITY_DIRECTORY)
        if size and (va + size > U32 or va + size > len(data)):
            out.append(f"the security directory ({va:#x}, {size:#x} bytes) lies past the end of the file")
    return out, table, n_sections


def pe_rows(
    name: str, stored: str, data: bytes | bytearray, results: dict[str, list[str]], notes: dict[str, list[str]]
) -> None:
    """Judge the boot file `data` (found as `stored`, named `name`): problems go to `results`, what holds to
    `notes`, both keyed by row id (boot_file.pe / .machine / .subsystem / .sections)."""
    want_machine, want_magic, _arch = BOOT_FILES[name]
    pe = results["boot_file.pe"]
    if len(data) == 0:
        pe.append(f"{stored} is empty")
        return
    if len(data) < 64 or data[:2] != b"MZ":
        pe.append(f"{stored}: no MZ header (starts {data[:4].hex(' ')})")
        return
    (lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if lfanew + 24 > len(data) or data[lfanew : lfanew + 4] != b"PE\0\0":
        pe.append(f"{stored}: no PE signature at e_lfanew {lfanew:#x}")
        return
    if lfanew + NT_HEADERS_READ > len(data):
        pe.append(f"{stored}: the file ends before the {NT_HEADERS_READ} bytes of headers EDK2 reads at {lfanew:#x}")
        return
    (machine,) = struct.unpack_from("<H", data, lfanew + 4)
    opt = lfanew + 24
    magic, subsystem = struct.unpack_from("<H", data, opt)[0], struct.unpack_from("<H", data, opt + 68)[0]
    if magic not in OPTIONAL_BASE:
        pe.append(f"{stored}: optional-header magic {magic:#x} is neither PE32 (0x10b) nor PE32+ (0x20b)")
        return
    problems, table, n_sections = _header_problems(data, lfanew, magic)
    if problems:
        pe.append(f"{stored}: " + "; ".join(problems))
    else:
        notes["boot_file.pe"].append(f"{stored}: PE at {lfanew:#x}, headers as EDK2 requires")
    if (machine, magic) == (want_machine, want_magic):
        notes["boot_file.machine"].append(f"{stored}: machine {machine:#06x}, magic {magic:#x}")
    else:
        results["boot_file.machine"].append(
            f"{stored}: machine {machine:#06x} magic {magic:#x} (want {want_machine:#06x} {want_magic:#x})"
        )
    if subsystem == EFI_APPLICATION:
        notes["boot_file.subsystem"].append(f"{stored}: subsystem 10")
    else:
        results["boot_file.subsystem"].append(f"{stored}: subsystem {subsystem} (want 10)")
    _sections(stored, data, table, n_sections, results, notes)


def _sections(
    stored: str,
    data: bytes | bytearray,
    table: int,
    n_sections: int,
    results: dict[str, list[str]],
    notes: dict[str, list[str]],
) -> None:
    if table + SECTION_HEADER * n_sections > len(data):
        results["boot_file.sections"].append(f"{stored}: the section table ({n_sections} sections) is past the end")
        return
    bad = []
    for i in range(n_sections):
        raw_size, raw_ptr = struct.unpack_from("<II", data, table + SECTION_HEADER * i + 16)
        if raw_size and (raw_ptr + raw_size > U32 or raw_ptr + raw_size > len(data)):
            sec = data[table + SECTION_HEADER * i : table + SECTION_HEADER * i + 8].rstrip(b"\0").decode("latin-1")
            bad.append(f"{sec or i} needs bytes {raw_ptr:#x}..{raw_ptr + raw_size:#x}, the file has {len(data):#x}")
    if bad:
        results["boot_file.sections"].append(f"{stored}: " + "; ".join(bad[:3]))
    else:
        notes["boot_file.sections"].append(f"{stored}: {_n(n_sections, 'section')} inside the file")
