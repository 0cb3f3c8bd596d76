"""Every A64 form the encoder emits, checked against capstone (an independent disassembler)."""

from __future__ import annotations

import re

import capstone
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vmconform.probe import a64_branch, a64_dataproc, a64_loadstore, conditions
from vmconform.probe.a64_operands import (
    CNTFRQ_EL0,
    CNTVCT_EL0,
    CURRENT_EL,
    ID_AA64PFR0_EL1,
    MIDR_EL1,
    SP,
    WSP,
    WZR,
    XZR,
    Index,
    Reg,
    Shift,
    W,
    X,
)

PC = 0x1000000
_MD = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
_HEX = re.compile(r"#(-?)0x([0-9a-f]+)")


def _decimal(match: re.Match[str]) -> str:
    value = int(match[2], 16)
    if value >> 63:  # capstone prints some negative immediates (post-index offsets) as unsigned 64-bit
        value -= 1 << 64
    return f"#{match[1]}{value}"


def disasm(word: int, pc: int = PC) -> str:
    """capstone's text for one word, immediates normalised to signed decimal."""
    insns = list(_MD.disasm(word.to_bytes(4, "little"), pc))
    assert len(insns) == 1, f"capstone cannot decode {word:#010x}"
    text = f"{insns[0].mnemonic} {insns[0].op_str}".strip()
    return _HEX.sub(_decimal, text)


