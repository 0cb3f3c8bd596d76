"""A64 branch, exception-generating and system encoders (DDI 0487 C4.1 "Branches, Exception Generating and System
instructions"): B, BL, B.cond, CBZ/CBNZ, BR/BLR/RET, MRS, NOP, SVC/HVC/SMC/BRK; each returns one 32-bit instruction
word. PC-relative forms take the byte offset from the instruction's own address to the target.
"""

from __future__ import annotations

from .a64_operands import X30, Reg, SysReg, reg_num, scaled, simm, uimm, width_bit
from .conditions import COND

__all__ = ["b", "bl", "b_cond", "cbz", "cbnz", "br", "blr", "ret", "mrs", "nop", "hvc", "smc", "svc", "brk"]


def b(offset: int) -> int:
    """B <pc + offset> (+-128 MiB)."""
    return (0b000101 << 26) | simm(scaled(offset, 4, "branch offset"), 26, "branch offset / 4")


def bl(offset: int) -> int:
    """BL <pc + offset> (+-128 MiB); sets LR."""
    return (0b100101 << 26) | simm(scaled(offset, 4, "branch offset"), 26, "branch offset / 4")


def b_cond(cond: str, offset: int) -> int:
    """B.<cond> <pc + offset> (+-1 MiB)."""
    if cond not in COND:
        raise ValueError(f"unknown condition {cond!r}; known: {', '.join(COND)}")
    imm19 = simm(scaled(offset, 4, "branch offset"), 19, "branch offset / 4")
    return (0b01010100 << 24) | (imm19 << 5) | COND[cond]


def _compare_branch(op: int, rt: Reg, offset: int) -> int:
    imm19 = simm(scaled(offset, 4, "branch offset"), 19, "branch offset / 4")
    return (width_bit(rt) << 31) | (0b011010 << 25) | (op << 24) | (imm19 << 5) | reg_num(rt, sp=False)


def cbz(rt: Reg, offset: int) -> int:
    return _compare_branch(0, rt, offset)


def cbnz(rt: Reg, offset: int) -> int:
    return _compare_branch(1, rt, offset)


# ------------------------------------------------------------------------------------ branches, system


def _branch_reg(opc: int, rn: Reg) -> int:
    if not rn.is64:
        raise ValueError("branch target register must be 64-bit")
    return 0xD61F0000 | (opc << 21) | (reg_num(rn, sp=False) << 5)


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
        | reg_num(rt, sp=False)
    )


def nop() -> int:
    return 0xD503201F


def _exception(opc: int, ll: int, imm16: int) -> int:
    return 0xD4000000 | (opc << 21) | (uimm(imm16, 16, "imm16") << 5) | ll


def svc(imm16: int = 0) -> int:
    return _exception(0b000, 0b01, imm16)


def hvc(imm16: int = 0) -> int:
    """HVC #imm16 (PSCI conduit at EL1 when the hypervisor implements PSCI)."""
    return _exception(0b000, 0b10, imm16)


def smc(imm16: int = 0) -> int:
    return _exception(0b000, 0b11, imm16)


def brk(imm16: int = 0) -> int:
    return _exception(0b001, 0b00, imm16)
