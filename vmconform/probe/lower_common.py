"""What every lowering shares: the stack frame of the program's locals and the walk over its steps.

A lowering subclasses `Lowering` and supplies the instruction-set primitives (evaluate a value into a
register, store, compare-and-branch, call a firmware function, print, read a system register, the
prologue and its helper routines). The control flow of `If`/`While` and the frame layout are here, once.
"""

from __future__ import annotations

from typing import Any

from .asm import Assembler
from .program import (
    ENTRY_LABEL,
    HEX_BYTES_MAX,
    Buf,
    CallService,
    Comment,
    Cond,
    DataArea,
    FirmwareString,
    Halt,
    Hex,
    HexBytes,
    If,
    NonceText,
    Part,
    Print,
    Program,
    ReadCpu,
    Set,
    Store,
    Text,
    Var,
    While,
)

__all__ = ["Lowering", "INVERSE", "align"]

INVERSE = {"eq": "ne", "ne": "eq", "lo": "hs", "hs": "lo", "hi": "ls", "ls": "hi"}


def align(value: int, alignment: int) -> int:
    """`value` rounded up to a multiple of `alignment`."""
    return value + -value % alignment


class Lowering:
    """Walks a program's steps; subclasses emit the instructions. Registers are the encoder's `Reg` values."""

    POINTER_SIZE = 8
    STACK_ALIGNMENT = 16
    PRINT_HEX = "print_hex"
    PRINT_HEX_BYTES = "print_hex_bytes"

    def __init__(self, program: Program, data: DataArea, asm: Assembler, outgoing: int = 0) -> None:
        self.program = program
        self.asm = asm
        self.data = data
        self.helpers: set[str] = set()
        # frame: [sp, sp+outgoing) stack arguments of calls, then each local 8-byte aligned
        self.slots: dict[str, int] = {}
        offset = outgoing
        for local in program.locals():
            offset = align(offset, 8)
            self.slots[local.name] = offset
            offset += self.POINTER_SIZE if isinstance(local, Var) else local.size
        self.frame_size = align(offset, self.STACK_ALIGNMENT)

    @property
    def hex_digits_max(self) -> int:
        """The most digits print_hex prints: a UINTN."""
        return 2 * self.POINTER_SIZE

    @property
    def hex_buffer(self) -> int:
        """Bytes of print_hex's output buffer: a UINTN's digits in UCS-2, then the NUL."""
        return 2 * (self.hex_digits_max + 1)

    @property
    def hex_bytes_buffer(self) -> int:
        """Bytes of print_hex_bytes' output buffer: two UCS-2 digits for each of HEX_BYTES_MAX bytes, then the NUL."""
        return 2 * (2 * HEX_BYTES_MAX + 1)

    def slot(self, local: Var | Buf) -> int:
        return self.slots[local.name]

    def lower(self) -> None:
        self.asm.label(ENTRY_LABEL)
        self.prologue()
        self.steps(self.program.steps)
        self.emit_helpers()

    def steps(self, steps: tuple[Any, ...]) -> None:
        for step in steps:
            self.step(step)

    def step(self, step: Any) -> None:
        asm = self.asm
        if isinstance(step, Print):
            for part in step.parts:
                self.print_part(part)
        elif isinstance(step, CallService):
            asm.comment(f"call {step.service}")
            self.call(step)
            if step.result is not None:
                self.store_result(step.result)
        elif isinstance(step, Set):
            self.set_var(step)
        elif isinstance(step, Store):
            self.store(step)
        elif isinstance(step, If):
            orelse, end = asm.fresh_label("else"), asm.fresh_label("endif")
            self.branch_unless(step.cond, orelse if step.orelse else end)
            self.steps(step.then)
            if step.orelse:
                self.jump(end)
                asm.label(orelse)
                self.steps(step.orelse)
            asm.label(end)
        elif isinstance(step, While):
            top, end = asm.fresh_label("while"), asm.fresh_label("wend")
            asm.label(top)
            self.branch_unless(step.cond, end)
            self.steps(step.body)
            self.jump(top)
            asm.label(end)
        elif isinstance(step, ReadCpu):
            asm.comment(f"read {step.register}")
            self.read_cpu(step.register, step.into)
        elif isinstance(step, Comment):
            asm.comment(step.text)
        elif isinstance(step, Halt):
            asm.comment("halt: spin forever")
            here = asm.label(asm.fresh_label("halt"))
            self.jump(here)
        else:
            raise TypeError(f"{type(self).__name__} does not know step {step!r}")

    def print_part(self, part: Part) -> None:
        if isinstance(part, Text):
            self.asm.comment(f"print {part.text!r}")
            self.print_label(self.data.label(part))
        elif isinstance(part, NonceText):
            self.asm.comment("print the nonce")
            self.print_label("nonce")
        elif isinstance(part, Hex):
            if part.digits > 2 * self.POINTER_SIZE:
                raise ValueError(f"{part.digits} hex digits do not fit a {self.POINTER_SIZE}-byte value")
            self.helpers.add(self.PRINT_HEX)
            self.print_hex(part)
        elif isinstance(part, HexBytes):
            self.helpers.add(self.PRINT_HEX_BYTES)
            self.print_hex_bytes(part)
        elif isinstance(part, FirmwareString):
            self.print_firmware_string(part)
        else:
            raise TypeError(f"{type(self).__name__} does not know part {part!r}")

    # ------------------------------------------------------------------ per instruction set

    def prologue(self) -> None:
        raise NotImplementedError

    def emit_helpers(self) -> None:
        raise NotImplementedError

    def call(self, step: CallService) -> None:
        raise NotImplementedError

    def store_result(self, var: Var) -> None:
        raise NotImplementedError

    def set_var(self, step: Set) -> None:
        raise NotImplementedError

    def store(self, step: Store) -> None:
        raise NotImplementedError

    def branch_unless(self, cond: Cond, label: str) -> None:
        raise NotImplementedError

    def jump(self, label: str) -> None:
        raise NotImplementedError

    def read_cpu(self, register: str, into: Buf) -> None:
        raise NotImplementedError

    def print_label(self, label: str) -> None:
        raise NotImplementedError

    def print_hex(self, part: Hex) -> None:
        raise NotImplementedError

    def print_hex_bytes(self, part: HexBytes) -> None:
        raise NotImplementedError

    def print_firmware_string(self, part: FirmwareString) -> None:
        raise NotImplementedError
