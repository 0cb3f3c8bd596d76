"""A32 instruction encoder: the forms the Arm (AArch32) probe needs, each returning one 32-bit word.

Implements encodings from the Arm Architecture Reference Manual ARMv7-A and ARMv7-R edition (DDI 0406C),
chapter A5 "ARM Instruction Set Encoding" (data processing, modified immediates A5.2.4, load/store
word/byte and halfword, block transfer, branches, coprocessor and status-register moves).

Registers are `Reg` values `R[0]`..`R[15]` (`SP`, `LR`, `PC`), printed as the disassembler names them
(r9 = sb, r10 = sl, r11 = fp, r12 = ip). Every instruction takes `cond` (default "al"). PC-relative forms
(`b`, `bl`, `adr_far`) take the byte offset from the instruction's own address to the target and
account for the PC reading 8 bytes ahead themselves. Encoders check operands and raise ValueError for
what the encoding cannot express or the architecture makes UNPREDICTABLE.
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
    "COND",
    "Coproc",
    "modified_imm",
    "encodable",
    "and_",
    "eor",
    "sub",
    "rsb",
    "add",
    "orr",
    "bic",
    "mov",
    "mvn",
    "cmp",
    "cmn",
    "tst",
    "lsl",
    "lsr",
    "movw",
    "movt",
    "rev",
    "ldr",
    "str_",
    "ldrb",
    "strb",
    "ldrh",
    "strh",
    "push",
    "pop",
    "b",
    "bl",
    "bx",
    "blx",
    "adr_far",
    "mrs_cpsr",
    "mrc",
    "mrrc",
    "nop",
    "udf",
    "CNTFRQ",
    "CNTVCT",
    "MIDR",
    "ID_PFR1",
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


def _cond(cond: str) -> int:
    if cond not in COND:
        raise ValueError(f"unknown condition {cond!r}; known: {', '.join(COND)}")
    return COND[cond] << 28


def _uimm(value: int, bits: int, what: str) -> int:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{what} {value} does not fit in {bits} unsigned bits")
    return value


def _not_pc(*regs: Reg) -> None:
    for reg in regs:
        if reg.num == 15:
            raise ValueError(f"{reg} is UNPREDICTABLE here")


# ---------------------------------------------------------------------------------------------- data processing


def modified_imm(value: int) -> int | None:
    """The 12-bit rotate:imm8 field encoding the 32-bit `value` (A5.2.4), or None if there is none."""
    value &= 0xFFFF_FFFF
    for rot in range(16):
        imm8 = ((value << (2 * rot)) | (value >> (32 - 2 * rot))) & 0xFFFF_FFFF if rot else value
        if imm8 < 256:
            return (rot << 8) | imm8
    return None


def encodable(value: int) -> bool:
    """Whether `value` is an A32 modified immediate."""
    return modified_imm(value) is not None


Operand2 = int | Reg | tuple[Reg, Shift, int]


def _operand2(op2: Operand2) -> int:
    """I bit (25) and the 12-bit shifter operand: an immediate, a register, or (register, shift, amount)."""
    if isinstance(op2, int):
        field = modified_imm(op2)
        if field is None or not -(1 << 31) <= op2 < (1 << 32):
            raise ValueError(f"{op2:#x} is not an A32 modified immediate (an 8-bit value rotated by an even amount)")
        return (1 << 25) | field
    rm, shift, amount = (op2, Shift.LSL, 0) if isinstance(op2, Reg) else op2
    if shift is Shift.LSL:
        _uimm(amount, 5, "LSL amount")
    elif not 1 <= amount <= 32:
        raise ValueError(f"{shift.name} amount {amount} out of range 1..32")
    return ((amount & 31) << 7) | (shift.value << 5) | rm.num


def _dp(opcode: int, s: int, rd: int, rn: int, op2: Operand2, cond: str) -> int:
    return _cond(cond) | (opcode << 21) | (s << 20) | (rn << 16) | (rd << 12) | _operand2(op2)


def and_(rd: Reg, rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b0000, 0, rd.num, rn.num, op2, cond)


def eor(rd: Reg, rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b0001, 0, rd.num, rn.num, op2, cond)


def sub(rd: Reg, rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b0010, 0, rd.num, rn.num, op2, cond)


def rsb(rd: Reg, rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b0011, 0, rd.num, rn.num, op2, cond)


def add(rd: Reg, rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b0100, 0, rd.num, rn.num, op2, cond)


def orr(rd: Reg, rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b1100, 0, rd.num, rn.num, op2, cond)


def bic(rd: Reg, rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b1110, 0, rd.num, rn.num, op2, cond)


def mov(rd: Reg, op2: Operand2, cond: str = "al") -> int:
    """MOV rd, #imm / rd, rm / rd, rm, <shift> #n (the shifted forms are the LSL/LSR/... aliases)."""
    return _dp(0b1101, 0, rd.num, 0, op2, cond)