CASES: list[tuple[int, str]] = [
    # move wide (MOVZ shows as its MOV alias unless imm16 == 0 with a shift)
    (a64_dataproc.movz(X[0], 0x1234), "mov x0, #4660"),
    (a64_dataproc.movz(X[30], 0xFFFF, 48), "mov x30, #-281474976710656"),
    (a64_dataproc.movz(X[5], 0, 16), "movz x5, #0, lsl #16"),
    (a64_dataproc.movz(W[7], 0xFFFF, 16), "mov w7, #-65536"),
    (a64_dataproc.movz(X[1], 0), "mov x1, #0"),
    (a64_dataproc.movk(X[0], 0x1234, 16), "movk x0, #4660, lsl #16"),
    (a64_dataproc.movk(X[28], 0xFFFF, 48), "movk x28, #65535, lsl #48"),
    (a64_dataproc.movk(W[3], 1), "movk w3, #1"),
    (a64_dataproc.movn(X[2], 0), "mov x2, #-1"),
    # add/sub immediate, SP allowed in rd/rn, LSL #12 form, aliases
    (a64_dataproc.add_imm(X[2], SP, 16), "add x2, sp, #16"),
    (a64_dataproc.add_imm(SP, SP, 4095), "add sp, sp, #4095"),
    (a64_dataproc.add_imm(X[0], X[1], 4096), "add x0, x1, #1, lsl #12"),
    (a64_dataproc.add_imm(X[30], X[29], 4095 << 12), "add x30, x29, #4095, lsl #12"),
    (a64_dataproc.add_imm(W[4], W[5], 7), "add w4, w5, #7"),
    (a64_dataproc.sub_imm(SP, SP, 48), "sub sp, sp, #48"),
    (a64_dataproc.sub_imm(X[9], X[10], 0), "sub x9, x10, #0"),
    (a64_dataproc.adds_imm(X[0], X[0], 1), "adds x0, x0, #1"),
    (a64_dataproc.subs_imm(X[3], X[4], 5), "subs x3, x4, #5"),
    (a64_dataproc.cmp_imm(X[4], 10), "cmp x4, #10"),
    (a64_dataproc.cmp_imm(W[30], 4095), "cmp w30, #4095"),
    (a64_dataproc.cmp_imm(SP, 0), "cmp sp, #0"),
    (a64_dataproc.cmn_imm(X[1], 1), "cmn x1, #1"),
    (a64_dataproc.mov(X[29], SP), "mov x29, sp"),
    (a64_dataproc.mov(SP, X[29]), "mov sp, x29"),
    (a64_dataproc.mov(X[19], X[0]), "mov x19, x0"),
    (a64_dataproc.mov(W[1], W[30]), "mov w1, w30"),
    (a64_dataproc.mov(X[0], XZR), "mov x0, xzr"),
    # add/sub shifted register
    (a64_dataproc.add_reg(X[3], X[2], X[1], Shift.LSL, 1), "add x3, x2, x1, lsl #1"),
    (a64_dataproc.add_reg(X[0], X[1], X[2]), "add x0, x1, x2"),
    (a64_dataproc.add_reg(X[0], X[1], X[2], Shift.LSR, 63), "add x0, x1, x2, lsr #63"),
    (a64_dataproc.sub_reg(W[0], W[1], W[2], Shift.ASR, 31), "sub w0, w1, w2, asr #31"),
    (a64_dataproc.subs_reg(X[5], X[6], X[7]), "subs x5, x6, x7"),
    (a64_dataproc.adds_reg(X[5], X[6], X[7]), "adds x5, x6, x7"),
    (a64_dataproc.cmp_reg(X[3], X[2]), "cmp x3, x2"),
    (a64_dataproc.cmp_reg(W[28], W[27]), "cmp w28, w27"),
    # logical immediate / register
    (a64_dataproc.and_imm(X[4], X[0], 0xF), "and x4, x0, #15"),
    (a64_dataproc.and_imm(W[4], W[0], 0xF0), "and w4, w0, #240"),
    (a64_dataproc.and_imm(SP, X[1], 0xFFF0), "and sp, x1, #65520"),
    (a64_dataproc.and_imm(X[0], X[1], 0x5555555555555555), "and x0, x1, #6148914691236517205"),
    (a64_dataproc.and_imm(X[0], X[1], 0x7FFFFFFFFFFFFFFF), "and x0, x1, #9223372036854775807"),
    (a64_dataproc.orr_imm(X[0], XZR, 0xFF00), "mov x0, #65280"),
    (a64_dataproc.orr_imm(X[1], X[2], 0x8000000000000001), "orr x1, x2, #-9223372036854775807"),
    (a64_dataproc.eor_imm(W[1], W[2], 0x80000000), "eor w1, w2, #2147483648"),
    (a64_dataproc.ands_imm(X[1], X[2], 0x3), "ands x1, x2, #3"),
    (a64_dataproc.tst_imm(X[5], 0x1), "tst x5, #1"),
    (a64_dataproc.and_reg(X[0], X[1], X[2]), "and x0, x1, x2"),
    (a64_dataproc.orr_reg(X[0], X[1], X[2], Shift.LSL, 8), "orr x0, x1, x2, lsl #8"),
    (a64_dataproc.eor_reg(W[0], W[1], W[2]), "eor w0, w1, w2"),
    (a64_dataproc.ands_reg(X[0], X[1], X[2]), "ands x0, x1, x2"),
    (a64_dataproc.tst_reg(X[1], X[2]), "tst x1, x2"),
    # bitfield aliases
    (a64_dataproc.lsr_imm(X[0], X[0], 4), "lsr x0, x0, #4"),
    (a64_dataproc.lsr_imm(X[1], X[2], 63), "lsr x1, x2, #63"),
    (a64_dataproc.lsr_imm(W[1], W[2], 31), "lsr w1, w2, #31"),
    (a64_dataproc.lsl_imm(X[3], X[4], 1), "lsl x3, x4, #1"),
    (a64_dataproc.lsl_imm(X[3], X[4], 63), "lsl x3, x4, #63"),
    (a64_dataproc.lsl_imm(W[3], W[4], 16), "lsl w3, w4, #16"),
    (a64_dataproc.ubfx(X[0], X[1], 4, 4), "ubfx x0, x1, #4, #4"),
    (a64_dataproc.ubfx(X[0], X[1], 56, 4), "ubfx x0, x1, #56, #4"),
    (a64_dataproc.ubfx(X[0], X[1], 60, 4), "lsr x0, x1, #60"),  # a field reaching bit 63 is shown as LSR
    (a64_dataproc.ubfx(W[0], W[1], 8, 8), "ubfx w0, w1, #8, #8"),
    # byte reverse
    (a64_dataproc.rev(W[9], W[9]), "rev w9, w9"),
    (a64_dataproc.rev(X[0], X[30]), "rev x0, x30"),
    # loads/stores, unsigned offset (scaled), 64/32/16/8-bit
    (a64_loadstore.ldr(X[21], X[20], 64), "ldr x21, [x20, #64]"),
    (a64_loadstore.ldr(X[0], SP), "ldr x0, [sp]"),
    (a64_loadstore.ldr(X[30], X[29], 32760), "ldr x30, [x29, #32760]"),
    (a64_loadstore.str_(X[21], SP, 32), "str x21, [sp, #32]"),
    (a64_loadstore.str_(XZR, X[1], 8), "str xzr, [x1, #8]"),
    (a64_loadstore.ldr(W[0], X[20], 8), "ldr w0, [x20, #8]"),
    (a64_loadstore.ldr(W[0], X[20], 16380), "ldr w0, [x20, #16380]"),
    (a64_loadstore.str_(W[5], X[6], 4), "str w5, [x6, #4]"),
    (a64_loadstore.ldrh(W[1], X[2], 2), "ldrh w1, [x2, #2]"),
    (a64_loadstore.ldrh(W[1], X[2], 8190), "ldrh w1, [x2, #8190]"),
    (a64_loadstore.strh(WZR, X[3]), "strh wzr, [x3]"),
    (a64_loadstore.ldrb(W[1], X[2], 4095), "ldrb w1, [x2, #4095]"),
    (a64_loadstore.strb(W[1], SP, 1), "strb w1, [sp, #1]"),
    # pre/post-index (signed imm9) and unscaled
    (a64_loadstore.strh(W[4], X[3], -2, Index.PRE), "strh w4, [x3, #-2]!"),
    (a64_loadstore.ldrh(W[4], X[3], 2, Index.POST), "ldrh w4, [x3], #2"),
    (a64_loadstore.ldr(X[0], X[1], -256, Index.PRE), "ldr x0, [x1, #-256]!"),
    (a64_loadstore.str_(X[0], SP, -16, Index.PRE), "str x0, [sp, #-16]!"),
    (a64_loadstore.ldr(X[0], SP, 16, Index.POST), "ldr x0, [sp], #16"),
    (a64_loadstore.str_(W[0], X[1], 255, Index.POST), "str w0, [x1], #255"),
    (a64_loadstore.ldr(W[0], X[1], -4, Index.PRE), "ldr w0, [x1, #-4]!"),
    (a64_loadstore.strb(W[2], X[3], 1, Index.POST), "strb w2, [x3], #1"),
    (a64_loadstore.ldrb(W[2], X[30], -1, Index.PRE), "ldrb w2, [x30, #-1]!"),
    (a64_loadstore.ldr(X[0], X[29], -8, Index.UNSCALED), "ldur x0, [x29, #-8]"),
    (a64_loadstore.str_(W[0], X[29], 3, Index.UNSCALED), "stur w0, [x29, #3]"),
    (a64_loadstore.strh(W[0], X[1], -255, Index.UNSCALED), "sturh w0, [x1, #-255]"),
    (a64_loadstore.ldrb(W[0], X[1], 255, Index.UNSCALED), "ldurb w0, [x1, #255]"),
    # pairs
    (a64_loadstore.stp(X[29], X[30], SP, -48, Index.PRE), "stp x29, x30, [sp, #-48]!"),
    (a64_loadstore.stp(X[29], X[30], SP, -512, Index.PRE), "stp x29, x30, [sp, #-512]!"),
    (a64_loadstore.ldp(X[29], X[30], SP, 64, Index.POST), "ldp x29, x30, [sp], #64"),
    (a64_loadstore.stp(X[19], X[20], SP, 16), "stp x19, x20, [sp, #16]"),
    (a64_loadstore.ldp(X[19], X[20], SP, 504), "ldp x19, x20, [sp, #504]"),
    (a64_loadstore.ldp(X[27], X[28], X[1]), "ldp x27, x28, [x1]"),
    (a64_loadstore.stp(W[0], W[1], SP, -256, Index.PRE), "stp w0, w1, [sp, #-256]!"),
    (a64_loadstore.ldp(W[0], W[1], X[2], 252), "ldp w0, w1, [x2, #252]"),
    (a64_loadstore.stp(XZR, XZR, SP, -16, Index.PRE), "stp xzr, xzr, [sp, #-16]!"),
    # PC-relative (capstone prints absolute targets)
    (a64_dataproc.adr(X[1], 0x1C0), f"adr x1, #{PC + 0x1C0}"),
    (a64_dataproc.adr(X[1], -3), f"adr x1, #{PC - 3}"),
    (a64_dataproc.adr(X[30], (1 << 20) - 1), f"adr x30, #{PC + (1 << 20) - 1}"),
    (a64_dataproc.adr(X[0], -(1 << 20)), f"adr x0, #{PC - (1 << 20)}"),
    (a64_branch.b(0), f"b #{PC}"),
    (a64_branch.b(-PC), "b #0"),
    (a64_loadstore.ldr(X[0], X[1], -8, Index.POST), "ldr x0, [x1], #-8"),
    (a64_branch.b((1 << 27) - 4), f"b #{PC + (1 << 27) - 4}"),
    (a64_branch.bl(0x38 * 4), f"bl #{PC + 0x38 * 4}"),
    (a64_branch.bl(-8), f"bl #{PC - 8}"),
    (a64_branch.b_cond("lo", 8), f"b.lo #{PC + 8}"),
    (a64_branch.b_cond("ne", -32), f"b.ne #{PC - 32}"),
    (a64_branch.b_cond("eq", (1 << 20) - 4), f"b.eq #{PC + (1 << 20) - 4}"),
    (a64_branch.b_cond("hs", 4), f"b.hs #{PC + 4}"),
    (a64_branch.b_cond("gt", 4), f"b.gt #{PC + 4}"),
    (a64_branch.b_cond("le", -4), f"b.le #{PC - 4}"),
    (a64_branch.cbz(X[1], 16), f"cbz x1, #{PC + 16}"),
    (a64_branch.cbz(W[30], -(1 << 20)), f"cbz w30, #{PC - (1 << 20)}"),
    (a64_branch.cbnz(X[0], -4), f"cbnz x0, #{PC - 4}"),
    (a64_branch.cbnz(W[2], 1024), f"cbnz w2, #{PC + 1024}"),
    # register branches
    (a64_branch.blr(X[9]), "blr x9"),
    (a64_branch.blr(X[30]), "blr x30"),
    (a64_branch.br(X[16]), "br x16"),
    (a64_branch.ret(), "ret"),
    (a64_branch.ret(X[1]), "ret x1"),
    # system
    (a64_branch.mrs(X[0], CURRENT_EL), "mrs x0, currentel"),
    (a64_branch.mrs(X[1], CNTFRQ_EL0), "mrs x1, cntfrq_el0"),
    (a64_branch.mrs(X[30], CNTVCT_EL0), "mrs x30, cntvct_el0"),
    (a64_branch.mrs(X[2], MIDR_EL1), "mrs x2, midr_el1"),
    (a64_branch.mrs(X[3], ID_AA64PFR0_EL1), "mrs x3, id_aa64pfr0_el1"),
    (a64_branch.nop(), "nop"),
    (a64_branch.hvc(0), "hvc #0"),
    (a64_branch.smc(0xFFFF), "smc #65535"),
    (a64_branch.svc(1), "svc #1"),
    (a64_branch.brk(0x3E8), "brk #1000"),
]


