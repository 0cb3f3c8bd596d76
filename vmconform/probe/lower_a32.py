"""Lowering of probe programs to A32 for Arm (AArch32) UEFI (UEFI §2.3.5 calling convention, i.e. AAPCS).

Register map (fixed for the whole program):

* r4 = ImageHandle, r5 = SystemTable, r6 = SystemTable->ConOut (callee-saved, set in the prologue);
* r0..r3 = the first four arguments of firmware functions, the rest at [sp], [sp+4], ... (the frame's
  outgoing area); r12 (ip) = the function pointer being called;
* r7, r8, r10, r11, r12 = temporaries for evaluating values (an expression never uses any other register);
* r9 is left alone (the platform register in some AAPCS variants).

The code runs in ARM state (the PE entry point is even); firmware functions are Thumb code and are called
with BLX register, which interworks; helpers return with POP {..., pc}. SP stays 8-byte aligned at every
call. The PC reads 8 bytes ahead: data addresses come from a fixed two-instruction ADD/SUB from PC
(`a32_dataproc.adr_far`), so every instruction's size is known before layout.
"""

from __future__ import annotations

from . import a32_branch, a32_dataproc, a32_loadstore
from .a32_operands import CNTFRQ, CNTVCT, ID_PFR1, LR, MIDR, PC, SP, R, Reg, Shift
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

POINTER_SIZE = 4
REGISTER_ARGS = 4

_IMAGE_HANDLE, _SYSTEM_TABLE, _CON_OUT = R[4], R[5], R[6]
_ENTRY_ARG = {EntryArg.IMAGE_HANDLE: _IMAGE_HANDLE, EntryArg.SYSTEM_TABLE: _SYSTEM_TABLE}
_FN = R[12]
_POOL = (R[7], R[8], R[10], R[11], R[12])
_SAVED = (R[4], R[5], R[6], R[7], R[8], R[10], R[11], LR)  # an even count keeps SP 8-byte aligned
_OUTPUT_STRING = SIMPLE_TEXT_OUTPUT_PROTOCOL["OutputString"].offset(POINTER_SIZE)

SYSTEM_REGISTERS = {reg.name: reg for reg in (CNTFRQ, CNTVCT, MIDR, ID_PFR1)}
CPSR = "CPSR"


def lower(program: Program, data: DataArea, asm: Assembler) -> None:
    """Append the A32 code for `program` to `asm`, starting with the entry point `ENTRY_LABEL`."""
    _A32(program, data, asm).lower()


def _outgoing(program: Program) -> int:
    """Bytes of stack arguments the program's calls need (arguments beyond the fourth, 4 bytes each)."""
    most = max((len(n.args) for n in program.nodes() if isinstance(n, CallService)), default=0)
    return 4 * max(0, most - REGISTER_ARGS)


