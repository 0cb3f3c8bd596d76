"""The assembler, the step layer and the UEFI struct offsets."""

from __future__ import annotations

import pytest

from vmconform.probe import a64_branch, a64_dataproc, a64_operands
from vmconform.probe.asm import Addr, Assembler, Rel
from vmconform.probe.program import (
    AddrOf,
    BinOp,
    Buf,
    CallService,
    Cond,
    Const,
    DataArea,
    DataRef,
    FirmwareString,
    Hex,
    HexBytes,
    Mem,
    NonceBytes,
    NonceName,
    NonceText,
    Print,
    Program,
    Set,
    Text,
    Var,
    line,
    probe_program,
)
from vmconform.probe.uefi import RUNTIME_SERVICES, SIMPLE_TEXT_OUTPUT_PROTOCOL, SYSTEM_TABLE


def test_two_pass_labels_alignment_and_data() -> None:
    asm = Assembler(origin=0x1000)
    asm.label("start")
    asm.insn(a64_branch.b, Rel("end"))  # forward reference
    asm.insn(a64_dataproc.adr, a64_operands.X[0], Rel("msg"))
    asm.label("back")
    asm.insn(a64_branch.b, Rel("back"))  # backward reference (to itself)
    asm.data(b"\x01", "one byte")
    asm.align(8)
    asm.label("msg")
    asm.data(b"hi")
    asm.align(4, fill=0xEE)
    asm.label("end")
    asm.insn(lambda target: target.to_bytes(4, "little"), Addr("msg"))
    out = asm.assemble()
    assert dict(out.labels) == {"start": 0x1000, "back": 0x1008, "msg": 0x1010, "end": 0x1014}
    assert out.code[0:4] == a64_branch.b(0x14).to_bytes(4, "little")
    assert out.code[4:8] == a64_dataproc.adr(a64_operands.X[0], 0xC).to_bytes(4, "little")
    assert out.code[8:12] == a64_branch.b(0).to_bytes(4, "little")
    assert out.code[12:16] == b"\x01\0\0\0"
    assert out.code[16:20] == b"hi\xee\xee"
    assert out.code[20:24] == (0x1010).to_bytes(4, "little")
    assert out.offset_of("end") == 0x14
    assert [line.kind for line in out.listing] == [
        "label",
        "insn",
        "insn",
        "label",
        "insn",
        "data",
        "align",
        "label",
        "data",
        "align",
        "label",
        "insn",
    ]
    assert "b end" in out.listing_text() and "0x00001010" in out.listing_text()


def test_assembler_errors() -> None:
    asm = Assembler()
    asm.label("a")
    with pytest.raises(ValueError, match="defined twice"):
        asm.label("a")
    with pytest.raises(ValueError, match="power of two"):
        asm.align(3)
    asm.insn(a64_branch.b, Rel("nowhere"))
    with pytest.raises(ValueError, match="undefined label"):
        asm.assemble()
    asm = Assembler()
    asm.insn(lambda: b"\0\0", size=4)
    with pytest.raises(ValueError, match="expected 4"):
        asm.assemble()


def test_line_merges_literal_text_and_keeps_runtime_parts() -> None:
    hex_part = Hex(Const(1), 2)
    step = line("K", "arg", ("a", "lit"), ("b", hex_part))
    assert step == Print((Text("VMCONFORM "), NonceText(), Text(" K arg a=lit b="), hex_part, Text("\r\n")))


def test_line_text_field_rules() -> None:
    with pytest.raises(ValueError, match="last item"):
        line("K", ("vendor", "x"), ("a", "1"))
    with pytest.raises(ValueError, match="text field"):
        line("K", ("name", FirmwareString(Const(0))))
    with pytest.raises(ValueError, match="hex digits"):
        Hex(Const(0), 17)


