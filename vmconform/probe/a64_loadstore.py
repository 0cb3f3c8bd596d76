"""A64 load/store encoders (DDI 0487 C4.1 "Loads and Stores"): LDR/STR of bytes, halfwords, words and
doublewords with an immediate offset (`Index`: offset, pre/post-indexed, unscaled) and LDP/STP pairs; each returns one
32-bit instruction word, raising ValueError for offsets or registers the encoding cannot express.
"""

from __future__ import annotations

from .a64_operands import Index, Reg, reg_num, scaled, simm, uimm, width_bit

__all__ = ["ldr", "ldrh", "ldrb", "str_", "strh", "strb", "ldp", "stp"]


# ---------------------------------------------------------------------------------------------- load/store


def _load_store(size: int, load: bool, rt: Reg, rn: Reg, offset: int, index: Index) -> int:
    """LDR/STR (immediate) of 1 << size bytes; size 3 needs an X register, the others a W register."""
    if rt.is64 != (size == 3):
        raise ValueError(f"{rt} does not match a {8 << size}-bit access")
    if not rn.is64:
        raise ValueError(f"base register {rn} must be 64-bit")
    t, n = reg_num(rt, sp=False), reg_num(rn, sp=True)
    if index in (Index.PRE, Index.POST) and t == n != 31:
        raise ValueError(f"writeback with {rt} as both data and base register is CONSTRAINED UNPREDICTABLE")
    opc = 1 if load else 0
    if index is Index.OFFSET:
        imm12 = uimm(scaled(offset, 1 << size, "offset"), 12, "scaled offset")
        return (size << 30) | (0b111001 << 24) | (opc << 22) | (imm12 << 10) | (n << 5) | t
    idx = {Index.UNSCALED: 0b00, Index.POST: 0b01, Index.PRE: 0b11}[index]
    return (
        (size << 30) | (0b111000 << 24) | (opc << 22) | (simm(offset, 9, "offset") << 12) | (idx << 10) | (n << 5) | t
    )


def ldr(rt: Reg, rn: Reg, offset: int = 0, index: Index = Index.OFFSET) -> int:
    """LDR Xt/Wt (64- or 32-bit load, by the width of rt)."""
    return _load_store(3 if rt.is64 else 2, True, rt, rn, offset, index)


def str_(rt: Reg, rn: Reg, offset: int = 0, index: Index = Index.OFFSET) -> int:
    """STR Xt/Wt (64- or 32-bit store, by the width of rt)."""
    return _load_store(3 if rt.is64 else 2, False, rt, rn, offset, index)


def ldrh(rt: Reg, rn: Reg, offset: int = 0, index: Index = Index.OFFSET) -> int:
    return _load_store(1, True, rt, rn, offset, index)


def strh(rt: Reg, rn: Reg, offset: int = 0, index: Index = Index.OFFSET) -> int:
    return _load_store(1, False, rt, rn, offset, index)


def ldrb(rt: Reg, rn: Reg, offset: int = 0, index: Index = Index.OFFSET) -> int:
    return _load_store(0, True, rt, rn, offset, index)


def strb(rt: Reg, rn: Reg, offset: int = 0, index: Index = Index.OFFSET) -> int:
    return _load_store(0, False, rt, rn, offset, index)


def _pair(load: bool, rt1: Reg, rt2: Reg, rn: Reg, offset: int, index: Index) -> int:
    sf = width_bit(rt1, rt2)
    if not rn.is64:
        raise ValueError(f"base register {rn} must be 64-bit")
    kind = {Index.OFFSET: 0b010, Index.PRE: 0b011, Index.POST: 0b001}.get(index)
    if kind is None:
        raise ValueError(f"ldp/stp have no {index.value} form")
    t1, t2, n = reg_num(rt1, sp=False), reg_num(rt2, sp=False), reg_num(rn, sp=True)
    if load and t1 == t2:
        raise ValueError(f"ldp with {rt1} twice is CONSTRAINED UNPREDICTABLE")
    if index is not Index.OFFSET and n in (t1, t2) and n != 31:
        raise ValueError(f"writeback with base {rn} also a data register is CONSTRAINED UNPREDICTABLE")
    imm7 = simm(scaled(offset, 8 if sf else 4, "pair offset"), 7, "scaled pair offset")
    return (
        ((0b10 if sf else 0b00) << 30)
        | (0b101 << 27)
        | (kind << 23)
        | ((1 if load else 0) << 22)
        | (imm7 << 15)
        | (t2 << 10)
        | (n << 5)
        | t1
    )


def ldp(rt1: Reg, rt2: Reg, rn: Reg, offset: int = 0, index: Index = Index.OFFSET) -> int:
    return _pair(True, rt1, rt2, rn, offset, index)


def stp(rt1: Reg, rt2: Reg, rn: Reg, offset: int = 0, index: Index = Index.OFFSET) -> int:
    return _pair(False, rt1, rt2, rn, offset, index)
