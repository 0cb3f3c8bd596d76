"""A32 load/store encoders (DDI 0406C A5.3 word and unsigned byte, A5.2.8 extra load/store halfword, A5.5 block
transfer): LDR/STR, LDRB/STRB, LDRH/STRH with an immediate offset (pre/post-indexed, with or without writeback) and
PUSH/POP; each returns one 32-bit word, raising ValueError for offsets or registers the encoding cannot express.
"""

from __future__ import annotations

from .a32_operands import Reg, cond_bits, not_pc

__all__ = ["ldr", "str_", "ldrb", "strb", "ldrh", "strh", "push", "pop"]


# ---------------------------------------------------------------------------------------------- load/store


def _offset_bits(offset: int, bits: int, what: str) -> tuple[int, int]:
    """(U bit, magnitude) of a signed offset with a `bits`-bit magnitude."""
    magnitude = abs(offset)
    if magnitude >= 1 << bits:
        raise ValueError(f"{what} offset {offset} out of range +-{(1 << bits) - 1}")
    return (1 if offset >= 0 else 0), magnitude


def _addressing(rt: Reg, rn: Reg, pre: bool, writeback: bool) -> tuple[int, int]:
    if not pre and writeback:
        raise ValueError("post-indexed addressing always writes back; pass writeback=False")
    if (writeback or not pre) and (rn.num == 15 or rn == rt):
        raise ValueError(f"writeback with base {rn} (data {rt}) is UNPREDICTABLE")
    return (1 if pre else 0), (1 if writeback else 0)


def _word_byte(load: int, byte: int, rt: Reg, rn: Reg, offset: int, pre: bool, writeback: bool, cond: str) -> int:
    p, w = _addressing(rt, rn, pre, writeback)
    u, imm12 = _offset_bits(offset, 12, "ldr/str")
    if byte and rt.num == 15:
        raise ValueError("ldrb/strb with pc is UNPREDICTABLE")
    return (
        cond_bits(cond)
        | (0b010 << 25)
        | (p << 24)
        | (u << 23)
        | (byte << 22)
        | (w << 21)
        | (load << 20)
        | (rn.num << 16)
        | (rt.num << 12)
        | imm12
    )


def ldr(rt: Reg, rn: Reg, offset: int = 0, pre: bool = True, writeback: bool = False, cond: str = "al") -> int:
    """LDR rt, [rn, #offset] (pre=True), [rn, #offset]! (writeback) or [rn], #offset (pre=False)."""
    return _word_byte(1, 0, rt, rn, offset, pre, writeback, cond)


def str_(rt: Reg, rn: Reg, offset: int = 0, pre: bool = True, writeback: bool = False, cond: str = "al") -> int:
    return _word_byte(0, 0, rt, rn, offset, pre, writeback, cond)


def ldrb(rt: Reg, rn: Reg, offset: int = 0, pre: bool = True, writeback: bool = False, cond: str = "al") -> int:
    return _word_byte(1, 1, rt, rn, offset, pre, writeback, cond)


def strb(rt: Reg, rn: Reg, offset: int = 0, pre: bool = True, writeback: bool = False, cond: str = "al") -> int:
    return _word_byte(0, 1, rt, rn, offset, pre, writeback, cond)


def _halfword(load: int, rt: Reg, rn: Reg, offset: int, pre: bool, writeback: bool, cond: str) -> int:
    p, w = _addressing(rt, rn, pre, writeback)
    not_pc(rt)
    u, imm8 = _offset_bits(offset, 8, "ldrh/strh")
    return (
        cond_bits(cond)
        | (p << 24)
        | (u << 23)
        | (1 << 22)
        | (w << 21)
        | (load << 20)
        | (rn.num << 16)
        | (rt.num << 12)
        | ((imm8 >> 4) << 8)
        | 0xB0
        | (imm8 & 0xF)
    )


def ldrh(rt: Reg, rn: Reg, offset: int = 0, pre: bool = True, writeback: bool = False, cond: str = "al") -> int:
    """LDRH rt, [rn, #offset] (offset within +-255)."""
    return _halfword(1, rt, rn, offset, pre, writeback, cond)


def strh(rt: Reg, rn: Reg, offset: int = 0, pre: bool = True, writeback: bool = False, cond: str = "al") -> int:
    return _halfword(0, rt, rn, offset, pre, writeback, cond)


def _register_list(regs: tuple[Reg, ...]) -> int:
    if len(regs) < 2:
        raise ValueError("push/pop need at least two registers (one register has its own LDR/STR encoding)")
    mask = 0
    for reg in regs:
        if mask & (1 << reg.num):
            raise ValueError(f"{reg} listed twice")
        mask |= 1 << reg.num
    if mask & (1 << 13):
        raise ValueError("sp in the register list is UNPREDICTABLE")
    return mask


def push(*regs: Reg, cond: str = "al") -> int:
    """PUSH {regs} (STMDB sp!, {regs}); pc is not allowed."""
    mask = _register_list(regs)
    if mask & (1 << 15):
        raise ValueError("push {pc} is deprecated")
    return cond_bits(cond) | 0x092D0000 | mask


def pop(*regs: Reg, cond: str = "al") -> int:
    """POP {regs} (LDMIA sp!, {regs}); popping pc interworks (returns to Thumb callers)."""
    mask = _register_list(regs)
    if mask & (1 << 14) and mask & (1 << 15):
        raise ValueError("pop {lr, pc} is UNPREDICTABLE")
    return cond_bits(cond) | 0x08BD0000 | mask
