"""A64 data-processing encoders (DDI 0487 C4.1 "Data Processing -- Immediate" and "-- Register"): move wide,
add/subtract, logical (with bitmask immediates), bitfield moves, byte reversal and PC-relative ADR; each returns one
32-bit instruction word, raising ValueError for operands the encoding cannot express. `adr` takes the byte offset
from the instruction's own address to the target.
"""

from __future__ import annotations

from .a64_operands import WZR, XZR, Reg, Shift, reg_num, simm, uimm, width_bit

__all__ = [
    "movz",
    "movk",
    "movn",
    "wide_chunks",
    "add_imm",
    "adds_imm",
    "sub_imm",
    "subs_imm",
    "cmp_imm",
    "cmn_imm",
    "mov",
    "add_reg",
    "adds_reg",
    "sub_reg",
    "subs_reg",
    "cmp_reg",
    "and_imm",
    "orr_imm",
    "eor_imm",
    "ands_imm",
    "tst_imm",
    "bitmask_imm",
    "and_reg",
    "orr_reg",
    "eor_reg",
    "ands_reg",
    "tst_reg",
    "ubfm",
    "lsr_imm",
    "lsl_imm",
    "ubfx",
    "rev",
    "adr",
]


# ---------------------------------------------------------------------------------------------- move wide