def mvn(rd: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b1111, 0, rd.num, 0, op2, cond)


def cmp(rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b1010, 1, 0, rn.num, op2, cond)


def cmn(rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b1011, 1, 0, rn.num, op2, cond)


def tst(rn: Reg, op2: Operand2, cond: str = "al") -> int:
    return _dp(0b1000, 1, 0, rn.num, op2, cond)


def lsl(rd: Reg, rm: Reg, amount: int, cond: str = "al") -> int:
    """LSL rd, rm, #amount (MOV rd, rm, LSL #amount), amount 1..31."""
    if not 1 <= amount <= 31:
        raise ValueError(f"LSL amount {amount} out of range 1..31")
    return mov(rd, (rm, Shift.LSL, amount), cond)


def lsr(rd: Reg, rm: Reg, amount: int, cond: str = "al") -> int:
    """LSR rd, rm, #amount (MOV rd, rm, LSR #amount), amount 1..32."""
    return mov(rd, (rm, Shift.LSR, amount), cond)


def _wide(op: int, rd: Reg, imm16: int, cond: str) -> int:
    _not_pc(rd)
    _uimm(imm16, 16, "imm16")
    return _cond(cond) | (op << 20) | ((imm16 >> 12) << 16) | (rd.num << 12) | (imm16 & 0xFFF)


def movw(rd: Reg, imm16: int, cond: str = "al") -> int:
    """MOVW rd, #imm16 (rd = imm16, upper half cleared)."""
    return _wide(0b00110000, rd, imm16, cond)


def movt(rd: Reg, imm16: int, cond: str = "al") -> int:
    """MOVT rd, #imm16 (upper half of rd = imm16)."""
    return _wide(0b00110100, rd, imm16, cond)


