"""Lowering of probe programs to A64 for AArch64 UEFI (UEFI §2.3.6 calling convention, i.e. AAPCS64).

Register map (fixed for the whole program):

* x19 = ImageHandle, x20 = SystemTable, x21 = SystemTable->ConOut (callee-saved, set in the prologue);
* x0..x7 = arguments to firmware functions, x17 = the function pointer being called;
* x9..x15 = temporaries for evaluating values (an expression never uses any other register);
* x18 is the platform register and is never touched.

SP stays 16-byte aligned; the locals live in the frame below the saved registers, all writable state on
the stack, because AAVMF maps the code section read-only. The code is position-independent (ADR for data,
B/BL for code); firmware functions are called through BLR.
"""

from __future__ import annotations

from . import a64_branch, a64_dataproc, a64_loadstore
from .a64_operands import CNTFRQ_EL0, CNTVCT_EL0, CURRENT_EL, ID_AA64PFR0_EL1, MIDR_EL1, SP, WZR, Index, Reg, Shift, X
from .asm import Assembler, Rel
from .lower_common import INVERSE, Lowering, align
from .program import (
    HEX_BYTES_MAX,
    AddrOf,
    BinOp,
    Bswap32,
    Buf,
    CallService,
    Cond,
    Const,
    DataArea,
    DataRef,
    EntryArg,
    FirmwareString,
    Hex,
    HexBytes,
    Load,
    Mem,
    Program,
    Set,
    Store,
    Value,
    Var,
)
from .uefi import SIMPLE_TEXT_OUTPUT_PROTOCOL, SYSTEM_TABLE

__all__ = ["lower", "POINTER_SIZE", "SYSTEM_REGISTERS"]

POINTER_SIZE = 8
MAX_REGISTER_ARGS = 8

_IMAGE_HANDLE, _SYSTEM_TABLE, _CON_OUT = X[19], X[20], X[21]
_CALLEE_SAVED = (_IMAGE_HANDLE, _SYSTEM_TABLE, _CON_OUT)  # set in the prologue, kept by every firmware call
_ENTRY_ARG = {EntryArg.IMAGE_HANDLE: _IMAGE_HANDLE, EntryArg.SYSTEM_TABLE: _SYSTEM_TABLE}
_FN = X[17]
_POOL = tuple(X[9:16])
_FRAME_RECORD = 16  # a frame starts with the saved fp and lr (AAPCS64 frame record)
_OUTPUT_STRING = SIMPLE_TEXT_OUTPUT_PROTOCOL["OutputString"].offset(POINTER_SIZE)

SYSTEM_REGISTERS = {
    reg.name: reg
    for reg in (
        CURRENT_EL,
        CNTFRQ_EL0,
        CNTVCT_EL0,
        MIDR_EL1,
        ID_AA64PFR0_EL1,
    )
}


def lower(program: Program, data: DataArea, asm: Assembler) -> None:
    """Append the A64 code for `program` to `asm`, starting with the entry point `ENTRY_LABEL`."""
    _A64(program, data, asm).lower()