@pytest.mark.parametrize(("word", "expected"), CASES, ids=[text for _, text in CASES])
def test_encoding_matches_capstone(word: int, expected: str) -> None:
    assert disasm(word) == expected


regs64 = st.sampled_from(X)
regs32 = st.sampled_from(W)


@given(rd=st.sampled_from((*X, SP)), rn=st.sampled_from((*X, SP)), imm=st.integers(0, 4095), sub=st.booleans())
def test_add_sub_imm_any_operands(rd: Reg, rn: Reg, imm: int, sub: bool) -> None:
    word = (a64_dataproc.sub_imm if sub else a64_dataproc.add_imm)(rd, rn, imm)
    if not sub and imm == 0 and (rd.is_sp or rn.is_sp):
        assert disasm(word) == f"mov {rd}, {rn}"
    else:
        assert disasm(word) == f"{'sub' if sub else 'add'} {rd}, {rn}, #{imm}"


@given(rt=regs64, rn=st.sampled_from((*X, SP)), scaled=st.integers(0, 4095), op=st.sampled_from(("ldr", "str")))
def test_load_store_x_unsigned_offset(rt: Reg, rn: Reg, scaled: int, op: str) -> None:
    word = (a64_loadstore.ldr if op == "ldr" else a64_loadstore.str_)(rt, rn, scaled * 8)
    mem = f"[{rn}]" if scaled == 0 else f"[{rn}, #{scaled * 8}]"
    assert disasm(word) == f"{op} {rt}, {mem}"


