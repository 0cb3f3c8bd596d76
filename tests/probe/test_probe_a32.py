"""Every A32 form the encoder emits, checked against capstone (an independent disassembler)."""

from __future__ import annotations

import re

import capstone
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vmconform.probe import a32_branch, a32_dataproc, a32_loadstore, conditions
from vmconform.probe.a32_operands import CNTFRQ, CNTVCT, ID_PFR1, LR, MIDR, PC, SP, R, Reg, Shift

PC_ADDR = 0x100000
_MD = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM)
_HEX = re.compile(r"#(-?)0x([0-9a-f]+)")


def disasm(code: int | bytes, pc: int = PC_ADDR) -> str:
    """capstone's text for the word(s), immediates as decimal; several instructions joined with '; '."""
    data = code if isinstance(code, bytes) else code.to_bytes(4, "little")
    insns = list(_MD.disasm(data, pc))
    assert sum(i.size for i in insns) == len(data), f"capstone cannot decode {data.hex()}"
    return "; ".join(_HEX.sub(lambda m: f"#{m[1]}{int(m[2], 16)}", f"{i.mnemonic} {i.op_str}".strip()) for i in insns)


CASES: list[tuple[int | bytes, str]] = [
    # data processing, modified immediates (rotations), registers, shifted registers, conditions
    (a32_dataproc.add(R[0], R[1], 0xFF000000), "add r0, r1, #4278190080"),
    (a32_dataproc.add(R[2], SP, 0x110), "add r2, sp, #272"),
    (a32_dataproc.add(R[3], R[2], (R[1], Shift.LSL, 1)), "add r3, r2, r1, lsl #1"),
    (a32_dataproc.add(R[3], R[0], R[1]), "add r3, r0, r1"),
    (a32_dataproc.add(R[4], R[4], 7, "hs"), "addhs r4, r4, #7"),
    (a32_dataproc.sub(SP, SP, 264), "sub sp, sp, #264"),
    (a32_dataproc.sub(R[7], R[8], (R[10], Shift.ASR, 31)), "sub r7, r8, sl, asr #31"),
    (a32_dataproc.rsb(R[0], R[0], 0), "rsb r0, r0, #0"),
    (a32_dataproc.and_(R[4], R[0], 0xF), "and r4, r0, #15"),
    (a32_dataproc.and_(R[0], R[1], 0xF, "eq"), "andeq r0, r1, #15"),
    (a32_dataproc.eor(R[11], R[12], R[7]), "eor fp, ip, r7"),
    (a32_dataproc.orr(R[0], R[0], (R[1], Shift.LSL, 8)), "orr r0, r0, r1, lsl #8"),
    (a32_dataproc.bic(R[0], R[1], 0xF), "bic r0, r1, #15"),
    (a32_dataproc.mov(R[0], 0x10), "mov r0, #16"),
    (a32_dataproc.mov(R[1], 64, "hi"), "movhi r1, #64"),
    (a32_dataproc.mov(R[12], SP), "mov ip, sp"),
    (a32_dataproc.mov(R[4], R[0]), "mov r4, r0"),
    (a32_dataproc.mov(R[0], (R[1], Shift.ROR, 8)), "ror r0, r1, #8"),
    (a32_dataproc.mov(R[0], (R[1], Shift.ASR, 1)), "asr r0, r1, #1"),
    (a32_dataproc.mvn(R[7], 0), "mvn r7, #0"),
    (a32_dataproc.mvn(R[7], 0xFF00), "mvn r7, #65280"),
    (a32_dataproc.cmp(R[7], 0), "cmp r7, #0"),
    (a32_dataproc.cmp(R[3], R[2]), "cmp r3, r2"),
    (a32_dataproc.cmp(R[7], 0x3FC), "cmp r7, #1020"),
    (a32_dataproc.cmn(R[1], 1), "cmn r1, #1"),
    (a32_dataproc.tst(R[1], 1), "tst r1, #1"),
    (a32_dataproc.lsl(R[2], R[3], 4), "lsl r2, r3, #4"),
    (a32_dataproc.lsl(R[7], R[7], 31), "lsl r7, r7, #31"),
    (a32_dataproc.lsr(R[0], R[0], 4), "lsr r0, r0, #4"),
    (a32_dataproc.lsr(R[2], R[3], 32), "lsr r2, r3, #32"),
    (a32_dataproc.movw(R[7], 0xFFFF), "movw r7, #65535"),
    (a32_dataproc.movw(R[0], 0), "movw r0, #0"),
    (a32_dataproc.movt(R[7], 0x8000), "movt r7, #32768"),
    (a32_dataproc.rev(R[7], R[7]), "rev r7, r7"),
    # loads and stores: offset, pre-index with writeback, post-index; word, byte, halfword
    (a32_loadstore.ldr(R[6], R[5], 44), "ldr r6, [r5, #44]"),
    (a32_loadstore.ldr(R[0], SP), "ldr r0, [sp]"),
    (a32_loadstore.ldr(R[0], R[1], -4095), "ldr r0, [r1, #-4095]"),
    (a32_loadstore.ldr(R[0], SP, -4, writeback=True), "ldr r0, [sp, #-4]!"),
    (a32_loadstore.ldr(R[0], R[1], 4, pre=False), "ldr r0, [r1], #4"),
    (a32_loadstore.str_(R[0], SP, 4092), "str r0, [sp, #4092]"),
    (a32_loadstore.str_(R[7], SP, 0x10), "str r7, [sp, #16]"),
    (a32_loadstore.ldrb(R[4], R[0], 1, False), "ldrb r4, [r0], #1"),
    (a32_loadstore.ldrb(R[7], R[7], 15), "ldrb r7, [r7, #15]"),
    (a32_loadstore.strb(R[0], R[1], 4095), "strb r0, [r1, #4095]"),
    (a32_loadstore.ldrh(R[0], R[1], -255), "ldrh r0, [r1, #-255]"),
    (a32_loadstore.ldrh(R[7], R[7], 2), "ldrh r7, [r7, #2]"),
    (a32_loadstore.strh(R[4], R[3]), "strh r4, [r3]"),
    (a32_loadstore.strh(R[4], R[3], -2, True, True), "strh r4, [r3, #-2]!"),
    (a32_loadstore.strh(R[5], R[2], 2, False), "strh r5, [r2], #2"),
    (a32_loadstore.push(R[4], R[5], R[6], R[7], R[8], R[10], R[11], LR), "push {r4, r5, r6, r7, r8, sl, fp, lr}"),
    (a32_loadstore.push(R[4], LR), "push {r4, lr}"),
    (a32_loadstore.pop(R[4], PC), "pop {r4, pc}"),
    (a32_loadstore.pop(R[4], R[5], R[7], PC), "pop {r4, r5, r7, pc}"),
    # branches: offsets from the instruction (capstone shows the target address)
    (a32_branch.b(0), f"b #{PC_ADDR}"),
    (a32_branch.b(-8, "ne"), f"bne #{PC_ADDR - 8}"),
    (a32_branch.b(0x100, "ls"), f"bls #{PC_ADDR + 0x100}"),
    (a32_branch.bl(0x1000), f"bl #{PC_ADDR + 0x1000}"),
    (a32_branch.bl(-0x100000), f"bl #{PC_ADDR - 0x100000}"),
    (a32_branch.blx(R[12]), "blx ip"),
    (a32_branch.bx(LR), "bx lr"),
    # the fixed PC-relative address sequence (targets from the sequence's own address)
    (a32_dataproc.adr_far(R[1], 0x1234), "add r1, pc, #4608; add r1, r1, #44"),
    (a32_dataproc.adr_far(R[1], -0x1234), "sub r1, pc, #4608; sub r1, r1, #60"),
    (a32_dataproc.adr_far(R[7], 8), "add r7, pc, #0; add r7, r7, #0"),
    # system registers
    (a32_branch.mrs_cpsr(R[7]), "mrs r7, apsr"),
    (a32_branch.mrc(R[7], CNTFRQ), "mrc p15, #0, r7, c14, c0, #0"),
    (a32_branch.mrc(R[7], MIDR), "mrc p15, #0, r7, c0, c0, #0"),
    (a32_branch.mrc(R[7], ID_PFR1), "mrc p15, #0, r7, c0, c1, #1"),
    (a32_branch.mrrc(R[7], R[8], CNTVCT), "mrrc p15, #1, r7, r8, c14"),
    (a32_branch.nop(), "nop"),
    (a32_branch.udf(0x1234), "udf #4660"),
]


