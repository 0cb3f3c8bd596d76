"""Lowering of probe programs to A64 for AArch64 UEFI (UEFI §2.3.6 calling convention, i.e. AAPCS64).

Register map (fixed for the whole program; helpers may use x0..x15 freely):

* x19 = ImageHandle, x20 = SystemTable, x21 = SystemTable->ConOut (callee-saved, set in the prologue);
* x0..x7 = arguments to firmware functions, x9 = the function pointer being called;
* x18 is the platform register and is never touched.

SP stays 16-byte aligned; all writable state (hex digit buffers) lives on the stack, because AAVMF maps
the code section read-only and the headers non-executable. The code is position-independent (ADR for
data, B/BL for code); firmware functions are called through BLR.
"""

from __future__ import annotations

from . import a64
from .a64 import SP, WZR, Index, Shift, X
from .asm import Assembler, Rel
from .program import (
    ENTRY_LABEL,
    NONCE_LABEL,
    CallService,
    Const,
    DataArea,
    EntryArg,
    FirmwareString,
    Halt,
    Hex,
    Load,
    NonceText,
    Part,
    Print,
    Program,
    Text,
    Value,
)
from .uefi import SIMPLE_TEXT_OUTPUT_PROTOCOL, SYSTEM_TABLE, Kind

__all__ = ["lower", "POINTER_SIZE"]

POINTER_SIZE = 8
MAX_REGISTER_ARGS = 8

_IMAGE_HANDLE, _SYSTEM_TABLE, _CON_OUT = X[19], X[20], X[21]
_ENTRY_ARG = {EntryArg.IMAGE_HANDLE: _IMAGE_HANDLE, EntryArg.SYSTEM_TABLE: _SYSTEM_TABLE}
_FN = X[9]
_OUTPUT_STRING = SIMPLE_TEXT_OUTPUT_PROTOCOL["OutputString"].offset(POINTER_SIZE)
_PRINT_HEX = "print_hex"


def lower(program: Program, data: DataArea, asm: Assembler) -> None:
    """Append the A64 code for `program` to `asm`, starting with the entry point `ENTRY_LABEL`."""
    _A64(asm, data).program(program)