_SIZED = {
    "ldr": (a64_loadstore.ldr, 4),
    "str": (a64_loadstore.str_, 4),
    "ldrh": (a64_loadstore.ldrh, 2),
    "strh": (a64_loadstore.strh, 2),
    "ldrb": (a64_loadstore.ldrb, 1),
    "strb": (a64_loadstore.strb, 1),
}


@given(
    op=st.sampled_from(sorted(_SIZED)),
    rt=regs32,
    rn=st.sampled_from((*X, SP)),
    offset=st.integers(-256, 255),
    index=st.sampled_from((Index.PRE, Index.POST)),
)
def test_load_store_w_pre_post_index(op: str, rt: Reg, rn: Reg, offset: int, index: Index) -> None:
    assume(rt.num != rn.num)  # CONSTRAINED UNPREDICTABLE, rejected (see test_invalid_operands_raise)
    fn, _ = _SIZED[op]
    word = fn(rt, rn, offset, index)
    mem = f"[{rn}, #{offset}]!" if index is Index.PRE else f"[{rn}], #{offset}"
    assert disasm(word) == f"{op} {rt}, {mem}"


@given(op=st.sampled_from(sorted(_SIZED)), rt=regs32, rn=regs64, scaled=st.integers(0, 4095))
def test_load_store_w_unsigned_offset(op: str, rt: Reg, rn: Reg, scaled: int) -> None:
    fn, size = _SIZED[op]
    word = fn(rt, rn, scaled * size)
    mem = f"[{rn}]" if scaled == 0 else f"[{rn}, #{scaled * size}]"
    assert disasm(word) == f"{op} {rt}, {mem}"