class _A32(Lowering):
    POINTER_SIZE = POINTER_SIZE
    STACK_ALIGNMENT = 8

    def __init__(self, program: Program, data: DataArea, asm: Assembler) -> None:
        super().__init__(program, data, asm, outgoing=_outgoing(program))
        if self.frame_size >= 4096:
            raise ValueError(f"A32 frame of {self.frame_size} bytes exceeds the 4 KiB LDR/STR offset range")

    # ------------------------------------------------------------------ frame

    def prologue(self) -> None:
        asm = self.asm
        asm.comment(f"efi_main(ImageHandle=r0, SystemTable=r1); save r4-r8, r10, r11, lr; {self.frame_size} bytes "
                    "of locals")  # fmt: skip
        asm.insn(a32_loadstore.push, *_SAVED)
        asm.insn(a32_dataproc.mov, _IMAGE_HANDLE, R[0])
        asm.insn(a32_dataproc.mov, _SYSTEM_TABLE, R[1])
        asm.insn(a32_loadstore.ldr, _CON_OUT, _SYSTEM_TABLE, SYSTEM_TABLE["ConOut"].offset(POINTER_SIZE),
                 comment="r6 = SystemTable->ConOut")  # fmt: skip
        if self.frame_size:
            self.add_const(SP, SP, -self.frame_size, R[12])

    def add_const(self, rd: Reg, rn: Reg, value: int, scratch: Reg | None = None) -> None:
        """rd = rn + value: one ADD/SUB when the constant is a modified immediate, else through a register."""
        asm = self.asm
        if a32_dataproc.encodable(value):
            asm.insn(a32_dataproc.add, rd, rn, value)
        elif a32_dataproc.encodable(-value):
            asm.insn(a32_dataproc.sub, rd, rn, -value)
        else:
            t = scratch if scratch is not None else rd
            if t == rn or t in (SP, PC):
                raise ValueError(f"no scratch register to add {value:#x} to {rn}")
            self.constant(t, abs(value))
            asm.insn(a32_dataproc.add if value >= 0 else a32_dataproc.sub, rd, rn, t)

    # ------------------------------------------------------------------ values

    def constant(self, rd: Reg, value: int) -> None:
        value &= 0xFFFF_FFFF
        if a32_dataproc.encodable(value):
            self.asm.insn(a32_dataproc.mov, rd, value)
        elif a32_dataproc.encodable(~value & 0xFFFF_FFFF):
            self.asm.insn(a32_dataproc.mvn, rd, ~value & 0xFFFF_FFFF)
        else:
            self.asm.insn(a32_dataproc.movw, rd, value & 0xFFFF)
            if value >> 16:
                self.asm.insn(a32_dataproc.movt, rd, value >> 16)

    def value(self, value: Value, rd: Reg, pool: tuple[Reg, ...] = _POOL) -> None:
        """Compute `value` into `rd`, using only `rd` and the registers in `pool`."""
        asm = self.asm
        pool = tuple(r for r in pool if r != rd)
        if isinstance(value, EntryArg):
            asm.insn(a32_dataproc.mov, rd, _ENTRY_ARG[value])
        elif isinstance(value, Const):
            if not -(1 << 31) <= value.value < (1 << 32):
                raise ValueError(f"constant {value.value:#x} does not fit 32 bits")
            self.constant(rd, value.value)
        elif isinstance(value, Var):
            asm.insn(a32_loadstore.ldr, rd, SP, self.slot(value), comment=value.name)
        elif isinstance(value, AddrOf):
            self.add_const(rd, SP, self.slot(value.local))
        elif isinstance(value, DataRef):
            asm.insn(a32_dataproc.adr_far, rd, Rel(self.data.label(value.item)), size=8)
        elif isinstance(value, Load):
            self.value(value.base, rd, pool)
            self.access(True, rd, rd, value.field.offset(POINTER_SIZE), value.field.size(POINTER_SIZE), pool,
                        str(value.field))  # fmt: skip
        elif isinstance(value, Mem):
            self.value(value.addr, rd, pool)
            self.access(True, rd, rd, value.offset, value.size or POINTER_SIZE, pool)
        elif isinstance(value, BinOp):
            self.binop(value, rd, pool)
        elif isinstance(value, Bswap32):
            self.value(value.a, rd, pool)
            asm.insn(a32_dataproc.rev, rd, rd, comment="big-endian word")
        else:
            raise TypeError(f"A32 lowering does not know value {value!r}")

    def binop(self, value: BinOp, rd: Reg, pool: tuple[Reg, ...]) -> None:
        asm = self.asm
        self.value(value.a, rd, pool)
        b = value.b
        if isinstance(b, Const):
            n = b.value
            if value.op in ("shl", "shr"):
                if n >= 32:
                    asm.insn(a32_dataproc.mov, rd, 0)
                elif n:
                    asm.insn(a32_dataproc.lsl if value.op == "shl" else a32_dataproc.lsr, rd, rd, n)
                return
            if value.op in ("add", "sub"):
                self.add_const(rd, rd, n if value.op == "add" else -n, pool[0] if pool else None)
                return
            if value.op in ("and", "or") and a32_dataproc.encodable(n):
                asm.insn(a32_dataproc.and_ if value.op == "and" else a32_dataproc.orr, rd, rd, n)
                return
        t = pool[0]
        self.value(b, t, pool[1:])
        reg_op = {"add": a32_dataproc.add, "sub": a32_dataproc.sub, "and": a32_dataproc.and_, "or": a32_dataproc.orr}[
            value.op
        ]
        asm.insn(reg_op, rd, rd, t)

    def access(self, load: bool, rt: Reg, base: Reg, offset: int, size: int,
               pool: tuple[Reg, ...] = (), comment: str = "") -> None:  # fmt: skip
        """LDR/STR of `size` bytes (1, 2, 4) at base+offset; for a load rt may be base."""
        if size == 8:
            raise ValueError("a 64-bit access on 32-bit firmware: read it as two 32-bit halves")
        ls = a32_loadstore
        op = {(True, 4): ls.ldr, (True, 2): ls.ldrh, (True, 1): ls.ldrb,
              (False, 4): ls.str_, (False, 2): ls.strh, (False, 1): ls.strb}[load, size]  # fmt: skip
        reach = 255 if size == 2 else 4095
        if abs(offset) > reach:
            t = rt if load else pool[0]
            self.add_const(t, base, offset, pool[0] if load and pool else None)
            base, offset = t, 0
        self.asm.insn(op, rt, base, offset, comment=comment)

    # ------------------------------------------------------------------ steps

    def set_var(self, step: Set) -> None:
        self.value(step.value, _POOL[0], _POOL[1:])
        self.asm.insn(a32_loadstore.str_, _POOL[0], SP, self.slot(step.var), comment=step.var.name)

    def store(self, step: Store) -> None:
        addr, value = _POOL[0], _POOL[1]
        self.value(step.addr, addr, _POOL[2:])
        self.value(step.value, value, _POOL[2:])
        self.access(False, value, addr, step.offset, step.size or POINTER_SIZE, _POOL[2:])

    def store_result(self, var: Var) -> None:
        self.asm.insn(a32_loadstore.str_, R[0], SP, self.slot(var), comment=f"{var.name} = status")

    def branch_unless(self, cond: Cond, label: str) -> None:
        a, b = _POOL[0], _POOL[1]
        self.value(cond.a, a, _POOL[1:])
        if isinstance(cond.b, Const) and a32_dataproc.encodable(cond.b.value) and 0 <= cond.b.value < (1 << 32):
            self.asm.insn(a32_dataproc.cmp, a, cond.b.value)
        else:
            self.value(cond.b, b, _POOL[2:])
            self.asm.insn(a32_dataproc.cmp, a, b)
        self.asm.insn(a32_branch.b, Rel(label), INVERSE[cond.op])

    def jump(self, label: str) -> None:
        self.asm.insn(a32_branch.b, Rel(label))

    def call(self, step: CallService) -> None:
        asm = self.asm
        temps = _POOL[:-1]  # r12 is kept for the function pointer
        for i, arg in enumerate(step.args[REGISTER_ARGS:]):
            self.value(arg, temps[0], temps[1:])
            asm.insn(a32_loadstore.str_, temps[0], SP, 4 * i, comment=f"argument {REGISTER_ARGS + i + 1} on the stack")
        for i, arg in enumerate(step.args[:REGISTER_ARGS]):
            self.value(arg, R[i], temps)
        self.value(step.function, _FN, temps)
        asm.insn(a32_branch.blx, _FN, comment=step.service)

    def read_cpu(self, register: str, into: Buf) -> None:
        asm = self.asm
        lo, hi = _POOL[0], _POOL[1]
        offset = self.slot(into)
        if register == CPSR:
            asm.insn(a32_branch.mrs_cpsr, lo)
            asm.insn(a32_dataproc.mov, hi, 0)
        elif register not in SYSTEM_REGISTERS:
            known = ", ".join((CPSR, *SYSTEM_REGISTERS))
            raise ValueError(f"A32 lowering cannot read {register!r}; known: {known}")
        elif SYSTEM_REGISTERS[register].wide:
            asm.insn(a32_branch.mrrc, lo, hi, SYSTEM_REGISTERS[register])
        else:
            asm.insn(a32_branch.mrc, lo, SYSTEM_REGISTERS[register])
            asm.insn(a32_dataproc.mov, hi, 0)
        asm.insn(a32_loadstore.str_, lo, SP, offset, comment=f"{into.name} low word")
        asm.insn(a32_loadstore.str_, hi, SP, offset + 4, comment=f"{into.name} high word")

    # ------------------------------------------------------------------ printing

    def output_string(self) -> None:
        """ConOut->OutputString(ConOut, r1)."""
        self.asm.insn(a32_dataproc.mov, R[0], _CON_OUT)
        self.asm.insn(a32_loadstore.ldr, _FN, _CON_OUT, _OUTPUT_STRING)
        self.asm.insn(a32_branch.blx, _FN, comment="ConOut->OutputString")

    def print_label(self, label: str) -> None:
        self.asm.insn(a32_dataproc.adr_far, R[1], Rel(label), size=8)
        self.output_string()

    def print_hex(self, part: Hex) -> None:
        self.asm.comment(f"print {part.digits} hex digits")
        self.value(part.value, R[0])
        self.asm.insn(a32_dataproc.mov, R[1], part.digits)
        self.asm.insn(a32_branch.bl, Rel(self.PRINT_HEX))

    def print_hex_bytes(self, part: HexBytes) -> None:
        self.asm.comment("print bytes as hex")
        self.value(part.addr, R[0])
        self.value(part.length, R[1])
        self.asm.insn(a32_branch.bl, Rel(self.PRINT_HEX_BYTES))

    def print_firmware_string(self, part: FirmwareString) -> None:
        asm = self.asm
        asm.comment("print a firmware UCS-2 string (skipped when NULL)")
        skip = asm.fresh_label("null")
        self.value(part.pointer, R[1])
        asm.insn(a32_dataproc.cmp, R[1], 0)
        asm.insn(a32_branch.b, Rel(skip), "eq")
        self.output_string()
        asm.label(skip)

    # ------------------------------------------------------------------ helper routines

    def emit_helpers(self) -> None:
        if self.PRINT_HEX in self.helpers:
            self.print_hex_routine()
        if self.PRINT_HEX_BYTES in self.helpers:
            self.print_hex_bytes_routine()

    def hex_digit(self, reg: Reg) -> None:
        """reg (0..15) -> its upper-case hex digit (conditional execution, no branch)."""
        self.asm.insn(a32_dataproc.cmp, reg, 10)
        self.asm.insn(a32_dataproc.add, reg, reg, ord("A") - ord("0") - 10, "hs")
        self.asm.insn(a32_dataproc.add, reg, reg, ord("0"))

    def helper_frame(self, buffer: int) -> int:
        """Bytes a helper routine reserves below its pushed registers for `buffer`; SP stays 8-byte aligned."""
        frame = align(buffer, self.STACK_ALIGNMENT)
        if not a32_dataproc.encodable(frame):
            raise ValueError(f"helper frame of {frame} bytes is not an A32 immediate")
        return frame

    def print_hex_routine(self) -> None:
        """print_hex(r0 = value, r1 = digits 1..8): the low digits of r0, upper-case, via OutputString."""
        asm = self.asm
        loop = asm.fresh_label("hex_loop")
        frame = self.helper_frame(self.hex_buffer)
        asm.label(self.PRINT_HEX)
        asm.comment(f"print_hex(r0=value, r1=digits); buffer of {self.hex_digits_max} UCS-2 digits + NUL at sp; "
                    f"{frame}-byte frame")  # fmt: skip
        asm.insn(a32_loadstore.push, R[4], LR)
        asm.insn(a32_dataproc.sub, SP, SP, frame)
        asm.insn(a32_dataproc.mov, R[2], SP, comment="r2 = buffer start")
        asm.insn(a32_dataproc.add, R[3], R[2], (R[1], Shift.LSL, 1), comment="r3 = end of the digits")
        asm.insn(a32_dataproc.mov, R[4], 0)
        asm.insn(a32_loadstore.strh, R[4], R[3], comment="NUL terminator")
        asm.label(loop)
        asm.insn(a32_dataproc.and_, R[4], R[0], 0xF, comment="lowest nibble")
        self.hex_digit(R[4])
        asm.insn(a32_loadstore.strh, R[4], R[3], -2, True, True, comment="store digits from the right")
        asm.insn(a32_dataproc.lsr, R[0], R[0], 4)
        asm.insn(a32_dataproc.cmp, R[3], R[2])
        asm.insn(a32_branch.b, Rel(loop), "ne")
        asm.insn(a32_dataproc.mov, R[1], R[2])
        self.output_string()
        asm.insn(a32_dataproc.add, SP, SP, frame)
        asm.insn(a32_loadstore.pop, R[4], PC)

    def print_hex_bytes_routine(self) -> None:
        """print_hex_bytes(r0 = address, r1 = length, at most HEX_BYTES_MAX): two hex digits a byte, memory order."""
        asm = self.asm
        loop, done = asm.fresh_label("hb_loop"), asm.fresh_label("hb_done")
        frame = self.helper_frame(self.hex_bytes_buffer)
        asm.label(self.PRINT_HEX_BYTES)
        asm.comment(f"print_hex_bytes(r0=address, r1=length); buffer of {2 * HEX_BYTES_MAX} UCS-2 digits + NUL at "
                    f"sp; {frame}-byte frame")  # fmt: skip
        asm.insn(a32_loadstore.push, R[4], R[5], R[7], LR)
        asm.insn(a32_dataproc.sub, SP, SP, frame)
        asm.insn(a32_dataproc.cmp, R[1], HEX_BYTES_MAX)
        asm.insn(a32_dataproc.mov, R[1], HEX_BYTES_MAX, "hi", comment=f"at most {HEX_BYTES_MAX} bytes")
        asm.insn(a32_dataproc.mov, R[2], SP, comment="r2 = output")
        asm.insn(a32_dataproc.add, R[3], R[0], R[1], comment="r3 = end of the input")
        asm.label(loop)
        asm.insn(a32_dataproc.cmp, R[0], R[3])
        asm.insn(a32_branch.b, Rel(done), "eq")
        asm.insn(a32_loadstore.ldrb, R[4], R[0], 1, False)
        asm.insn(a32_dataproc.lsr, R[5], R[4], 4, comment="high nibble")
        self.hex_digit(R[5])
        asm.insn(a32_loadstore.strh, R[5], R[2], 2, False)
        asm.insn(a32_dataproc.and_, R[5], R[4], 0xF, comment="low nibble")
        self.hex_digit(R[5])
        asm.insn(a32_loadstore.strh, R[5], R[2], 2, False)
        asm.insn(a32_branch.b, Rel(loop))
        asm.label(done)
        asm.insn(a32_dataproc.mov, R[4], 0)
        asm.insn(a32_loadstore.strh, R[4], R[2], comment="NUL terminator")
        asm.insn(a32_dataproc.mov, R[1], SP)
        self.output_string()
        asm.insn(a32_dataproc.add, SP, SP, frame)
        asm.insn(a32_loadstore.pop, R[4], R[5], R[7], PC)
