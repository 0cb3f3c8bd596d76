"""The probe program's intermediate form: values, line parts and steps, independent of the instruction set.

A `Program` is a tuple of steps, each one UEFI call, one assignment, one check or one printed piece of a
fact line. Steps compute run-time values with a small expression language, every value a UINTN of the
firmware's pointer size:

* `EntryArg`, `Const`; `Var` (a UINTN local variable), `AddrOf` (address of a local `Var` or `Buf`),
  `DataRef` (address of an item in the read-only data area);
* `Load` (a UEFI structure field, offset by the lowering's pointer size) and `Mem` (1/2/4/8 raw bytes at an
  address + offset, zero-extended); `BinOp` (add, sub, and, or, shl, shr) and `Bswap32`.

Steps: `Print` (parts: `Text`, `NonceText`, `Hex`, `HexBytes`, `FirmwareString`), `CallService` (a firmware
function, its EFI_STATUS kept in a `Var` when asked), `Set`, `Store`, `If`/`While` on a `Cond` (one unsigned
or equality comparison), `ReadCpu` (an architecture's system register into an 8-byte buffer), `Comment`
and `Halt`. A lowering (one per instruction set and calling convention: `lower_a64`, `lower_a32`) turns
steps into machine code; it owns registers, the stack frame holding the locals, and helper routines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..uefi import Field

__all__ = [
    "EntryArg", "Const", "Load", "Mem", "Var", "Buf", "AddrOf", "DataRef", "BinOp", "Bswap32", "Value", "add",
    "sub", "Blob", "NonceName", "NonceBytes", "DataItem", "Text", "NonceText", "Hex", "HexBytes", "FirmwareString",
    "Part", "CONDITIONS", "Cond", "Print", "CallService", "Set", "Store", "If", "While", "ReadCpu", "Comment",
    "Halt", "Step", "Program", "HEX_BYTES_MAX", "HEX_DIGITS_MAX",
]  # fmt: skip

HEX_BYTES_MAX = 64  # bytes one HexBytes part prints at most (the size of the lowerings' helper buffer)
HEX_DIGITS_MAX = 16  # digits one Hex part prints at most (a UINT64)

# ------------------------------------------------------------------------------------------------ values


class EntryArg(Enum):
    """An argument of the image entry point (UEFI §4.1 EFI_IMAGE_ENTRY_POINT)."""

    IMAGE_HANDLE = 0
    SYSTEM_TABLE = 1


@dataclass(frozen=True)
class Const:
    """A constant (two's complement when negative; the lowering checks that it fits a UINTN)."""

    value: int


@dataclass(frozen=True)
class Load:
    """The value of `field` in the structure that `base` points to."""

    base: Value
    field: Field


@dataclass(frozen=True)
class Mem:
    """`size` bytes (1, 2, 4 or 8; 0 = pointer size) at `addr + offset`, zero-extended; aligned by the caller."""

    addr: Value
    offset: int = 0
    size: int = 0

    def __post_init__(self) -> None:
        if self.size not in (0, 1, 2, 4, 8):
            raise ValueError(f"memory access size must be 1, 2, 4 or 8, got {self.size}")


@dataclass(frozen=True)
class Var:
    """A UINTN local variable (on the stack)."""

    name: str


@dataclass(frozen=True)
class Buf:
    """A local byte buffer (on the stack, 8-byte aligned)."""

    name: str
    size: int

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"buffer {self.name} must have a positive size")


@dataclass(frozen=True)
class AddrOf:
    """The address of a local variable or buffer in the stack frame."""

    local: Var | Buf


@dataclass(frozen=True)
class Blob:
    """Constant bytes in the data area (8-byte aligned), e.g. a GUID or a device path node."""

    name: str
    data: bytes


@dataclass(frozen=True)
class NonceName:
    """A NUL-terminated UCS-2 `prefix` + nonce, in a fixed-size slot (a variable name)."""

    prefix: str


@dataclass(frozen=True)
class NonceBytes:
    """The nonce as ASCII bytes in a fixed-size slot; the UINT32 at offset -4 holds its length."""


@dataclass(frozen=True)
class Text:
    """Literal text, stored in the data area as NUL-terminated UCS-2."""

    text: str


DataItem = Text | Blob | NonceName | NonceBytes


@dataclass(frozen=True)
class DataRef:
    """The address of a data-area item."""

    item: DataItem


@dataclass(frozen=True)
class BinOp:
    """`a <op> b` on UINTNs."""

    op: str  # add, sub, and, or, shl, shr (shift counts must be Const)
    a: Value
    b: Value

    def __post_init__(self) -> None:
        if self.op not in ("add", "sub", "and", "or", "shl", "shr"):
            raise ValueError(f"unknown operator {self.op!r}")
        if self.op in ("shl", "shr") and not isinstance(self.b, Const):
            raise ValueError("shift counts must be constants")


@dataclass(frozen=True)
class Bswap32:
    """The low 32 bits of `a` byte-reversed (big-endian fields such as the FDT header's)."""

    a: Value


