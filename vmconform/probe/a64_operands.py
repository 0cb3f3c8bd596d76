"""A64 operands: general-purpose registers (`X0`..`X30`, `W0`..`W30`, `SP`, `WSP`, `XZR`, `WZR`), load/store
addressing modes, register shifts, the system registers the probe reads, and the checks every A64 encoder makes on
its fields (Arm Architecture Reference Manual for A-profile, DDI 0487, chapter C4 "A64 Instruction Set Encoding").

Register 31 is SP or ZR depending on the operand slot: `reg_num` raises ValueError when a register is used in the
role the encoding does not give it; `uimm`, `simm` and `scaled` raise ValueError when an immediate does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "Reg",
    "Index",
    "Shift",
    "SysReg",
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
    "CURRENT_EL",
    "CNTFRQ_EL0",
    "CNTVCT_EL0",
    "MIDR_EL1",
    "ID_AA64PFR0_EL1",
    "reg_num",
    "scaled",
    "simm",
    "uimm",
    "width_bit",
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


def reg_num(reg: Reg, *, sp: bool) -> int:
    """Number of `reg` for an operand slot where register 31 means SP (`sp=True`) or ZR (`sp=False`)."""
    if reg.num == 31 and reg.is_sp != sp:
        raise ValueError(f"{reg} cannot be used here (register 31 means {'SP' if sp else 'ZR'} in this slot)")
    return reg.num


def width_bit(*regs: Reg) -> int:
    widths = {r.is64 for r in regs}
    if len(widths) != 1:
        raise ValueError(f"mixed register widths: {', '.join(map(str, regs))}")
    return 1 if regs[0].is64 else 0


def uimm(value: int, bits: int, what: str) -> int:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{what} {value} does not fit in {bits} unsigned bits")
    return value


def simm(value: int, bits: int, what: str) -> int:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} out of range {lo}..{hi}")
    return value & ((1 << bits) - 1)


def scaled(offset: int, scale: int, what: str) -> int:
    if offset % scale:
        raise ValueError(f"{what} {offset} is not a multiple of {scale}")
    return offset // scale