@given(
    rt1=regs64,
    rt2=regs64,
    scaled=st.integers(-64, 63),
    load=st.booleans(),
    index=st.sampled_from((Index.OFFSET, Index.PRE, Index.POST)),
)
def test_pairs_any_operands(rt1: Reg, rt2: Reg, scaled: int, load: bool, index: Index) -> None:
    assume(not load or rt1 != rt2)  # CONSTRAINED UNPREDICTABLE, rejected (see test_invalid_operands_raise)
    word = (a64_loadstore.ldp if load else a64_loadstore.stp)(rt1, rt2, SP, scaled * 8, index)
    off = scaled * 8
    mem = {Index.OFFSET: f"[sp, #{off}]" if off else "[sp]", Index.PRE: f"[sp, #{off}]!", Index.POST: f"[sp], #{off}"}[
        index
    ]
    assert disasm(word) == f"{'ldp' if load else 'stp'} {rt1}, {rt2}, {mem}"


@given(words=st.integers(-(1 << 18), (1 << 18) - 1), cond=st.sampled_from(sorted(set(conditions.COND) - {"cs", "cc"})))
def test_conditional_branch_any_offset(words: int, cond: str) -> None:
    pc = 1 << 24
    assert disasm(a64_branch.b_cond(cond, words * 4), pc) == f"b.{cond} #{pc + words * 4}"


@given(words=st.integers(-(1 << 25), (1 << 25) - 1), link=st.booleans())
def test_branch_any_offset(words: int, link: bool) -> None:
    pc = 1 << 28
    word = (a64_branch.bl if link else a64_branch.b)(words * 4)
    assert disasm(word, pc) == f"{'bl' if link else 'b'} #{pc + words * 4}"


@given(offset=st.integers(-(1 << 20), (1 << 20) - 1), rd=regs64)
def test_adr_any_offset(offset: int, rd: Reg) -> None:
    pc = 1 << 24
    assert disasm(a64_dataproc.adr(rd, offset), pc) == f"adr {rd}, #{pc + offset}"


@st.composite
def bitmask_immediates(draw: st.DrawFn, width: int) -> int:
    size = draw(st.sampled_from([s for s in (2, 4, 8, 16, 32, 64) if s <= width]))
    ones = draw(st.integers(1, size - 1))
    rot = draw(st.integers(0, size - 1))
    run = (1 << ones) - 1
    elem = ((run >> rot) | (run << (size - rot))) & ((1 << size) - 1)
    return sum(elem << i for i in range(0, width, size))


@given(mask=bitmask_immediates(64))
def test_logical_immediate_64(mask: int) -> None:
    signed = mask - (1 << 64) if mask >> 63 else mask
    assert disasm(a64_dataproc.and_imm(X[0], X[1], mask)) == f"and x0, x1, #{signed}"


@given(mask=bitmask_immediates(32))
def test_logical_immediate_32(mask: int) -> None:
    assert disasm(a64_dataproc.eor_imm(W[2], W[3], mask)) == f"eor w2, w3, #{mask}"