def _move_wide(opc: int, rd: Reg, imm16: int, shift: int) -> int:
    sf = width_bit(rd)
    if shift not in ((0, 16, 32, 48) if sf else (0, 16)):
        raise ValueError(f"shift {shift} invalid for {rd}")
    return (
        (sf << 31)
        | (opc << 29)
        | (0b100101 << 23)
        | ((shift // 16) << 21)
        | (uimm(imm16, 16, "imm16") << 5)
        | reg_num(rd, sp=False)
    )


def movz(rd: Reg, imm16: int, shift: int = 0) -> int:
    """MOVZ rd, #imm16, LSL #shift."""
    return _move_wide(0b10, rd, imm16, shift)


def movk(rd: Reg, imm16: int, shift: int = 0) -> int:
    """MOVK rd, #imm16, LSL #shift (keeps the other bits)."""
    return _move_wide(0b11, rd, imm16, shift)


def movn(rd: Reg, imm16: int, shift: int = 0) -> int:
    """MOVN rd, #imm16, LSL #shift (rd = ~(imm16 << shift))."""
    return _move_wide(0b00, rd, imm16, shift)


def wide_chunks(value: int, width: int = 64) -> list[tuple[int, int]]:
    """(imm16, shift) pairs for a MOVZ followed by MOVKs that build `value` (at least one pair)."""
    if not -(1 << (width - 1)) <= value < (1 << width):
        raise ValueError(f"constant {value} does not fit in {width} bits")
    value &= (1 << width) - 1
    chunks = [((value >> s) & 0xFFFF, s) for s in range(0, width, 16) if (value >> s) & 0xFFFF]
    return chunks or [(0, 0)]


# ---------------------------------------------------------------------------------------------- add/sub


def _addsub_imm(op: int, s: int, rd: Reg, rn: Reg, imm: int) -> int:
    sf = width_bit(rd, rn)
    if 0 <= imm < 4096:
        sh, imm12 = 0, imm
    elif imm > 0 and imm % 4096 == 0 and imm >> 12 < 4096:
        sh, imm12 = 1, imm >> 12
    else:
        raise ValueError(f"add/sub immediate {imm} is neither 0..4095 nor a multiple of 4096 up to 4095<<12")
    return (
        (sf << 31)
        | (op << 30)
        | (s << 29)
        | (0b100010 << 23)
        | (sh << 22)
        | (imm12 << 10)
        | (reg_num(rn, sp=True) << 5)
        | reg_num(rd, sp=not s)
    )


def add_imm(rd: Reg, rn: Reg, imm: int) -> int:
    """ADD rd, rn, #imm (imm 0..4095, or a multiple of 4096 encoded with LSL #12). rd/rn may be SP."""
    return _addsub_imm(0, 0, rd, rn, imm)


def adds_imm(rd: Reg, rn: Reg, imm: int) -> int:
    return _addsub_imm(0, 1, rd, rn, imm)


def sub_imm(rd: Reg, rn: Reg, imm: int) -> int:
    """SUB rd, rn, #imm. rd/rn may be SP."""
    return _addsub_imm(1, 0, rd, rn, imm)


def subs_imm(rd: Reg, rn: Reg, imm: int) -> int:
    return _addsub_imm(1, 1, rd, rn, imm)


def cmp_imm(rn: Reg, imm: int) -> int:
    """CMP rn, #imm (SUBS ZR, rn, #imm)."""
    return subs_imm(XZR if rn.is64 else WZR, rn, imm)


def cmn_imm(rn: Reg, imm: int) -> int:
    """CMN rn, #imm (ADDS ZR, rn, #imm)."""
    return adds_imm(XZR if rn.is64 else WZR, rn, imm)


def _addsub_reg(op: int, s: int, rd: Reg, rn: Reg, rm: Reg, shift: Shift, amount: int) -> int:
    sf = width_bit(rd, rn, rm)
    uimm(amount, 6 if sf else 5, "shift amount")
    return (
        (sf << 31)
        | (op << 30)
        | (s << 29)
        | (0b01011 << 24)
        | (shift.value << 22)
        | (reg_num(rm, sp=False) << 16)
        | (amount << 10)
        | (reg_num(rn, sp=False) << 5)
        | reg_num(rd, sp=False)
    )


def add_reg(rd: Reg, rn: Reg, rm: Reg, shift: Shift = Shift.LSL, amount: int = 0) -> int:
    """ADD rd, rn, rm{, shift #amount} (shifted register; no SP)."""
    return _addsub_reg(0, 0, rd, rn, rm, shift, amount)


def adds_reg(rd: Reg, rn: Reg, rm: Reg, shift: Shift = Shift.LSL, amount: int = 0) -> int:
    return _addsub_reg(0, 1, rd, rn, rm, shift, amount)


def sub_reg(rd: Reg, rn: Reg, rm: Reg, shift: Shift = Shift.LSL, amount: int = 0) -> int:
    return _addsub_reg(1, 0, rd, rn, rm, shift, amount)


def subs_reg(rd: Reg, rn: Reg, rm: Reg, shift: Shift = Shift.LSL, amount: int = 0) -> int:
    return _addsub_reg(1, 1, rd, rn, rm, shift, amount)


def cmp_reg(rn: Reg, rm: Reg) -> int:
    """CMP rn, rm (SUBS ZR, rn, rm)."""
    return subs_reg(XZR if rn.is64 else WZR, rn, rm)


def mov(rd: Reg, rm: Reg) -> int:
    """MOV rd, rm: ADD rd, rm, #0 when either is SP, else ORR rd, ZR, rm."""
    if rd.is_sp or rm.is_sp:
        return add_imm(rd, rm, 0)
    return orr_reg(rd, XZR if rd.is64 else WZR, rm)


# ---------------------------------------------------------------------------------------------- logical


def bitmask_imm(value: int, width: int) -> tuple[int, int, int]:
    """(N, immr, imms) encoding `value` as an A64 logical immediate of `width` bits, or ValueError."""
    full = (1 << width) - 1
    if width not in (32, 64) or not 0 < value < full:
        raise ValueError(f"{value:#x} is not encodable as a {width}-bit logical immediate")
    size = width
    while size > 2:  # smallest repeating element
        half = size // 2
        mask = (1 << half) - 1
        if value & mask != (value >> half) & mask:
            break
        size = half
    mask = (1 << size) - 1
    elem = value & mask
    ones = bin(elem).count("1")
    run = (1 << ones) - 1
    for rot in range(size):  # elem must be ROR(run, rot) within the element
        if ((run >> rot) | (run << (size - rot))) & mask == elem:
            imms = ((-size << 1) & 0x3F) | (ones - 1)
            return (1 if size == 64 else 0), rot, imms
    raise ValueError(f"{value:#x} is not encodable as a {width}-bit logical immediate")


def _logical_imm(opc: int, rd: Reg, rn: Reg, value: int) -> int:
    sf = width_bit(rd, rn)
    n, immr, imms = bitmask_imm(value, 64 if sf else 32)
    return (
        (sf << 31)
        | (opc << 29)
        | (0b100100 << 23)
        | (n << 22)
        | (immr << 16)
        | (imms << 10)
        | (reg_num(rn, sp=False) << 5)
        | reg_num(rd, sp=opc != 0b11)
    )


def and_imm(rd: Reg, rn: Reg, mask: int) -> int:
    """AND rd, rn, #mask (mask must be a logical immediate)."""
    return _logical_imm(0b00, rd, rn, mask)


def orr_imm(rd: Reg, rn: Reg, mask: int) -> int:
    return _logical_imm(0b01, rd, rn, mask)


def eor_imm(rd: Reg, rn: Reg, mask: int) -> int:
    return _logical_imm(0b10, rd, rn, mask)


def ands_imm(rd: Reg, rn: Reg, mask: int) -> int:
    return _logical_imm(0b11, rd, rn, mask)


def tst_imm(rn: Reg, mask: int) -> int:
    """TST rn, #mask (ANDS ZR, rn, #mask)."""
    return ands_imm(XZR if rn.is64 else WZR, rn, mask)


def _logical_reg(opc: int, rd: Reg, rn: Reg, rm: Reg, shift: Shift, amount: int) -> int:
    sf = width_bit(rd, rn, rm)
    uimm(amount, 6 if sf else 5, "shift amount")
    return (
        (sf << 31)
        | (opc << 29)
        | (0b01010 << 24)
        | (shift.value << 22)
        | (reg_num(rm, sp=False) << 16)
        | (amount << 10)
        | (reg_num(rn, sp=False) << 5)
        | reg_num(rd, sp=False)
    )


def and_reg(rd: Reg, rn: Reg, rm: Reg, shift: Shift = Shift.LSL, amount: int = 0) -> int:
    return _logical_reg(0b00, rd, rn, rm, shift, amount)


def orr_reg(rd: Reg, rn: Reg, rm: Reg, shift: Shift = Shift.LSL, amount: int = 0) -> int:
    return _logical_reg(0b01, rd, rn, rm, shift, amount)


def eor_reg(rd: Reg, rn: Reg, rm: Reg, shift: Shift = Shift.LSL, amount: int = 0) -> int:
    return _logical_reg(0b10, rd, rn, rm, shift, amount)


def ands_reg(rd: Reg, rn: Reg, rm: Reg, shift: Shift = Shift.LSL, amount: int = 0) -> int:
    return _logical_reg(0b11, rd, rn, rm, shift, amount)


def tst_reg(rn: Reg, rm: Reg) -> int:
    return ands_reg(XZR if rn.is64 else WZR, rn, rm)


# ---------------------------------------------------------------------------------------------- bitfield


def ubfm(rd: Reg, rn: Reg, immr: int, imms: int) -> int:
    """UBFM rd, rn, #immr, #imms."""
    sf = width_bit(rd, rn)
    bits = 6 if sf else 5
    return (
        (sf << 31)
        | (0b10 << 29)
        | (0b100110 << 23)
        | (sf << 22)
        | (uimm(immr, bits, "immr") << 16)
        | (uimm(imms, bits, "imms") << 10)
        | (reg_num(rn, sp=False) << 5)
        | reg_num(rd, sp=False)
    )


def lsr_imm(rd: Reg, rn: Reg, shift: int) -> int:
    """LSR rd, rn, #shift (UBFM rd, rn, #shift, #width-1)."""
    width = 64 if rd.is64 else 32
    return ubfm(rd, rn, uimm(shift, 6 if rd.is64 else 5, "shift"), width - 1)


def lsl_imm(rd: Reg, rn: Reg, shift: int) -> int:
    """LSL rd, rn, #shift (UBFM rd, rn, #(-shift mod width), #(width-1-shift))."""
    width = 64 if rd.is64 else 32
    uimm(shift, 6 if rd.is64 else 5, "shift")
    return ubfm(rd, rn, (-shift) % width, width - 1 - shift)


def rev(rd: Reg, rn: Reg) -> int:
    """REV rd, rn: reverse the bytes of a W or X register."""
    sf = width_bit(rd, rn)
    return (sf << 31) | 0x5AC00800 | (sf << 10) | (reg_num(rn, sp=False) << 5) | reg_num(rd, sp=False)


def ubfx(rd: Reg, rn: Reg, lsb: int, width: int) -> int:
    """UBFX rd, rn, #lsb, #width: extract `width` bits starting at bit `lsb`."""
    size = 64 if rd.is64 else 32
    if not (0 <= lsb < size and 1 <= width <= size - lsb):
        raise ValueError(f"ubfx field lsb={lsb} width={width} outside a {size}-bit register")
    return ubfm(rd, rn, lsb, lsb + width - 1)


# ---------------------------------------------------------------------------------------------- PC-relative


def adr(rd: Reg, offset: int) -> int:
    """ADR rd, <pc + offset> (offset within +-1 MiB)."""
    if not rd.is64:
        raise ValueError("adr needs a 64-bit register")
    imm = simm(offset, 21, "adr offset")
    return ((imm & 3) << 29) | (0b10000 << 24) | ((imm >> 2) << 5) | reg_num(rd, sp=False)
