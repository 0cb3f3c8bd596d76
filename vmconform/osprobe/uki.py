"""Unified kernel images: systemd's EFI stub with the kernel, its command line and the initrd as PE sections.

The OS probe boots Linux from the removable-media path with no boot entry, so nothing but the image itself can
give the kernel its command line (``console=``, the case's nonce, ``acpi=off``) and its initrd: a boot option
that EDK2 creates for a removable disk passes a 16-byte GUID as LoadOptions, and Debian's armmp kernel has no
``initrd=`` loader (CONFIG_EFI_GENERIC_STUB_INITRD_CMDLINE_LOADER is off). systemd-stub (Debian's
``systemd-boot-efi``: ``linuxaa64.efi.stub``, ``linuxarm.efi.stub``) does both on every arch: it LoadImage()s
the ``.linux`` section, sets its LoadOptions to the ``.cmdline`` section and serves ``.initrd`` through the
LINUX_EFI_INITRD_MEDIA_GUID LoadFile2 protocol, which both Debian kernels take.

`unified_kernel_image` writes what ``ukify``/``objcopy --add-section`` would, in pure Python (no cross
binutils; the same inputs give the same bytes). When the stub's headers have room for the new section
headers (aarch64) they are appended; when not (the armhf stub is a gnu-efi image whose hand-written header
ends where its code starts) the whole stub file becomes the first section of a new PE at a page boundary.
The stub relocates itself relative to its own header label and finds the other sections through
LoadedImage->ImageBase, the new header, so both layouts run.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["UkiError", "unified_kernel_image", "pe_sections"]

_SECTION = struct.Struct("<8sIIIIIIHHI")
_DATA = 0x40000040  # CNT_INITIALIZED_DATA | MEM_READ
_CODE = 0xE0000020  # CNT_CODE | MEM_EXECUTE | MEM_READ | MEM_WRITE (the stub relocates itself in place)
_PAGE = 0x1000
_FILE_ALIGN = 0x200


class UkiError(ValueError):
    """The stub is not a PE image this builder can extend (one line)."""


@dataclass(frozen=True)
class _Pe:
    data: bytes
    coff: int  # offset of the COFF header
    opt: int  # offset of the optional header
    magic: int
    nsections: int
    table: int  # offset of the section table

    def u16(self, off: int) -> int:
        return int.from_bytes(self.data[off : off + 2], "little")

    def u32(self, off: int) -> int:
        return int.from_bytes(self.data[off : off + 4], "little")

    @property
    def machine(self) -> int:
        return self.u16(self.coff)

    @property
    def entry(self) -> int:
        return self.u32(self.opt + 16)

    @property
    def section_alignment(self) -> int:
        return self.u32(self.opt + 32)

    @property
    def file_alignment(self) -> int:
        return self.u32(self.opt + 36)

    @property
    def size_of_image(self) -> int:
        return self.u32(self.opt + 56)

    @property
    def size_of_headers(self) -> int:
        return self.u32(self.opt + 60)

    def sections(self) -> list[tuple[str, int, int, int, int]]:
        """(name, virtual address, virtual size, raw offset, raw size) per section."""
        out = []
        for i in range(self.nsections):
            name, vsize, va, rsize, roff, *_ = _SECTION.unpack_from(self.data, self.table + 40 * i)
            out.append((name.rstrip(b"\0").decode("latin-1"), va, vsize, roff, rsize))
        return out


def _parse(data: bytes) -> _Pe:
    if len(data) < 0x40 or data[:2] != b"MZ":
        raise UkiError("the EFI stub is not a PE image (no MZ header)")
    coff = int.from_bytes(data[0x3C:0x40], "little") + 4
    if coff + 20 > len(data) or data[coff - 4 : coff] != b"PE\0\0":
        raise UkiError("the EFI stub has no PE signature")
    nsections, opt_size = struct.unpack_from("<H12xH", data, coff + 2)
    opt = coff + 20
    magic = int.from_bytes(data[opt : opt + 2], "little")
    if magic not in (0x10B, 0x20B):
        raise UkiError(f"the EFI stub's optional header magic {magic:#x} is neither PE32 nor PE32+")
    table = opt + opt_size
    if table + 40 * nsections > len(data):
        raise UkiError("the EFI stub's section table runs past its end")
    return _Pe(data, coff, opt, magic, nsections, table)


def _align(value: int, alignment: int) -> int:
    return value + -value % alignment


def pe_sections(data: bytes) -> dict[str, bytes]:
    """The named sections of a PE file (raw data cut to the virtual size): for tests and evidence."""
    pe = _parse(data)
    return {name: data[roff : roff + min(rsize, vsize)] for name, _va, vsize, roff, rsize in pe.sections()}


def unified_kernel_image(stub: bytes, sections: Sequence[tuple[str, bytes]]) -> bytes:
    """`stub` with `sections` (name, bytes) added, e.g. ``[(".cmdline", cmd), (".linux", kernel), (".initrd", rd)]``."""
    for name, _ in sections:
        if not name.startswith(".") or len(name.encode()) > 8:
            raise UkiError(f"section name {name!r} must start with '.' and be at most 8 bytes")
    pe = _parse(stub)
    first_raw = min((s[3] for s in pe.sections() if s[4]), default=len(stub))
    room = min(pe.size_of_headers, first_raw) - (pe.table + 40 * pe.nsections)
    if room >= 40 * len(sections):
        return _append(pe, sections)
    return _wrap(pe, sections)


def _place(
    start_va: int, start_raw: int, sections: Sequence[tuple[str, bytes]], salign: int, falign: int
) -> tuple[list[bytes], bytes, int]:
    """Section headers and raw data for `sections` laid out from `start_va` / `start_raw`; the end VA."""
    headers, body, va, raw = [], bytearray(), start_va, start_raw
    for name, content in sections:
        size = _align(len(content), falign)
        chars = _CODE if name == ".text" else _DATA
        headers.append(_SECTION.pack(name.encode(), len(content), va, size, raw, 0, 0, 0, 0, chars))
        body += content + bytes(size - len(content))
        raw += size
        va = _align(va + max(len(content), 1), salign)
    return headers, bytes(body), va


def _append(pe: _Pe, sections: Sequence[tuple[str, bytes]]) -> bytes:
    salign, falign = pe.section_alignment, pe.file_alignment
    end_va = _align(max(va + vsize for _n, va, vsize, _r, _s in pe.sections()), salign)
    end_va = max(end_va, _align(pe.size_of_image, salign))
    base = bytearray(pe.data + bytes(-len(pe.data) % falign))
    headers, body, size_of_image = _place(end_va, len(base), sections, salign, falign)
    at = pe.table + 40 * pe.nsections
    for h in headers:
        base[at : at + 40] = h
        at += 40
    struct.pack_into("<H", base, pe.coff + 2, pe.nsections + len(sections))
    struct.pack_into("<I", base, pe.opt + 56, size_of_image)
    struct.pack_into("<I", base, pe.opt + 64, 0)  # CheckSum: not kept up to date by UEFI loaders
    return bytes(base) + body


def _wrap(pe: _Pe, sections: Sequence[tuple[str, bytes]]) -> bytes:
    pe32 = pe.magic == 0x10B
    opt_size = (96 if pe32 else 112) + 16 * 8
    nsec = 1 + len(sections)
    table = 0x40 + 4 + 20 + opt_size
    headers_size = _align(table + 40 * nsec, _FILE_ALIGN)
    stub_va = _align(headers_size, _PAGE)
    stub_image = pe.data + bytes(max(0, pe.size_of_image - len(pe.data)))
    heads, body, size_of_image = _place(stub_va, headers_size, [(".text", stub_image), *sections], _PAGE, _FILE_ALIGN)
    dos = bytearray(0x40)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x40)
    chars = 0x0002 | 0x0200 | (0x0100 if pe32 else 0x0020)  # executable, debug stripped, 32-bit / large address
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", pe.machine, nsec, 0, 0, 0, opt_size, chars)
    code_size = _align(len(stub_image), _FILE_ALIGN)
    std = struct.pack("<HBBIIIII", pe.magic, 0, 0, code_size, len(body) - code_size, 0, stub_va + pe.entry, stub_va)
    if pe32:
        std += struct.pack("<I", 0)
    addr = "I" if pe32 else "Q"
    win = struct.pack(
        f"<{addr}IIHHHHHHIIIIHH{addr}{addr}{addr}{addr}II",
        0, _PAGE, _FILE_ALIGN, 0, 0, 0, 0, 0, 0, 0, size_of_image, headers_size, 0, 10, 0, 0, 0, 0, 0, 0, 16,
    )  # fmt: skip
    head = dos + coff + std + win + bytes(16 * 8) + b"".join(heads)
    return bytes(head) + bytes(headers_size - len(head)) + body