@given(shift=st.integers(1, 63), rd=regs64, rn=regs64)
def test_shifts_any_amount(shift: int, rd: Reg, rn: Reg) -> None:
    assert disasm(a64_dataproc.lsr_imm(rd, rn, shift)) == f"lsr {rd}, {rn}, #{shift}"
    assert disasm(a64_dataproc.lsl_imm(rd, rn, shift)) == f"lsl {rd}, {rn}, #{shift}"


@given(value=st.integers(0, (1 << 64) - 1))
def test_wide_chunks_rebuild_the_value(value: int) -> None:
    chunks = a64_dataproc.wide_chunks(value)
    rebuilt = 0
    for imm16, shift in chunks:
        rebuilt |= imm16 << shift
    assert rebuilt == value
    assert 1 <= len(chunks) <= 4


@pytest.mark.parametrize(
    "encode",
    [
        lambda: a64_dataproc.add_imm(X[0], X[1], 4097),  # neither imm12 nor imm12 << 12
        lambda: a64_dataproc.add_imm(X[0], XZR, 1),  # register 31 is SP in rn
        lambda: a64_dataproc.subs_imm(SP, X[1], 1),  # register 31 is ZR in rd of SUBS
        lambda: a64_dataproc.add_imm(X[0], W[1], 1),  # mixed widths
        lambda: a64_dataproc.add_reg(X[0], SP, X[1]),  # no SP in shifted-register forms
        lambda: a64_loadstore.ldr(X[0], X[1], 4),  # not a multiple of 8
        lambda: a64_loadstore.ldr(X[0], X[1], -8),  # negative unsigned offset
        lambda: a64_loadstore.ldr(X[0], X[1], 32768),  # beyond 4095 * 8
        lambda: a64_loadstore.ldr(X[0], X[1], 256, Index.PRE),  # beyond imm9
        lambda: a64_loadstore.ldrh(X[0], X[1]),  # halfword needs a W register
        lambda: a64_loadstore.ldr(X[0], W[1]),  # 32-bit base
        lambda: a64_loadstore.ldr(SP, X[1]),  # SP as data register
        lambda: a64_loadstore.stp(X[0], X[1], SP, 512, Index.PRE),  # beyond imm7 * 8
        lambda: a64_loadstore.stp(X[0], X[1], SP, 4),  # not a multiple of 8
        lambda: a64_loadstore.stp(X[0], X[1], SP, 8, Index.UNSCALED),
        lambda: a64_loadstore.stp(X[0], W[1], SP),
        lambda: a64_loadstore.ldp(X[3], X[3], SP),  # CONSTRAINED UNPREDICTABLE
        lambda: a64_loadstore.stp(X[3], X[4], X[3], -16, Index.PRE),
        lambda: a64_loadstore.ldr(X[1], X[1], 8, Index.POST),
        lambda: a64_loadstore.strb(W[2], X[2], 1, Index.PRE),
        lambda: a64_dataproc.adr(X[0], 1 << 20),
        lambda: a64_branch.b(2),
        lambda: a64_branch.b(1 << 27),
        lambda: a64_branch.b_cond("xx", 4),
        lambda: a64_branch.b_cond("eq", 1 << 20),
        lambda: a64_branch.cbz(SP, 4),
        lambda: a64_dataproc.movz(W[0], 1, 32),
        lambda: a64_dataproc.movz(X[0], 1 << 16),
        lambda: a64_dataproc.and_imm(X[0], X[1], 0),
        lambda: a64_dataproc.and_imm(X[0], X[1], (1 << 64) - 1),
        lambda: a64_dataproc.and_imm(X[0], X[1], 0b101),
        lambda: a64_dataproc.and_imm(W[0], W[1], 1 << 32),
        lambda: a64_dataproc.lsr_imm(W[0], W[1], 32),
        lambda: a64_dataproc.ubfx(X[0], X[1], 60, 8),
        lambda: a64_branch.blr(W[9]),
        lambda: a64_branch.mrs(W[0], CURRENT_EL),
        lambda: a64_branch.hvc(1 << 16),
        lambda: a64_dataproc.wide_chunks(1 << 64),
    ],
)
def test_invalid_operands_raise(encode: object) -> None:
    with pytest.raises(ValueError):
        encode()  # type: ignore[operator]


def test_register_names() -> None:
    assert [str(r) for r in (X[0], W[30], SP, WSP, XZR, WZR, X[7].w, W[7].x)] == [
        "x0",
        "w30",
        "sp",
        "wsp",
        "xzr",
        "wzr",
        "w7",
        "x7",
    ]