class _A64:
    def __init__(self, asm: Assembler, data: DataArea) -> None:
        self.asm = asm
        self.data = data
        self.need_print_hex = False

    def program(self, program: Program) -> None:
        asm = self.asm
        asm.label(ENTRY_LABEL)
        asm.comment("efi_main(ImageHandle=x0, SystemTable=x1); save fp, lr, x19-x21 (48-byte frame)")
        asm.insn(a64.stp, X[29], X[30], SP, -48, Index.PRE)
        asm.insn(a64.mov, X[29], SP)
        asm.insn(a64.stp, X[19], X[20], SP, 16)
        asm.insn(a64.str_, X[21], SP, 32)
        asm.insn(a64.mov, _IMAGE_HANDLE, X[0])
        asm.insn(a64.mov, _SYSTEM_TABLE, X[1])
        asm.insn(a64.ldr, _CON_OUT, _SYSTEM_TABLE, SYSTEM_TABLE["ConOut"].offset(POINTER_SIZE),
                 comment="x21 = SystemTable->ConOut")
        for step in program.steps:
            if isinstance(step, Print):
                for part in step.parts:
                    self.print_part(part)
            elif isinstance(step, CallService):
                self.call_service(step)
            elif isinstance(step, Halt):
                asm.comment("halt: spin forever")
                here = asm.label(asm.fresh_label("halt"))
                asm.insn(a64.b, Rel(here))
            else:
                raise TypeError(f"A64 lowering does not know step {step!r}")
        if self.need_print_hex:
            self.print_hex_routine()

    # ------------------------------------------------------------------ values

    def value(self, value: Value, rd: a64.Reg) -> None:
        """Compute `value` into the 64-bit register `rd`, using no other register."""
        asm = self.asm
        if isinstance(value, EntryArg):
            asm.insn(a64.mov, rd, _ENTRY_ARG[value])
        elif isinstance(value, Const):
            for i, (imm16, shift) in enumerate(a64.wide_chunks(value.value)):
                asm.insn(a64.movk if i else a64.movz, rd, imm16, shift)
        elif isinstance(value, Load):
            if isinstance(value.base, EntryArg):
                base = _ENTRY_ARG[value.base]
            else:
                self.value(value.base, rd)
                base = rd
            target = rd.w if value.field.kind is Kind.U32 else rd  # a W load zero-extends
            asm.insn(a64.ldr, target, base, value.field.offset(POINTER_SIZE), comment=str(value.field))
        else:
            raise TypeError(f"A64 lowering does not know value {value!r}")

    # ------------------------------------------------------------------ printing

    def output_string(self) -> None:
        """ConOut->OutputString(ConOut, x1)."""
        self.asm.insn(a64.mov, X[0], _CON_OUT)
        self.asm.insn(a64.ldr, _FN, _CON_OUT, _OUTPUT_STRING)
        self.asm.insn(a64.blr, _FN, comment="ConOut->OutputString")

    def print_part(self, part: Part) -> None:
        asm = self.asm
        if isinstance(part, Text):
            asm.comment(f"print {part.text!r}")
            asm.insn(a64.adr, X[1], Rel(self.data.label(part.text)))
            self.output_string()
        elif isinstance(part, NonceText):
            asm.comment("print the nonce")
            asm.insn(a64.adr, X[1], Rel(NONCE_LABEL))
            self.output_string()
        elif isinstance(part, Hex):
            asm.comment(f"print {part.digits} hex digits")
            self.value(part.value, X[0])
            asm.insn(a64.movz, X[1], part.digits)
            asm.insn(a64.bl, Rel(_PRINT_HEX))
            self.need_print_hex = True
        elif isinstance(part, FirmwareString):
            asm.comment("print a firmware UCS-2 string (skipped when NULL)")
            skip = asm.fresh_label("null")
            self.value(part.pointer, X[1])
            asm.insn(a64.cbz, X[1], Rel(skip))
            self.output_string()
            asm.label(skip)
        else:
            raise TypeError(f"A64 lowering does not know part {part!r}")

    def print_hex_routine(self) -> None:
        """print_hex(x0 = value, x1 = digits 1..16): the low digits of x0, upper-case, via OutputString."""
        asm = self.asm
        loop, decimal = asm.fresh_label("hex_loop"), asm.fresh_label("hex_digit")
        asm.label(_PRINT_HEX)
        asm.comment("print_hex(x0=value, x1=digits); buffer of 16 UCS-2 digits + NUL at sp+16")
        asm.insn(a64.stp, X[29], X[30], SP, -64, Index.PRE)
        asm.insn(a64.mov, X[29], SP)
        asm.insn(a64.add_imm, X[2], SP, 16, comment="x2 = buffer start")
        asm.insn(a64.add_reg, X[3], X[2], X[1], Shift.LSL, 1, comment="x3 = end of the digits")
        asm.insn(a64.strh, WZR, X[3], comment="NUL terminator")
        asm.label(loop)
        asm.insn(a64.and_imm, X[4], X[0], 0xF, comment="lowest nibble")
        asm.insn(a64.cmp_imm, X[4], 10)
        asm.insn(a64.b_cond, "lo", Rel(decimal))
        asm.insn(a64.add_imm, X[4], X[4], ord("A") - ord("0") - 10)
        asm.label(decimal)
        asm.insn(a64.add_imm, X[4], X[4], ord("0"))
        asm.insn(a64.strh, X[4].w, X[3], -2, Index.PRE, comment="store digits from the right")
        asm.insn(a64.lsr_imm, X[0], X[0], 4)
        asm.insn(a64.cmp_reg, X[3], X[2])
        asm.insn(a64.b_cond, "ne", Rel(loop))
        asm.insn(a64.mov, X[1], X[2])
        self.output_string()
        asm.insn(a64.ldp, X[29], X[30], SP, 64, Index.POST)
        asm.insn(a64.ret)

    # ------------------------------------------------------------------ calls

    def call_service(self, step: CallService) -> None:
        if len(step.args) > MAX_REGISTER_ARGS:
            raise NotImplementedError(f"{step.service}: more than {MAX_REGISTER_ARGS} arguments")
        asm = self.asm
        asm.comment(f"call {step.service}({', '.join(map(_describe, step.args))})")
        for i, arg in enumerate(step.args):
            self.value(arg, X[i])
        self.value(step.function, _FN)
        asm.insn(a64.blr, _FN, comment=step.service)


def _describe(value: Value) -> str:
    if isinstance(value, Const):
        return str(value.value)
    if isinstance(value, Load):
        return str(value.field)
    return value.name
