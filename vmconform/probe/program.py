"""The probe program as a sequence of steps, independent of the instruction set.

A `Program` is a tuple of steps; each step is one UEFI call or one fact line. Steps read run-time values
through a small expression language (`EntryArg`, `Const`, `Load` of a UEFI structure field), and lines
are built from parts (`Text`, `NonceText`, `Hex`, `FirmwareString`). A lowering (one per instruction set
and calling convention, e.g. `lower_a64`) turns the steps into machine code; it owns register use,
stack frames and helper routines. Adding an architecture means adding a lowering, not editing
`probe_program`; adding a fact means adding steps (and, when needed, a new step or value type that every
lowering then implements).

The literal text and the nonce live in a data area (`DataArea`) placed after the code as NUL-terminated
UCS-2 strings; the nonce has a fixed-size slot so that the layout does not depend on the nonce.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from . import protocol
from .asm import Assembler
from .uefi import EFI_SUCCESS, RESET_SHUTDOWN, RUNTIME_SERVICES, SYSTEM_TABLE, Field

__all__ = [
    "EntryArg", "Const", "Load", "Value", "Text", "NonceText", "Hex", "FirmwareString", "Part",
    "Print", "CallService", "Halt", "Step", "Program", "fact", "probe_program", "DataArea",
    "NONCE_LABEL", "ENTRY_LABEL",
]


# ------------------------------------------------------------------------------------------------ values


class EntryArg(Enum):
    """An argument of the image entry point (UEFI §4.1 EFI_IMAGE_ENTRY_POINT)."""

    IMAGE_HANDLE = 0
    SYSTEM_TABLE = 1


@dataclass(frozen=True)
class Const:
    value: int


@dataclass(frozen=True)
class Load:
    """The value of `field` in the structure that `base` points to."""

    base: Value
    field: Field


Value = EntryArg | Const | Load


# ------------------------------------------------------------------------------------------------ line parts


@dataclass(frozen=True)
class Text:
    """Literal text, stored in the data area."""

    text: str


@dataclass(frozen=True)
class NonceText:
    """The per-case nonce, stored in its slot in the data area."""


@dataclass(frozen=True)
class Hex:
    """`value` as `digits` upper-case, zero-padded hex digits (the low 4*digits bits)."""

    value: Value
    digits: int

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= 16:
            raise ValueError(f"hex digits must be 1..16, got {self.digits}")


@dataclass(frozen=True)
class FirmwareString:
    """A NUL-terminated UCS-2 string owned by the firmware, printed as-is (nothing when NULL)."""

    pointer: Value


Part = Text | NonceText | Hex | FirmwareString


# ------------------------------------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Print:
    """Print the parts in order: SystemTable->ConOut->OutputString(ConOut, s), once a part."""

    parts: tuple[Part, ...]


@dataclass(frozen=True)
class CallService:
    """Call the firmware function `function` with `args` (the status it returns is ignored for now)."""

    function: Value
    args: tuple[Value, ...]

    @property
    def service(self) -> str:
        return str(self.function.field) if isinstance(self.function, Load) else "function"


@dataclass(frozen=True)
class Halt:
    """Spin forever (never return to the firmware)."""


Step = Print | CallService | Halt


@dataclass(frozen=True)
class Program:
    steps: tuple[Step, ...]

    def parts(self) -> Iterator[Part]:
        for step in self.steps:
            if isinstance(step, Print):
                yield from step.parts


def fact(key: str, *items: str | tuple[str, str | Part]) -> Print:
    """A protocol line `VMCONFORM <nonce> <key> <items...>` as a Print step.

    `items` are literal args (str) or (name, value) fields whose value is literal text or a run-time part;
    a `FirmwareString` may only be the value of a text field (see `protocol.TEXT_FIELDS`), which comes last.
    """
    parts: list[Part] = [Text(protocol.PREFIX + " "), NonceText(), Text(" " + key)]
    for i, item in enumerate(items):
        if isinstance(item, str):
            parts.append(Text(" " + item))
            continue
        name, value = item
        is_text = name in protocol.TEXT_FIELDS
        if is_text and i != len(items) - 1:
            raise ValueError(f"text field {name!r} must be the last item of a {key} line")
        if isinstance(value, FirmwareString) and not is_text:
            raise ValueError(f"firmware string field {name!r} must be a text field ({protocol.TEXT_FIELDS})")
        parts.append(Text(f" {name}="))
        parts.append(Text(value) if isinstance(value, str) else value)
    parts.append(Text(protocol.LINE_END))
    merged: list[Part] = []
    for part in parts:
        if merged and isinstance(part, Text) and isinstance(merged[-1], Text):
            merged[-1] = Text(merged[-1].text + part.text)
        else:
            merged.append(part)
    return Print(tuple(merged))


def probe_program(arch: str) -> Program:
    """The probe: report boot and firmware identity, then shut the VM down."""
    st = EntryArg.SYSTEM_TABLE
    rt = Load(st, SYSTEM_TABLE["RuntimeServices"])
    return Program((
        # ConOut->OutputString: we are running, on this architecture
        fact("BOOT", arch),
        # ConOut->OutputString: system table and runtime services identity
        fact(
            "FW",
            ("st_sig", Hex(Load(st, SYSTEM_TABLE["Hdr.Signature"]), 16)),
            ("uefi_rev", Hex(Load(st, SYSTEM_TABLE["Hdr.Revision"]), 8)),
            ("fw_rev", Hex(Load(st, SYSTEM_TABLE["FirmwareRevision"]), 8)),
            ("rt_sig", Hex(Load(rt, RUNTIME_SERVICES["Hdr.Signature"]), 16)),
            ("vendor", FirmwareString(Load(st, SYSTEM_TABLE["FirmwareVendor"]))),
        ),
        # ConOut->OutputString: announce the shutdown
        fact("END", "shutdown"),
        # RT->ResetSystem(EfiResetShutdown, EFI_SUCCESS, 0, NULL)
        CallService(Load(rt, RUNTIME_SERVICES["ResetSystem"]),
                    (Const(RESET_SHUTDOWN), Const(EFI_SUCCESS), Const(0), Const(0))),
        # ResetSystem returned: spin (never return to the firmware, which would open the boot menu)
        Halt(),
    ))


# ------------------------------------------------------------------------------------------------ data area

NONCE_LABEL = "nonce"
ENTRY_LABEL = "entry"  # every lowering defines the entry point under this label


def ucs2z(text: str) -> bytes:
    """`text` as NUL-terminated UCS-2 (little-endian UTF-16 without surrogates)."""
    if any(ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF for c in text) or "\0" in text:
        raise ValueError(f"{text!r} is not representable as a NUL-terminated UCS-2 string")
    return text.encode("utf-16-le") + b"\0\0"


class DataArea:
    """The literal strings of a program, each with a label, plus the nonce slot."""

    def __init__(self, program: Program) -> None:
        self._labels: dict[str, str] = {}
        for part in program.parts():
            if isinstance(part, Text) and part.text not in self._labels:
                self._labels[part.text] = f"text{len(self._labels)}"

    def label(self, text: str) -> str:
        return self._labels[text]

    def emit(self, asm: Assembler, nonce: str) -> None:
        """Place the data area: nonce slot first (fixed size), then the literals."""
        protocol.validate_nonce(nonce)
        asm.align(8)
        asm.label(NONCE_LABEL)
        slot = ucs2z(nonce).ljust(2 * (protocol.NONCE_MAX + 1), b"\0")
        asm.data(slot, f'.ucs2 "{nonce}" (slot of {protocol.NONCE_MAX} chars)')
        for text, label in self._labels.items():
            asm.align(2)
            asm.label(label)
            asm.data(ucs2z(text), f".ucs2 {text!r}")
