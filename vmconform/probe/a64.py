"""A64 instruction encoder: the forms the probe needs, each returning one 32-bit instruction word.

Implements encodings from the Arm Architecture Reference Manual for A-profile (DDI 0487), chapter C4
"A64 Instruction Set Encoding" (data processing immediate/register, loads and stores, branches, system).

Registers are `Reg` values (`X0`..`X30`, `W0`..`W30`, `SP`, `WSP`, `XZR`, `WZR`); every encoder checks
that register 31 is used in the role (SP or ZR) that the encoding gives it and that immediates fit, and
raises ValueError otherwise. PC-relative forms (`adr`, `b`, `bl`, `b_cond`, `cbz`, `cbnz`) take the byte
offset from the instruction's own address to the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .conditions import COND

__all__ = [
    "Reg",
    "Index",
    "Shift",
    "SysReg",
    "COND",
    "X",
    "W",
    "SP",
    "WSP",
    "XZR",
    "WZR",
    "X29",
    "X30",
    "FP",
    "LR",
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
    "ldr",
    "ldrh",
    "ldrb",
    "str_",
    "strh",
    "strb",
    "ldp",
    "stp",
    "adr",
    "b",
    "bl",
    "b_cond",
    "cbz",
    "cbnz",
    "br",
    "blr",
    "ret",
    "mrs",
    "nop",
    "hvc",
    "smc",
    "svc",
    "brk",
    "CURRENT_EL",
    "CNTFRQ_EL0",
    "CNTVCT_EL0",
    "MIDR_EL1",
    "ID_AA64PFR0_EL1",
]


@dataclass(frozen=True)
class Reg:
    """A general-purpose register: number 0..31, 64-bit (X) or 32-bit (W) view; 31 is SP or ZR."""

    num: int
    is64: bool
    is_sp: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.num <= 31:
            raise ValueError(f"register number {self.num} out of range 0..31")
        if self.is_sp and self.num != 31:
            raise ValueError("only register 31 can be SP")

    def __str__(self) -> str:
        if self.num == 31:
            if self.is_sp:
                return "sp" if self.is64 else "wsp"
            return "xzr" if self.is64 else "wzr"
        return f"{'x' if self.is64 else 'w'}{self.num}"

    @property
    def w(self) -> Reg:
        """The 32-bit view of this register."""
        return Reg(self.num, False, self.is_sp)

    @property
    def x(self) -> Reg:
        """The 64-bit view of this register."""
        return Reg(self.num, True, self.is_sp)


X = tuple(Reg(n, True) for n in range(31))
W = tuple(Reg(n, False) for n in range(31))
SP = Reg(31, True, is_sp=True)
WSP = Reg(31, False, is_sp=True)
XZR = Reg(31, True)
WZR = Reg(31, False)
X29 = FP = X[29]
X30 = LR = X[30]


class Index(Enum):
    """Addressing mode of a load/store with an immediate offset."""

    OFFSET = "offset"  # [Rn, #imm]: unsigned scaled imm12 (ldr/str), signed scaled imm7 (ldp/stp)
    PRE = "pre"  # [Rn, #imm]!: signed imm9 (ldr/str), signed scaled imm7 (ldp/stp)
    POST = "post"  # [Rn], #imm
    UNSCALED = "unscaled"  # [Rn, #imm] signed unscaled imm9: LDUR/STUR (ldr/str only)


class Shift(Enum):
    LSL = 0
    LSR = 1
    ASR = 2


@dataclass(frozen=True)
class SysReg:
    """A system register by its (op0, op1, CRn, CRm, op2) encoding."""

    name: str
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int

    def __str__(self) -> str:
        return self.name


CURRENT_EL = SysReg("CurrentEL", 3, 0, 4, 2, 2)
CNTFRQ_EL0 = SysReg("CNTFRQ_EL0", 3, 3, 14, 0, 0)
CNTVCT_EL0 = SysReg("CNTVCT_EL0", 3, 3, 14, 0, 2)
MIDR_EL1 = SysReg("MIDR_EL1", 3, 0, 0, 0, 0)
ID_AA64PFR0_EL1 = SysReg("ID_AA64PFR0_EL1", 3, 0, 0, 4, 0)


# ---------------------------------------------------------------------------------------------- helpers


def _gp(reg: Reg, *, sp: bool) -> int:
    """Number of `reg` for an operand slot where register 31 means SP (`sp=True`) or ZR (`sp=False`)."""
    if reg.num == 31 and reg.is_sp != sp:
        raise ValueError(f"{reg} cannot be used here (register 31 means {'SP' if sp else 'ZR'} in this slot)")
    return reg.num


def _sf(*regs: Reg) -> int:
    widths = {r.is64 for r in regs}
    if len(widths) != 1:
        raise ValueError(f"mixed register widths: {', '.join(map(str, regs))}")
    return 1 if regs[0].is64 else 0


def _uimm(value: int, bits: int, what: str) -> int:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{what} {value} does not fit in {bits} unsigned bits")
    return value


def _simm(value: int, bits: int, what: str) -> int:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} out of range {lo}..{hi}")
    return value & ((1 << bits) - 1)


def _scaled(offset: int, scale: int, what: str) -> int:
    if offset % scale:
        raise ValueError(f"{what} {offset} is not a multiple of {scale}")
    return offset // scale


# ---------------------------------------------------------------------------------------------- move wide


def _move_wide(opc: int, rd: Reg, imm16: int, shift: int) -> int:
    sf = _sf(rd)
    if shift not in ((0, 16, 32, 48) if sf else (0, 16)):
        raise ValueError(f"shift {shift} invalid for {rd}")
    return (
        (sf << 31)
        | (opc << 29)
        | (0b100101 << 23)
        | ((shift // 16) << 21)
        | (_uimm(imm16, 16, "imm16") << 5)
        | _gp(rd, sp=False)
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
    sf = _sf(rd, rn)
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
        | (_gp(rn, sp=True) << 5)
        | _gp(rd, sp=not s)
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
    sf = _sf(rd, rn, rm)
    _uimm(amount, 6 if sf else 5, "shift amount")
    return (
        (sf << 31)
        | (op << 30)
        | (s << 29)
        | (0b01011 << 24)
        | (shift.value << 22)
        | (_gp(rm, sp=False) << 16)
        | (amount << 10)
        | (_gp(rn, sp=False) << 5)
        | _gp(rd, sp=False)
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
    sf = _sf(rd, rn)
    n, immr, imms = bitmask_imm(value, 64 if sf else 32)
    return (
        (sf << 31)
        | (opc << 29)
        | (0b100100 << 23)
        | (n << 22)
        | (immr << 16)
        | (imms << 10)
        | (_gp(rn, sp=False) << 5)
        | _gp(rd, sp=opc != 0b11)
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
    sf = _sf(rd, rn, rm)
    _uimm(amount, 6 if sf else 5, "shift amount")
    return (
        (sf << 31)
        | (opc << 29)
        | (0b01010 << 24)
        | (shift.value << 22)
        | (_gp(rm, sp=False) << 16)
        | (amount << 10)
        | (_gp(rn, sp=False) << 5)
        | _gp(rd, sp=False)
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
    sf = _sf(rd, rn)
    bits = 6 if sf else 5
    return (
        (sf << 31)
        | (0b10 << 29)
        | (0b100110 << 23)
        | (sf << 22)
        | (_uimm(immr, bits, "immr") << 16)
        | (_uimm(imms, bits, "imms") << 10)
        | (_gp(rn, sp=False) << 5)
        | _gp(rd, sp=False)
    )


def lsr_imm(rd: Reg, rn: Reg, shift: int) -> int:
    """LSR rd, rn, #shift (UBFM rd, rn, #shift, #width-1)."""
    width = 64 if rd.is64 else 32
    return ubfm(rd, rn, _uimm(shift, 6 if rd.is64 else 5, "shift"), width - 1)


