"""A tiny ELF reader: what an initramfs builder needs to know about a binary or a kernel module.

Reads ELF32/ELF64 of either byte order (System V gABI, "ELF header", "Program header", "Dynamic
section"): the program interpreter (PT_INTERP), the shared libraries a binary names (DT_NEEDED),
its DT_RUNPATH/DT_RPATH, and a section's bytes by name (a kernel module's ``.modinfo``). Written
here instead of running ``ldd``/``readelf`` because the binaries are for another architecture and
the answer must come from the unpacked tree, not from the host.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

ELF_MAGIC = b"\x7fELF"
PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_RPATH = 15
DT_RUNPATH = 29
EM_NAMES = {3: "i386", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv"}


class ElfError(ValueError):
    """The bytes are not an ELF file this reader understands (one-line message)."""


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int
    vaddr: int
    filesz: int


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    offset: int
    size: int


@dataclass(frozen=True)
class Elf:
    """The parts of an ELF file this project reads; build it with `Elf.parse`."""

    bits: int
    byteorder: str
    type: int
    machine: int
    segments: tuple[Segment, ...]
    sections: tuple[Section, ...]
    interpreter: str | None
    needed: tuple[str, ...]
    runpath: tuple[str, ...]

    @property
    def machine_name(self) -> str:
        return EM_NAMES.get(self.machine, f"machine {self.machine}")

    @staticmethod
    def is_elf(data: bytes) -> bool:
        return data[:4] == ELF_MAGIC

    @staticmethod
    def parse(data: bytes) -> Elf:
        if not Elf.is_elf(data) or len(data) < 52:
            raise ElfError("not an ELF file")
        bits = {1: 32, 2: 64}.get(data[4])
        order = {1: "<", 2: ">"}.get(data[5])
        if bits is None or order is None:
            raise ElfError(f"unknown ELF class {data[4]} or data encoding {data[5]}")
        if bits == 64:
            hdr = struct.unpack_from(order + "HHIQQQIHHHHHH", data, 16)
            e_type, e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = (
                hdr
            )
        else:
            hdr = struct.unpack_from(order + "HHIIIIIHHHHHH", data, 16)
            e_type, e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = (
                hdr
            )
        segments = tuple(_segment(data, bits, order, e_phoff + i * e_phentsize) for i in range(e_phnum))
        sections = _sections(data, bits, order, e_shoff, e_shentsize, e_shnum, e_shstrndx)
        interp = None
        for seg in segments:
            if seg.type == PT_INTERP:
                interp = data[seg.offset : seg.offset + seg.filesz].split(b"\0")[0].decode()
        needed, runpath = _dynamic(data, bits, order, segments)
        return Elf(bits, order, e_type, e_machine, segments, sections, interp, needed, runpath)

    def section(self, data: bytes, name: str) -> bytes | None:
        """The bytes of section `name` of `data` (the file this was parsed from), or None."""
        for sec in self.sections:
            if sec.name == name:
                return data[sec.offset : sec.offset + sec.size]
        return None


def _segment(data: bytes, bits: int, order: str, off: int) -> Segment:
    if bits == 64:
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(order + "IIQQQQQQ", data, off)
    else:
        p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = struct.unpack_from(order + "IIIIIIII", data, off)
    return Segment(p_type, p_offset, p_vaddr, p_filesz)


def _sections(
    data: bytes, bits: int, order: str, shoff: int, shentsize: int, shnum: int, shstrndx: int
) -> tuple[Section, ...]:
    if shoff == 0 or shnum == 0:
        return ()
    raw = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if bits == 64:
            name, typ, _, _, offset, size = struct.unpack_from(order + "IIQQQQ", data, off)
        else:
            name, typ, _, _, offset, size = struct.unpack_from(order + "IIIIII", data, off)
        raw.append((name, typ, offset, size))
    if shstrndx >= len(raw):
        return ()
    strtab_off = raw[shstrndx][2]
    return tuple(Section(_cstr(data, strtab_off + n), t, o, s) for n, t, o, s in raw)


def _cstr(data: bytes, off: int) -> str:
    end = data.find(b"\0", off)
    return data[off : end if end >= 0 else len(data)].decode("utf-8", "replace")


def _vaddr_to_offset(segments: tuple[Segment, ...], vaddr: int) -> int:
    for seg in segments:
        if seg.type == PT_LOAD and seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
            return vaddr - seg.vaddr + seg.offset
    raise ElfError(f"address {vaddr:#x} is in no loadable segment")


def _dynamic(
    data: bytes, bits: int, order: str, segments: tuple[Segment, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    dyn = next((s for s in segments if s.type == PT_DYNAMIC), None)
    if dyn is None:
        return (), ()
    fmt = order + ("qQ" if bits == 64 else "iI")
    size = struct.calcsize(fmt)
    entries = []
    for off in range(dyn.offset, dyn.offset + dyn.filesz - size + 1, size):
        tag, val = struct.unpack_from(fmt, data, off)
        if tag == DT_NULL:
            break
        entries.append((tag, val))
    strtab = next((v for t, v in entries if t == DT_STRTAB), None)
    if strtab is None:
        return (), ()
    base = _vaddr_to_offset(segments, strtab)
    needed = tuple(_cstr(data, base + v) for t, v in entries if t == DT_NEEDED)
    paths: list[str] = []
    for tag in (DT_RUNPATH, DT_RPATH):
        for t, v in entries:
            if t == tag:
                paths += [p for p in _cstr(data, base + v).split(":") if p]
    return needed, tuple(paths)