def test_probe_program_is_arch_neutral_data() -> None:
    program = probe_program("aarch64", 8)
    assert program == probe_program("aarch64", 8)
    kinds = [type(step).__name__ for step in program.steps]
    assert kinds[-3:] == ["Comment", "CallService", "Halt"]  # ... ResetSystem(EfiResetShutdown), then spin
    reset = program.steps[-2]
    assert isinstance(reset, CallService) and reset.service == "EFI_RUNTIME_SERVICES.ResetSystem"
    assert reset.args == (Const(2), Const(0), Const(0), Const(0))


def test_program_locals_and_data_items() -> None:
    program = probe_program("arm", 4, mode="warm", facts=("time",))
    names = [local.name for local in program.locals()]
    assert len(names) == len(set(names)) and {"time0", "time1", "st_get", "var_data"} <= set(names)
    assert Buf("time0", 16) in program.locals()
    items = program.data_items()
    assert Text("VMCONFORM ") in items and NonceName("VmcNv-") in items and NonceBytes() in items
    assert len(items) == len(set(items))


def test_a_local_with_two_shapes_is_rejected() -> None:
    program = Program((Set(Var("x"), Const(1)), Print((HexBytes(AddrOf(Buf("x", 8)), Const(8)),))))
    with pytest.raises(ValueError, match="declared twice"):
        program.locals()


def test_data_area_slots_are_fixed_size() -> None:
    program = Program(
        (Print((Text("a"),)), Set(Var("p"), DataRef(NonceName("N-"))), Set(Var("q"), DataRef(NonceBytes())))
    )
    layouts = []
    for nonce in ("x", "y" * 32):
        asm = Assembler()
        data = DataArea(program)
        data.emit(asm, nonce)
        out = asm.assemble()
        layouts.append(dict(out.labels))
        name = out.code[out.offset_of(data.label(NonceName("N-"))) :]
        assert name.startswith(("N-" + nonce).encode("utf-16-le") + b"\0\0")
        raw = out.code[out.offset_of(data.label(NonceBytes())) - 4 :]
        assert raw[:4] == len(nonce).to_bytes(4, "little") and raw[4 : 4 + len(nonce)] == nonce.encode()
    assert layouts[0] == layouts[1]


@pytest.mark.parametrize(
    "make",
    [lambda: Hex(Const(0), 0), lambda: Mem(Const(0), 0, 3), lambda: BinOp("mul", Const(1), Const(2)),
     lambda: BinOp("shl", Const(1), Var("n")), lambda: Cond("lt", Const(0), Const(1)), lambda: Buf("b", 0)],
)  # fmt: skip
def test_ir_rejects_what_no_lowering_supports(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("struct", "member", "offset64", "offset32"),
    [
        (SYSTEM_TABLE, "Hdr.Signature", 0, 0),
        (SYSTEM_TABLE, "Hdr.Revision", 8, 8),
        (SYSTEM_TABLE, "FirmwareVendor", 24, 24),
        (SYSTEM_TABLE, "FirmwareRevision", 32, 28),
        (SYSTEM_TABLE, "ConOut", 64, 44),
        (SYSTEM_TABLE, "RuntimeServices", 88, 56),
        (SYSTEM_TABLE, "NumberOfTableEntries", 104, 64),
        (SYSTEM_TABLE, "ConfigurationTable", 112, 68),
        (RUNTIME_SERVICES, "GetTime", 24, 24),
        (RUNTIME_SERVICES, "GetVariable", 72, 48),
        (RUNTIME_SERVICES, "SetVariable", 88, 56),
        (RUNTIME_SERVICES, "ResetSystem", 104, 64),
        (SIMPLE_TEXT_OUTPUT_PROTOCOL, "OutputString", 8, 4),
    ],
)
def test_struct_offsets_match_the_prototype(struct: object, member: str, offset64: int, offset32: int) -> None:
    # values confirmed on AAVMF / AAVMF32 (shared/notes/probe-prototype.md, clauses.md §1.7)
    field = struct[member]  # type: ignore[index]
    assert (field.offset(8), field.offset(4)) == (offset64, offset32)