class _A64(Lowering):
    POINTER_SIZE = POINTER_SIZE
    STACK_ALIGNMENT = 16

    def __init__(self, program: Program, data: DataArea, asm: Assembler) -> None:
        super().__init__(program, data, asm)

    # ------------------------------------------------------------------ frame

    def prologue(self) -> None:
        asm = self.asm
        saved = align(_FRAME_RECORD + 8 * len(_CALLEE_SAVED), self.STACK_ALIGNMENT)
        asm.comment(f"efi_main(ImageHandle=x0, SystemTable=x1); save fp, lr, x19-x21 ({saved} bytes); "
                    f"{self.frame_size} bytes of locals")  # fmt: skip
        asm.insn(a64_loadstore.stp, X[29], X[30], SP, -saved, Index.PRE)
        asm.insn(a64_dataproc.mov, X[29], SP)
        for i in range(0, len(_CALLEE_SAVED), 2):
            pair, offset = _CALLEE_SAVED[i : i + 2], _FRAME_RECORD + 8 * i
            if len(pair) == 2:
                asm.insn(a64_loadstore.stp, pair[0], pair[1], SP, offset)
            else:
                asm.insn(a64_loadstore.str_, pair[0], SP, offset)
        asm.insn(a64_dataproc.mov, _IMAGE_HANDLE, X[0])
        asm.insn(a64_dataproc.mov, _SYSTEM_TABLE, X[1])
        asm.insn(a64_loadstore.ldr, _CON_OUT, _SYSTEM_TABLE, SYSTEM_TABLE["ConOut"].offset(POINTER_SIZE),
                 comment="x21 = SystemTable->ConOut")  # fmt: skip
        if self.frame_size:
            self.add_const(SP, SP, -self.frame_size)

    def add_const(self, rd: Reg, rn: Reg, value: int) -> None:
        """rd = rn + value (rd may be SP), in 12-bit chunks."""
        op = a64_dataproc.add_imm if value >= 0 else a64_dataproc.sub_imm
        value = abs(value)
        if value >> 24:
            raise ValueError(f"constant offset {value:#x} too large")
        if value >> 12:
            self.asm.insn(op, rd, rn, value & 0xFFF000)
            rn = rd
        if value & 0xFFF or rn != rd:
            self.asm.insn(op, rd, rn, value & 0xFFF)

    # ------------------------------------------------------------------ values

    def constant(self, rd: Reg, value: int) -> None:
        for i, (imm16, shift) in enumerate(a64_dataproc.wide_chunks(value & (1 << 64) - 1)):
            self.asm.insn(a64_dataproc.movk if i else a64_dataproc.movz, rd, imm16, shift)

    def value(self, value: Value, rd: Reg, pool: tuple[Reg, ...] = _POOL) -> None:
        """Compute `value` into the 64-bit register `rd`, using only `rd` and the registers in `pool`."""
        asm = self.asm
        pool = tuple(r for r in pool if r != rd)
        if isinstance(value, EntryArg):
            asm.insn(a64_dataproc.mov, rd, _ENTRY_ARG[value])
        elif isinstance(value, Const):
            self.constant(rd, value.value)
        elif isinstance(value, Var):
            asm.insn(a64_loadstore.ldr, rd, SP, self.slot(value), comment=value.name)
        elif isinstance(value, AddrOf):
            self.add_const(rd, SP, self.slot(value.local))
        elif isinstance(value, DataRef):
            asm.insn(a64_dataproc.adr, rd, Rel(self.data.label(value.item)))
        elif isinstance(value, Load):
            self.value(value.base, rd, pool)
            self.load(rd, rd, value.field.offset(POINTER_SIZE), value.field.size(POINTER_SIZE), str(value.field))
        elif isinstance(value, Mem):
            self.value(value.addr, rd, pool)
            self.load(rd, rd, value.offset, value.size or POINTER_SIZE)
        elif isinstance(value, BinOp):
            self.binop(value, rd, pool)
        elif isinstance(value, Bswap32):
            self.value(value.a, rd, pool)
            asm.insn(a64_dataproc.rev, rd.w, rd.w, comment="big-endian word")
        else:
            raise TypeError(f"A64 lowering does not know value {value!r}")

    def binop(self, value: BinOp, rd: Reg, pool: tuple[Reg, ...]) -> None:
        asm = self.asm
        self.value(value.a, rd, pool)
        b = value.b
        if isinstance(b, Const):
            n = b.value
            if value.op == "shl":
                asm.insn(a64_dataproc.lsl_imm, rd, rd, n)
                return
            if value.op == "shr":
                asm.insn(a64_dataproc.lsr_imm, rd, rd, n)
                return
            if value.op in ("add", "sub") and -0xFFFFFF <= n <= 0xFFFFFF:
                self.add_const(rd, rd, n if value.op == "add" else -n)
                return
        t = pool[0]
        self.value(b, t, pool[1:])
        reg_op = {
            "add": a64_dataproc.add_reg,
            "sub": a64_dataproc.sub_reg,
            "and": a64_dataproc.and_reg,
            "or": a64_dataproc.orr_reg,
        }[value.op]
        asm.insn(reg_op, rd, rd, t)

    def load(self, rt: Reg, base: Reg, offset: int, size: int, comment: str = "") -> None:
        self.access(True, rt, base, offset, size, comment)

    def access(self, load: bool, rt: Reg, base: Reg, offset: int, size: int, comment: str = "") -> None:
        """LDR/STR of `size` bytes at base+offset; for a load rt may be base; the offset may be anything."""
        ls = a64_loadstore
        op = {(True, 8): ls.ldr, (True, 4): ls.ldr, (True, 2): ls.ldrh, (True, 1): ls.ldrb,
              (False, 8): ls.str_, (False, 4): ls.str_, (False, 2): ls.strh,
              (False, 1): ls.strb}[load, size]  # fmt: skip
        reg = rt if size == 8 else rt.w
        if offset >= 0 and offset % size == 0 and offset // size < 4096:
            self.asm.insn(op, reg, base, offset, comment=comment)
        elif -256 <= offset < 256:
            self.asm.insn(op, reg, base, offset, Index.UNSCALED, comment=comment)
        else:
            if not load:
                raise ValueError(f"store offset {offset} out of range")
            self.add_const(rt, base, offset)
            self.asm.insn(op, reg, rt, 0, comment=comment)

    # ------------------------------------------------------------------ steps

    def set_var(self, step: Set) -> None:
        self.value(step.value, _POOL[0], _POOL[1:])
        self.asm.insn(a64_loadstore.str_, _POOL[0], SP, self.slot(step.var), comment=step.var.name)

    def store(self, step: Store) -> None:
        addr, value = _POOL[0], _POOL[1]
        self.value(step.addr, addr, _POOL[2:])
        self.value(step.value, value, _POOL[2:])
        self.access(False, value, addr, step.offset, step.size or POINTER_SIZE)

    def store_result(self, var: Var) -> None:
        self.asm.insn(a64_loadstore.str_, X[0], SP, self.slot(var), comment=f"{var.name} = status")

    def branch_unless(self, cond: Cond, label: str) -> None:
        a, b = _POOL[0], _POOL[1]
        self.value(cond.a, a, _POOL[1:])
        if isinstance(cond.b, Const) and 0 <= cond.b.value < 4096:
            self.asm.insn(a64_dataproc.cmp_imm, a, cond.b.value)
        else:
            self.value(cond.b, b, _POOL[2:])
            self.asm.insn(a64_dataproc.cmp_reg, a, b)
        self.asm.insn(a64_branch.b_cond, INVERSE[cond.op], Rel(label))

    def jump(self, label: str) -> None:
        self.asm.insn(a64_branch.b, Rel(label))

    def call(self, step: CallService) -> None:
        if len(step.args) > MAX_REGISTER_ARGS:
            raise NotImplementedError(f"{step.service}: more than {MAX_REGISTER_ARGS} arguments")
        for i, arg in enumerate(step.args):
            self.value(arg, X[i])
        self.value(step.function, _FN)
        self.asm.insn(a64_branch.blr, _FN, comment=step.service)

    def read_cpu(self, register: str, into: Buf) -> None:
        if register not in SYSTEM_REGISTERS:
            raise ValueError(f"A64 lowering cannot read {register!r}; known: {', '.join(SYSTEM_REGISTERS)}")
        self.asm.insn(a64_branch.mrs, _POOL[0], SYSTEM_REGISTERS[register])
        self.asm.insn(a64_loadstore.str_, _POOL[0], SP, self.slot(into), comment=into.name)

    # ------------------------------------------------------------------ printing

    def output_string(self) -> None:
        """ConOut->OutputString(ConOut, x1)."""
        self.asm.insn(a64_dataproc.mov, X[0], _CON_OUT)
        self.asm.insn(a64_loadstore.ldr, _FN, _CON_OUT, _OUTPUT_STRING)
        self.asm.insn(a64_branch.blr, _FN, comment="ConOut->OutputString")

    def print_label(self, label: str) -> None:
        self.asm.insn(a64_dataproc.adr, X[1], Rel(label))
        self.output_string()

    def print_hex(self, part: Hex) -> None:
        self.asm.comment(f"print {part.digits} hex digits")
        self.value(part.value, X[0])
        self.asm.insn(a64_dataproc.movz, X[1], part.digits)
        self.asm.insn(a64_branch.bl, Rel(self.PRINT_HEX))

    def print_hex_bytes(self, part: HexBytes) -> None:
        self.asm.comment("print bytes as hex")
        self.value(part.addr, X[0])
        self.value(part.length, X[1])
        self.asm.insn(a64_branch.bl, Rel(self.PRINT_HEX_BYTES))

    def print_firmware_string(self, part: FirmwareString) -> None:
        asm = self.asm
        asm.comment("print a firmware UCS-2 string (skipped when NULL)")
        skip = asm.fresh_label("null")
        self.value(part.pointer, X[1])
        asm.insn(a64_branch.cbz, X[1], Rel(skip))
        self.output_string()
        asm.label(skip)

    # ------------------------------------------------------------------ helper routines

    def emit_helpers(self) -> None:
        if self.PRINT_HEX in self.helpers:
            self.print_hex_routine()
        if self.PRINT_HEX_BYTES in self.helpers:
            self.print_hex_bytes_routine()

    def hex_digit(self, reg: Reg) -> None:
        """reg (0..15) -> its upper-case hex digit."""
        asm = self.asm
        decimal = asm.fresh_label("digit")
        asm.insn(a64_dataproc.cmp_imm, reg, 10)
        asm.insn(a64_branch.b_cond, "lo", Rel(decimal))
        asm.insn(a64_dataproc.add_imm, reg, reg, ord("A") - ord("0") - 10)
        asm.label(decimal)
        asm.insn(a64_dataproc.add_imm, reg, reg, ord("0"))

    def helper_frame(self, buffer: int) -> int:
        """The frame of a helper routine: the frame record (fp, lr), then `buffer` bytes; SP stays aligned."""
        return align(_FRAME_RECORD + buffer, self.STACK_ALIGNMENT)

    def print_hex_routine(self) -> None:
        """print_hex(x0 = value, x1 = digits 1..16): the low digits of x0, upper-case, via OutputString."""
        asm = self.asm
        loop = asm.fresh_label("hex_loop")
        frame = self.helper_frame(self.hex_buffer)
        asm.label(self.PRINT_HEX)
        asm.comment(f"print_hex(x0=value, x1=digits); buffer of {self.hex_digits_max} UCS-2 digits + NUL at "
                    f"sp+{_FRAME_RECORD}; {frame}-byte frame")  # fmt: skip
        asm.insn(a64_loadstore.stp, X[29], X[30], SP, -frame, Index.PRE)
        asm.insn(a64_dataproc.mov, X[29], SP)
        asm.insn(a64_dataproc.add_imm, X[2], SP, _FRAME_RECORD, comment="x2 = buffer start")
        asm.insn(a64_dataproc.add_reg, X[3], X[2], X[1], Shift.LSL, 1, comment="x3 = end of the digits")
        asm.insn(a64_loadstore.strh, WZR, X[3], comment="NUL terminator")
        asm.label(loop)
        asm.insn(a64_dataproc.and_imm, X[4], X[0], 0xF, comment="lowest nibble")
        self.hex_digit(X[4])
        asm.insn(a64_loadstore.strh, X[4].w, X[3], -2, Index.PRE, comment="store digits from the right")
        asm.insn(a64_dataproc.lsr_imm, X[0], X[0], 4)
        asm.insn(a64_dataproc.cmp_reg, X[3], X[2])
        asm.insn(a64_branch.b_cond, "ne", Rel(loop))
        asm.insn(a64_dataproc.mov, X[1], X[2])
        self.output_string()
        asm.insn(a64_loadstore.ldp, X[29], X[30], SP, frame, Index.POST)
        asm.insn(a64_branch.ret)

    def print_hex_bytes_routine(self) -> None:
        """print_hex_bytes(x0 = address, x1 = length, at most HEX_BYTES_MAX): two hex digits a byte, memory order."""
        asm = self.asm
        loop, done, short = asm.fresh_label("hb_loop"), asm.fresh_label("hb_done"), asm.fresh_label("hb_short")
        frame = self.helper_frame(self.hex_bytes_buffer)
        asm.label(self.PRINT_HEX_BYTES)
        asm.comment(f"print_hex_bytes(x0=address, x1=length); buffer of {2 * HEX_BYTES_MAX} UCS-2 digits + NUL at "
                    f"sp+{_FRAME_RECORD}; {frame}-byte frame")  # fmt: skip
        asm.insn(a64_loadstore.stp, X[29], X[30], SP, -frame, Index.PRE)
        asm.insn(a64_dataproc.mov, X[29], SP)
        asm.insn(a64_dataproc.cmp_imm, X[1], HEX_BYTES_MAX)
        asm.insn(a64_branch.b_cond, "ls", Rel(short))
        asm.insn(a64_dataproc.movz, X[1], HEX_BYTES_MAX, comment=f"at most {HEX_BYTES_MAX} bytes")
        asm.label(short)
        asm.insn(a64_dataproc.add_imm, X[2], SP, _FRAME_RECORD, comment="x2 = output")
        asm.insn(a64_dataproc.add_reg, X[3], X[0], X[1], comment="x3 = end of the input")
        asm.label(loop)
        asm.insn(a64_dataproc.cmp_reg, X[0], X[3])
        asm.insn(a64_branch.b_cond, "eq", Rel(done))
        asm.insn(a64_loadstore.ldrb, X[4].w, X[0], 1, Index.POST)
        asm.insn(a64_dataproc.lsr_imm, X[5].w, X[4].w, 4, comment="high nibble")
        self.hex_digit(X[5].w)
        asm.insn(a64_loadstore.strh, X[5].w, X[2], 2, Index.POST)
        asm.insn(a64_dataproc.and_imm, X[5].w, X[4].w, 0xF, comment="low nibble")
        self.hex_digit(X[5].w)
        asm.insn(a64_loadstore.strh, X[5].w, X[2], 2, Index.POST)
        asm.insn(a64_branch.b, Rel(loop))
        asm.label(done)
        asm.insn(a64_loadstore.strh, WZR, X[2], comment="NUL terminator")
        asm.insn(a64_dataproc.add_imm, X[1], SP, _FRAME_RECORD)
        self.output_string()
        asm.insn(a64_loadstore.ldp, X[29], X[30], SP, frame, Index.POST)
        asm.insn(a64_branch.ret)