Value = EntryArg | Const | Load | Mem | Var | AddrOf | DataRef | BinOp | Bswap32


def add(a: Value, b: Value | int) -> BinOp:
    """a + b (an int is a Const)."""
    return BinOp("add", a, Const(b) if isinstance(b, int) else b)


def sub(a: Value, b: Value | int) -> BinOp:
    """a - b (an int is a Const)."""
    return BinOp("sub", a, Const(b) if isinstance(b, int) else b)


# ------------------------------------------------------------------------------------------------ line parts


@dataclass(frozen=True)
class NonceText:
    """The per-case nonce, stored in its slot in the data area."""


@dataclass(frozen=True)
class Hex:
    """`value` as `digits` upper-case, zero-padded hex digits (the low 4*digits bits; at most a UINTN)."""

    value: Value
    digits: int

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= HEX_DIGITS_MAX:
            raise ValueError(f"hex digits must be 1..{HEX_DIGITS_MAX}, got {self.digits}")


@dataclass(frozen=True)
class HexBytes:
    """`length` bytes at `addr` in memory order, two upper-case hex digits each (at most HEX_BYTES_MAX)."""

    addr: Value
    length: Value


@dataclass(frozen=True)
class FirmwareString:
    """A NUL-terminated UCS-2 string owned by the firmware, printed as-is (nothing when NULL)."""

    pointer: Value


Part = Text | NonceText | Hex | HexBytes | FirmwareString


# ------------------------------------------------------------------------------------------------ steps

CONDITIONS = ("eq", "ne", "lo", "hs", "hi", "ls")  # unsigned comparisons


@dataclass(frozen=True)
class Cond:
    """`a <op> b`, unsigned: eq, ne, lo (<), hs (>=), hi (>), ls (<=)."""

    op: str
    a: Value
    b: Value

    def __post_init__(self) -> None:
        if self.op not in CONDITIONS:
            raise ValueError(f"unknown condition {self.op!r}; known: {', '.join(CONDITIONS)}")


@dataclass(frozen=True)
class Print:
    """Print the parts in order: SystemTable->ConOut->OutputString(ConOut, s), once a part."""

    parts: tuple[Part, ...]


@dataclass(frozen=True)
class CallService:
    """Call the firmware function `function` with `args`; its return value goes to `result` if given."""

    function: Value
    args: tuple[Value, ...]
    result: Var | None = None

    @property
    def service(self) -> str:
        return str(self.function.field) if isinstance(self.function, Load) else "function"


@dataclass(frozen=True)
class Set:
    """var = value."""

    var: Var
    value: Value


@dataclass(frozen=True)
class Store:
    """Write the low `size` bytes (1, 2, 4 or 8; 0 = pointer size) of `value` to `addr + offset`."""

    addr: Value
    value: Value
    offset: int = 0
    size: int = 0


@dataclass(frozen=True)
class If:
    """Run `then` when `cond` holds, else `orelse`."""

    cond: Cond
    then: tuple[Step, ...]
    orelse: tuple[Step, ...] = ()


@dataclass(frozen=True)
class While:
    """Run `body` as long as `cond` holds (checked before each round)."""

    cond: Cond
    body: tuple[Step, ...]


@dataclass(frozen=True)
class ReadCpu:
    """Store the system register `register` (a name the lowering knows) as 8 little-endian bytes in `into`."""

    register: str
    into: Buf


@dataclass(frozen=True)
class Comment:
    """A comment in the listing (no code): what the next steps call and why."""

    text: str


@dataclass(frozen=True)
class Halt:
    """Spin forever (never return to the firmware)."""


Step = Print | CallService | Set | Store | If | While | ReadCpu | Comment | Halt


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, tuple):
        for item in node:
            yield from _walk(item)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type | Field):
        for f in dataclasses.fields(node):
            yield from _walk(getattr(node, f.name))


@dataclass(frozen=True)
class Program:
    """The whole probe: its steps, in order (it never returns to the firmware)."""

    steps: tuple[Step, ...]

    def nodes(self) -> Iterator[Any]:
        """Every step, value and part of the program, depth first."""
        yield from _walk(self.steps)

    def parts(self) -> Iterator[Part]:
        """Every printed part, in order."""
        for node in self.nodes():
            if isinstance(node, Print):
                yield from node.parts

    def locals(self) -> tuple[Var | Buf, ...]:
        """The program's local variables and buffers, in order of first use (names are unique)."""
        seen: dict[str, Var | Buf] = {}
        for node in self.nodes():
            if isinstance(node, Var | Buf):
                if seen.setdefault(node.name, node) != node:
                    raise ValueError(f"local {node.name!r} declared twice with different kinds or sizes")
        return tuple(seen.values())

    def data_items(self) -> tuple[DataItem, ...]:
        """Every item the data area must hold: printed text and referenced items, in order of first use."""
        items: dict[DataItem, None] = {}
        for node in self.nodes():
            if isinstance(node, Print):
                items.update((p, None) for p in node.parts if isinstance(p, Text))
            elif isinstance(node, DataRef):
                items[node.item] = None
        return tuple(items)
