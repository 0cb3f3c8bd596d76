"""A32 branch and system encoders (DDI 0406C A5.5 branches, A5.2.12 BX/BLX, A5.6 coprocessor moves, status-register
access): B, BL, BX, BLX, MRS CPSR, MRC/MRRC of CP15 registers, NOP, UDF; each returns one 32-bit word. B and BL take
the byte offset from the instruction's own address and account for the PC reading 8 bytes ahead.
"""

from __future__ import annotations

from .a32_operands import Coproc, Reg, cond_bits, not_pc, uimm

__all__ = ["b", "bl", "bx", "blx", "mrs_cpsr", "mrc", "mrrc", "nop", "udf"]


# ---------------------------------------------------------------------------------------------- branches


def _branch(link: int, offset: int, cond: str) -> int:
    if offset % 4:
        raise ValueError(f"branch offset {offset} is not a multiple of 4")
    imm = (offset - 8) >> 2  # PC reads 8 bytes ahead
    if not -(1 << 23) <= imm < (1 << 23):
        raise ValueError(f"branch offset {offset} out of range +-32 MiB")
    return cond_bits(cond) | (0b101 << 25) | (link << 24) | (imm & 0xFF_FFFF)


def b(offset: int, cond: str = "al") -> int:
    """B<cond> <pc + offset> (offset from this instruction)."""
    return _branch(0, offset, cond)


def bl(offset: int, cond: str = "al") -> int:
    return _branch(1, offset, cond)


def bx(rm: Reg, cond: str = "al") -> int:
    """BX rm: branch, state from bit 0 of rm."""
    return cond_bits(cond) | 0x012FFF10 | rm.num


def blx(rm: Reg, cond: str = "al") -> int:
    """BLX rm: call, state from bit 0 of rm (firmware functions are Thumb code)."""
    not_pc(rm)
    return cond_bits(cond) | 0x012FFF30 | rm.num


def mrs_cpsr(rd: Reg, cond: str = "al") -> int:
    """MRS rd, CPSR (the mode field tells the privilege level; 0x13 = SVC, PL1)."""
    not_pc(rd)
    return cond_bits(cond) | 0x010F0000 | (rd.num << 12)


def mrc(rt: Reg, reg: Coproc, cond: str = "al") -> int:
    """MRC p15, opc1, rt, CRn, CRm, opc2: read a 32-bit CP15 register."""
    if reg.wide:
        raise ValueError(f"{reg} is 64-bit: use mrrc")
    not_pc(rt)
    return (
        cond_bits(cond)
        | 0x0E100F10
        | (uimm(reg.opc1, 3, "opc1") << 21)
        | (uimm(reg.crn, 4, "CRn") << 16)
        | (rt.num << 12)
        | (uimm(reg.opc2, 3, "opc2") << 5)
        | uimm(reg.crm, 4, "CRm")
    )


def mrrc(rt: Reg, rt2: Reg, reg: Coproc, cond: str = "al") -> int:
    """MRRC p15, opc1, rt, rt2, CRm: read a 64-bit CP15 register (rt = low word, rt2 = high word)."""
    if not reg.wide:
        raise ValueError(f"{reg} is 32-bit: use mrc")
    not_pc(rt, rt2)
    if rt == rt2:
        raise ValueError("mrrc with the same register twice is UNPREDICTABLE")
    return (
        cond_bits(cond)
        | 0x0C500F00
        | (rt2.num << 16)
        | (rt.num << 12)
        | (uimm(reg.opc1, 4, "opc1") << 4)
        | uimm(reg.crm, 4, "CRm")
    )


def nop(cond: str = "al") -> int:
    return cond_bits(cond) | 0x0320F000


def udf(imm16: int = 0) -> int:
    """UDF #imm16: permanently undefined."""
    uimm(imm16, 16, "imm16")
    return 0xE7F000F0 | ((imm16 >> 4) << 8) | (imm16 & 0xF)
