"""A32 operands: the registers `R[0]`..`R[15]` (`SP`, `LR`, `PC`, printed as the disassembler names them: r9 = sb,
r10 = sl, r11 = fp, r12 = ip), register shifts, the CP15 registers the probe reads, and the checks every A32 encoder
makes (Arm Architecture Reference Manual ARMv7-A and ARMv7-R edition, DDI 0406C, chapter A5 "ARM Instruction Set
Encoding"): `cond_bits` (every instruction takes `cond`, default "al"), `uimm`, and `not_pc` for what the architecture
makes UNPREDICTABLE; each raises ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .conditions import COND

__all__ = [
    "Reg",
    "R",
    "SP",
    "LR",
    "PC",
    "Shift",
    "Coproc",
    "CNTFRQ",
    "CNTVCT",
    "MIDR",
    "ID_PFR1",
    "cond_bits",
    "not_pc",
    "uimm",
]


_NAMES = ("r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "sb", "sl", "fp", "ip", "sp", "lr", "pc")


@dataclass(frozen=True)
class Reg:
    num: int

    def __post_init__(self) -> None:
        if not 0 <= self.num <= 15:
            raise ValueError(f"register number {self.num} out of range 0..15")

    def __str__(self) -> str:
        return _NAMES[self.num]


R = tuple(Reg(n) for n in range(16))
SP, LR, PC = R[13], R[14], R[15]


class Shift(Enum):
    LSL = 0
    LSR = 1
    ASR = 2
    ROR = 3


def cond_bits(cond: str) -> int:
    if cond not in COND:
        raise ValueError(f"unknown condition {cond!r}; known: {', '.join(COND)}")
    return COND[cond] << 28


def uimm(value: int, bits: int, what: str) -> int:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{what} {value} does not fit in {bits} unsigned bits")
    return value


def not_pc(*regs: Reg) -> None:
    for reg in regs:
        if reg.num == 15:
            raise ValueError(f"{reg} is UNPREDICTABLE here")


@dataclass(frozen=True)
class Coproc:
    """A CP15 register for MRC (32-bit: opc1, CRn, CRm, opc2) or MRRC (64-bit: opc1, CRm; crn/opc2 unused)."""

    name: str
    opc1: int
    crn: int
    crm: int
    opc2: int
    wide: bool = False

    def __str__(self) -> str:
        return self.name


CNTFRQ = Coproc("CNTFRQ", 0, 14, 0, 0)
CNTVCT = Coproc("CNTVCT", 1, 0, 14, 0, wide=True)
MIDR = Coproc("MIDR", 0, 0, 0, 0)
ID_PFR1 = Coproc("ID_PFR1", 0, 0, 1, 1)