@pytest.mark.parametrize(("code", "expected"), CASES, ids=[text for _, text in CASES])
def test_encoding_matches_capstone(code: int | bytes, expected: str) -> None:
    assert disasm(code) == expected


@given(value=st.integers(0, 255), rotation=st.integers(0, 15), rd=st.sampled_from(R[:13]))
def test_every_modified_immediate(value: int, rotation: int, rd: Reg) -> None:
    imm = ((value >> (2 * rotation)) | (value << (32 - 2 * rotation))) & 0xFFFFFFFF if rotation else value
    assert a32_dataproc.encodable(imm)
    assert disasm(a32_dataproc.mov(rd, imm)) == f"mov {rd}, #{imm}"


@given(value=st.integers(0, 0xFFFFFFFF))
def test_modified_immediate_decides_like_capstone(value: int) -> None:
    if a32_dataproc.encodable(value):
        assert disasm(a32_dataproc.cmp(R[0], value)) == f"cmp r0, #{value}"
    else:
        with pytest.raises(ValueError, match="modified immediate"):
            a32_dataproc.cmp(R[0], value)


@given(offset=st.integers(-0xFFFF + 8, 0xFFFF + 8), rd=st.sampled_from(R[:13]))
def test_adr_far_reaches_its_target(offset: int, rd: Reg) -> None:
    """The sequence computes its own address + offset (pc reads 8 ahead), checked by evaluating capstone's view."""
    first, second = disasm(a32_dataproc.adr_far(rd, offset)).split("; ")
    op1, _, imm1 = first.partition(f" {rd}, pc, #")
    op2, _, imm2 = second.partition(f" {rd}, {rd}, #")
    sign = 1 if op1 == "add" else -1
    assert op1 == op2 and op1 in ("add", "sub")
    assert PC_ADDR + 8 + sign * (int(imm1) + int(imm2)) == PC_ADDR + offset


