"""A32 data-processing encoders (DDI 0406C A5.2, modified immediates A5.2.4): AND/EOR/SUB/RSB/ADD/ORR/BIC/MOV/MVN,
CMP/CMN/TST, LSL/LSR, MOVW/MOVT, REV, and `adr_far` (an ADD/SUB pair reaching pc+8 +- 64 KiB, taking the byte offset
from its own address); each returns one 32-bit word (`adr_far`: 8 bytes), raising ValueError for operands the
encoding cannot express.
"""

from __future__ import annotations

from .a32_operands import PC, Reg, Shift, cond_bits, not_pc, uimm

__all__ = [
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
    "adr_far",
]


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
        uimm(amount, 5, "LSL amount")
    elif not 1 <= amount <= 32:
        raise ValueError(f"{shift.name} amount {amount} out of range 1..32")
    return ((amount & 31) << 7) | (shift.value << 5) | rm.num


def _dp(opcode: int, s: int, rd: int, rn: int, op2: Operand2, cond: str) -> int:
    return cond_bits(cond) | (opcode << 21) | (s << 20) | (rn << 16) | (rd << 12) | _operand2(op2)


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
    not_pc(rd)
    uimm(imm16, 16, "imm16")
    return cond_bits(cond) | (op << 20) | ((imm16 >> 12) << 16) | (rd.num << 12) | (imm16 & 0xFFF)


def movw(rd: Reg, imm16: int, cond: str = "al") -> int:
    """MOVW rd, #imm16 (rd = imm16, upper half cleared)."""
    return _wide(0b00110000, rd, imm16, cond)


def movt(rd: Reg, imm16: int, cond: str = "al") -> int:
    """MOVT rd, #imm16 (upper half of rd = imm16)."""
    return _wide(0b00110100, rd, imm16, cond)


def rev(rd: Reg, rm: Reg, cond: str = "al") -> int:
    """REV rd, rm: byte-reverse a word."""
    not_pc(rd, rm)
    return cond_bits(cond) | 0x06BF0F30 | (rd.num << 12) | rm.num


def adr_far(rd: Reg, offset: int) -> bytes:
    """rd = <address of this sequence + offset>: ADD/SUB rd, pc, #hi ; ADD/SUB rd, rd, #lo (8 bytes, +-64 KiB).

    A single A32 ADR only takes a modified immediate; this fixed pair reaches any offset whose distance
    from pc+8 is below 64 KiB, and keeps the size known before layout.
    """
    not_pc(rd)
    distance = offset - 8
    if not -0xFFFF <= distance <= 0xFFFF:
        raise ValueError(f"adr_far offset {offset} out of range (pc+8 +- 64 KiB)")
    op = add if distance >= 0 else sub
    distance = abs(distance)
    first = op(rd, PC, distance & 0xFF00)
    second = op(rd, rd, distance & 0xFF)
    return first.to_bytes(4, "little") + second.to_bytes(4, "little")