def rev(rd: Reg, rm: Reg, cond: str = "al") -> int:
    """REV rd, rm: byte-reverse a word."""
    _not_pc(rd, rm)
    return _cond(cond) | 0x06BF0F30 | (rd.num << 12) | rm.num


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
        _cond(cond)
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
    _not_pc(rt)
    u, imm8 = _offset_bits(offset, 8, "ldrh/strh")
    return (
        _cond(cond)
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
    return _cond(cond) | 0x092D0000 | mask


def pop(*regs: Reg, cond: str = "al") -> int:
    """POP {regs} (LDMIA sp!, {regs}); popping pc interworks (returns to Thumb callers)."""
    mask = _register_list(regs)
    if mask & (1 << 14) and mask & (1 << 15):
        raise ValueError("pop {lr, pc} is UNPREDICTABLE")
    return _cond(cond) | 0x08BD0000 | mask


# ---------------------------------------------------------------------------------------------- branches


def _branch(link: int, offset: int, cond: str) -> int:
    if offset % 4:
        raise ValueError(f"branch offset {offset} is not a multiple of 4")
    imm = (offset - 8) >> 2  # PC reads 8 bytes ahead
    if not -(1 << 23) <= imm < (1 << 23):
        raise ValueError(f"branch offset {offset} out of range +-32 MiB")
    return _cond(cond) | (0b101 << 25) | (link << 24) | (imm & 0xFF_FFFF)


def b(offset: int, cond: str = "al") -> int:
    """B<cond> <pc + offset> (offset from this instruction)."""
    return _branch(0, offset, cond)


def bl(offset: int, cond: str = "al") -> int:
    return _branch(1, offset, cond)


def bx(rm: Reg, cond: str = "al") -> int:
    """BX rm: branch, state from bit 0 of rm."""
    return _cond(cond) | 0x012FFF10 | rm.num


def blx(rm: Reg, cond: str = "al") -> int:
    """BLX rm: call, state from bit 0 of rm (firmware functions are Thumb code)."""
    _not_pc(rm)
    return _cond(cond) | 0x012FFF30 | rm.num


def adr_far(rd: Reg, offset: int) -> bytes:
    """rd = <address of this sequence + offset>: ADD/SUB rd, pc, #hi ; ADD/SUB rd, rd, #lo (8 bytes, +-64 KiB).

    A single A32 ADR only takes a modified immediate; this fixed pair reaches any offset whose distance
    from pc+8 is below 64 KiB, and keeps the size known before layout.
    """
    _not_pc(rd)
    distance = offset - 8
    if not -0xFFFF <= distance <= 0xFFFF:
        raise ValueError(f"adr_far offset {offset} out of range (pc+8 +- 64 KiB)")
    op = add if distance >= 0 else sub
    distance = abs(distance)
    first = op(rd, PC, distance & 0xFF00)
    second = op(rd, rd, distance & 0xFF)
    return first.to_bytes(4, "little") + second.to_bytes(4, "little")


# ---------------------------------------------------------------------------------------------- system


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


def mrs_cpsr(rd: Reg, cond: str = "al") -> int:
    """MRS rd, CPSR (the mode field tells the privilege level; 0x13 = SVC, PL1)."""
    _not_pc(rd)
    return _cond(cond) | 0x010F0000 | (rd.num << 12)


def mrc(rt: Reg, reg: Coproc, cond: str = "al") -> int:
    """MRC p15, opc1, rt, CRn, CRm, opc2: read a 32-bit CP15 register."""
    if reg.wide:
        raise ValueError(f"{reg} is 64-bit: use mrrc")
    _not_pc(rt)
    return (
        _cond(cond)
        | 0x0E100F10
        | (_uimm(reg.opc1, 3, "opc1") << 21)
        | (_uimm(reg.crn, 4, "CRn") << 16)
        | (rt.num << 12)
        | (_uimm(reg.opc2, 3, "opc2") << 5)
        | _uimm(reg.crm, 4, "CRm")
    )


def mrrc(rt: Reg, rt2: Reg, reg: Coproc, cond: str = "al") -> int:
    """MRRC p15, opc1, rt, rt2, CRm: read a 64-bit CP15 register (rt = low word, rt2 = high word)."""
    if not reg.wide:
        raise ValueError(f"{reg} is 32-bit: use mrc")
    _not_pc(rt, rt2)
    if rt == rt2:
        raise ValueError("mrrc with the same register twice is UNPREDICTABLE")
    return (
        _cond(cond)
        | 0x0C500F00
        | (rt2.num << 16)
        | (rt.num << 12)
        | (_uimm(reg.opc1, 4, "opc1") << 4)
        | _uimm(reg.crm, 4, "CRm")
    )


def nop(cond: str = "al") -> int:
    return _cond(cond) | 0x0320F000


def udf(imm16: int = 0) -> int:
    """UDF #imm16: permanently undefined."""
    _uimm(imm16, 16, "imm16")
    return 0xE7F000F0 | ((imm16 >> 4) << 8) | (imm16 & 0xF)