def lsl_imm(rd: Reg, rn: Reg, shift: int) -> int:
    """LSL rd, rn, #shift (UBFM rd, rn, #(-shift mod width), #(width-1-shift))."""
    width = 64 if rd.is64 else 32
    _uimm(shift, 6 if rd.is64 else 5, "shift")
    return ubfm(rd, rn, (-shift) % width, width - 1 - shift)


def rev(rd: Reg, rn: Reg) -> int:
    """REV rd, rn: reverse the bytes of a W or X register."""
    sf = _sf(rd, rn)
    return (sf << 31) | 0x5AC00800 | (sf << 10) | (_gp(rn, sp=False) << 5) | _gp(rd, sp=False)


def ubfx(rd: Reg, rn: Reg, lsb: int, width: int) -> int:
    """UBFX rd, rn, #lsb, #width: extract `width` bits starting at bit `lsb`."""
    size = 64 if rd.is64 else 32
    if not (0 <= lsb < size and 1 <= width <= size - lsb):
        raise ValueError(f"ubfx field lsb={lsb} width={width} outside a {size}-bit register")
    return ubfm(rd, rn, lsb, lsb + width - 1)


# ---------------------------------------------------------------------------------------------- load/store


def _load_store(size: int, load: bool, rt: Reg, rn: Reg, offset: int, index: Index) -> int:
    """LDR/STR (immediate) of 1 << size bytes; size 3 needs an X register, the others a W register."""
    if rt.is64 != (size == 3):
        raise ValueError(f"{rt} does not match a {8 << size}-bit access")
    if not rn.is64:
        raise ValueError(f"base register {rn} must be 64-bit")
    t, n = _gp(rt, sp=False), _gp(rn, sp=True)
    if index in (Index.PRE, Index.POST) and t == n != 31:
        raise ValueError(f"writeback with {rt} as both data and base register is CONSTRAINED UNPREDICTABLE")
    opc = 1 if load else 0
    if index is Index.OFFSET:
        imm12 = _uimm(_scaled(offset, 1 << size, "offset"), 12, "scaled offset")
        return (size << 30) | (0b111001 << 24) | (opc << 22) | (imm12 << 10) | (n << 5) | t
    idx = {Index.UNSCALED: 0b00, Index.POST: 0b01, Index.PRE: 0b11}[index]
    return (
        (size << 30) | (0b111000 << 24) | (opc << 22) | (_simm(offset, 9, "offset") << 12) | (idx << 10) | (n << 5) | t
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
    sf = _sf(rt1, rt2)
    if not rn.is64:
        raise ValueError(f"base register {rn} must be 64-bit")
    kind = {Index.OFFSET: 0b010, Index.PRE: 0b011, Index.POST: 0b001}.get(index)
    if kind is None:
        raise ValueError(f"ldp/stp have no {index.value} form")
    t1, t2, n = _gp(rt1, sp=False), _gp(rt2, sp=False), _gp(rn, sp=True)
    if load and t1 == t2:
        raise ValueError(f"ldp with {rt1} twice is CONSTRAINED UNPREDICTABLE")
    if index is not Index.OFFSET and n in (t1, t2) and n != 31:
        raise ValueError(f"writeback with base {rn} also a data register is CONSTRAINED UNPREDICTABLE")
    imm7 = _simm(_scaled(offset, 8 if sf else 4, "pair offset"), 7, "scaled pair offset")
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


# ---------------------------------------------------------------------------------------------- PC-relative


def adr(rd: Reg, offset: int) -> int:
    """ADR rd, <pc + offset> (offset within +-1 MiB)."""
    if not rd.is64:
        raise ValueError("adr needs a 64-bit register")
    imm = _simm(offset, 21, "adr offset")
    return ((imm & 3) << 29) | (0b10000 << 24) | ((imm >> 2) << 5) | _gp(rd, sp=False)


def b(offset: int) -> int:
    """B <pc + offset> (+-128 MiB)."""
    return (0b000101 << 26) | _simm(_scaled(offset, 4, "branch offset"), 26, "branch offset / 4")


def bl(offset: int) -> int:
    """BL <pc + offset> (+-128 MiB); sets LR."""
    return (0b100101 << 26) | _simm(_scaled(offset, 4, "branch offset"), 26, "branch offset / 4")


def b_cond(cond: str, offset: int) -> int:
    """B.<cond> <pc + offset> (+-1 MiB)."""
    if cond not in COND:
        raise ValueError(f"unknown condition {cond!r}; known: {', '.join(COND)}")
    imm19 = _simm(_scaled(offset, 4, "branch offset"), 19, "branch offset / 4")
    return (0b01010100 << 24) | (imm19 << 5) | COND[cond]


def _compare_branch(op: int, rt: Reg, offset: int) -> int:
    imm19 = _simm(_scaled(offset, 4, "branch offset"), 19, "branch offset / 4")
    return (_sf(rt) << 31) | (0b011010 << 25) | (op << 24) | (imm19 << 5) | _gp(rt, sp=False)


def cbz(rt: Reg, offset: int) -> int:
    return _compare_branch(0, rt, offset)


def cbnz(rt: Reg, offset: int) -> int:
    return _compare_branch(1, rt, offset)


# ------------------------------------------------------------------------------------ branches, system


def _branch_reg(opc: int, rn: Reg) -> int:
    if not rn.is64:
        raise ValueError("branch target register must be 64-bit")
    return 0xD61F0000 | (opc << 21) | (_gp(rn, sp=False) << 5)


def br(rn: Reg) -> int:
    return _branch_reg(0b00, rn)


def blr(rn: Reg) -> int:
    return _branch_reg(0b01, rn)


def ret(rn: Reg = X30) -> int:
    return _branch_reg(0b10, rn)


def mrs(rt: Reg, sysreg: SysReg) -> int:
    """MRS Xt, <sysreg>."""
    if not rt.is64:
        raise ValueError("mrs needs a 64-bit register")
    return (
        0xD5200000
        | (sysreg.op0 << 19)
        | (sysreg.op1 << 16)
        | (sysreg.crn << 12)
        | (sysreg.crm << 8)
        | (sysreg.op2 << 5)
        | _gp(rt, sp=False)
    )


def nop() -> int:
    return 0xD503201F


def _exception(opc: int, ll: int, imm16: int) -> int:
    return 0xD4000000 | (opc << 21) | (_uimm(imm16, 16, "imm16") << 5) | ll


def svc(imm16: int = 0) -> int:
    return _exception(0b000, 0b01, imm16)


def hvc(imm16: int = 0) -> int:
    """HVC #imm16 (PSCI conduit at EL1 when the hypervisor implements PSCI)."""
    return _exception(0b000, 0b10, imm16)


def smc(imm16: int = 0) -> int:
    return _exception(0b000, 0b11, imm16)


def brk(imm16: int = 0) -> int:
    return _exception(0b001, 0b00, imm16)