@given(
    words=st.integers(-(1 << 23) + 2, (1 << 23) - 1), cond=st.sampled_from(sorted(set(conditions.COND) - {"cs", "cc"}))
)
def test_branch_any_offset(words: int, cond: str) -> None:
    mnemonic = "b" if cond == "al" else f"b{cond}"
    assert disasm(a32_branch.b(4 * words, cond)) == f"{mnemonic} #{(PC_ADDR + 4 * words) & 0xFFFFFFFF}"


@given(rt=st.sampled_from(R[:13]), rn=st.sampled_from((*R[:13], SP)), offset=st.integers(-4095, 4095),
       op=st.sampled_from(("ldr", "str", "ldrb", "strb")))  # fmt: skip
def test_word_byte_offsets(rt: Reg, rn: Reg, offset: int, op: str) -> None:
    fn = {"ldr": a32_loadstore.ldr, "str": a32_loadstore.str_, "ldrb": a32_loadstore.ldrb, "strb": a32_loadstore.strb}[
        op
    ]
    mem = f"[{rn}]" if offset == 0 else f"[{rn}, #{offset}]"
    assert disasm(fn(rt, rn, offset)) == f"{op} {rt}, {mem}"


@given(rt=st.sampled_from(R[:13]), rn=st.sampled_from(R[:13]), offset=st.integers(-255, 255),
       op=st.sampled_from(("ldrh", "strh")), pre=st.booleans())  # fmt: skip
def test_halfword_offsets(rt: Reg, rn: Reg, offset: int, op: str, pre: bool) -> None:
    assume(pre or rt != rn)
    fn = a32_loadstore.ldrh if op == "ldrh" else a32_loadstore.strh
    if pre:
        mem = f"[{rn}]" if offset == 0 else f"[{rn}, #{offset}]"
    else:
        mem = f"[{rn}], #{offset}"
    assert disasm(fn(rt, rn, offset, pre)) == f"{op} {rt}, {mem}"


@pytest.mark.parametrize(
    "encode",
    [
        lambda: a32_dataproc.mov(R[0], 0x101),  # not a modified immediate
        lambda: a32_dataproc.add(R[0], R[1], (R[2], Shift.LSL, 32)),
        lambda: a32_dataproc.mov(R[0], (R[1], Shift.LSR, 0)),
        lambda: a32_loadstore.ldr(R[0], R[1], 4096),
        lambda: a32_loadstore.ldrh(R[0], R[1], 256),
        lambda: a32_loadstore.ldr(R[1], R[1], 4, writeback=True),  # writeback onto the data register
        lambda: a32_loadstore.ldr(R[1], R[2], 4, pre=False, writeback=True),
        lambda: a32_loadstore.push(R[4]),
        lambda: a32_loadstore.push(R[4], PC),
        lambda: a32_loadstore.push(R[4], SP),
        lambda: a32_loadstore.pop(LR, PC),
        lambda: a32_loadstore.push(R[4], R[4]),
        lambda: a32_branch.b(2),
        lambda: a32_branch.b((1 << 25) + 8),  # pc + 8 + 32 MiB
        lambda: a32_branch.b(0, "xx"),
        lambda: a32_branch.blx(PC),
        lambda: a32_dataproc.adr_far(R[0], 0x10008),
        lambda: a32_dataproc.adr_far(PC, 0),
        lambda: a32_dataproc.movw(R[0], 0x10000),
        lambda: a32_dataproc.movt(PC, 1),
        lambda: a32_branch.mrc(R[0], CNTVCT),
        lambda: a32_branch.mrrc(R[0], R[1], CNTFRQ),
        lambda: a32_branch.mrrc(R[0], R[0], CNTVCT),
        lambda: a32_branch.udf(0x10000),
        lambda: Reg(16),
    ],
)
def test_invalid_operands_raise(encode: object) -> None:
    with pytest.raises(ValueError):
        encode()  # type: ignore[operator]


def test_register_names_follow_the_disassembler() -> None:
    assert [str(r) for r in R] == ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "sb", "sl", "fp", "ip",
                                   "sp", "lr", "pc"]  # fmt: skip
