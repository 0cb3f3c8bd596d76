"""UEFI tables and constants the probe reads, with field offsets for 32- and 64-bit firmware.

Implements the layouts of UEFI Specification 2.10 §4.2 (EFI_TABLE_HEADER), §4.3 (EFI_SYSTEM_TABLE),
§4.5 (EFI_RUNTIME_SERVICES), §12.4 (EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL) and §8.5.1 (EFI_RESET_TYPE);
see also shared/spec/clauses.md §1.7. Structures use natural alignment (§2.3.1): a field is aligned to its
own size, so UINTN, handles and pointers are 4 or 8 bytes by the firmware's pointer size. The offsets
computed here are the ones the AArch64 and Arm prototypes confirmed on AAVMF (tests pin them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "Kind", "Field", "Struct", "SYSTEM_TABLE", "RUNTIME_SERVICES", "SIMPLE_TEXT_OUTPUT_PROTOCOL",
    "EFI_SUCCESS", "RESET_COLD", "RESET_WARM", "RESET_SHUTDOWN", "RESET_PLATFORM_SPECIFIC",
    "SYSTEM_TABLE_SIGNATURE", "RUNTIME_SERVICES_SIGNATURE",
]


class Kind(Enum):
    """The C type class of a field."""

    U32 = "UINT32"
    U64 = "UINT64"
    UINTN = "UINTN"  # also every pointer, handle and function pointer

    def size(self, pointer_size: int) -> int:
        if pointer_size not in (4, 8):
            raise ValueError(f"pointer size must be 4 or 8, got {pointer_size}")
        return {Kind.U32: 4, Kind.U64: 8, Kind.UINTN: pointer_size}[self]


@dataclass(frozen=True)
class Field:
    """A field of a UEFI structure; its offset depends on the pointer size."""

    struct: str
    name: str
    kind: Kind
    preceding: tuple[Kind, ...]

    def size(self, pointer_size: int) -> int:
        return self.kind.size(pointer_size)

    def offset(self, pointer_size: int) -> int:
        offset = 0
        for kind in self.preceding:
            size = kind.size(pointer_size)
            offset += -offset % size + size
        return offset + -offset % self.size(pointer_size)

    def __str__(self) -> str:
        return f"{self.struct}.{self.name}"


class Struct:
    """A UEFI structure as an ordered list of (name, kind) members."""

    def __init__(self, name: str, members: tuple[tuple[str, Kind], ...]) -> None:
        self.name = name
        kinds = [kind for _, kind in members]
        self._fields = {
            member: Field(name, member, kind, tuple(kinds[:i])) for i, (member, kind) in enumerate(members)
        }
        if len(self._fields) != len(members):
            raise ValueError(f"{name}: duplicate member names")

    def __getitem__(self, member: str) -> Field:
        try:
            return self._fields[member]
        except KeyError:
            raise KeyError(f"{self.name} has no member {member!r}") from None

    def __iter__(self) -> Iterator[Field]:
        return iter(self._fields.values())


_TABLE_HEADER: tuple[tuple[str, Kind], ...] = (
    ("Hdr.Signature", Kind.U64),
    ("Hdr.Revision", Kind.U32),
    ("Hdr.HeaderSize", Kind.U32),
    ("Hdr.CRC32", Kind.U32),
    ("Hdr.Reserved", Kind.U32),
)


def _pointers(*names: str) -> tuple[tuple[str, Kind], ...]:
    return tuple((name, Kind.UINTN) for name in names)


SYSTEM_TABLE = Struct("EFI_SYSTEM_TABLE", (
    *_TABLE_HEADER,
    ("FirmwareVendor", Kind.UINTN),
    ("FirmwareRevision", Kind.U32),
    *_pointers("ConsoleInHandle", "ConIn", "ConsoleOutHandle", "ConOut", "StandardErrorHandle", "StdErr",
               "RuntimeServices", "BootServices", "NumberOfTableEntries", "ConfigurationTable"),
))

RUNTIME_SERVICES = Struct("EFI_RUNTIME_SERVICES", (
    *_TABLE_HEADER,
    *_pointers("GetTime", "SetTime", "GetWakeupTime", "SetWakeupTime", "SetVirtualAddressMap",
               "ConvertPointer", "GetVariable", "GetNextVariableName", "SetVariable",
               "GetNextHighMonotonicCount", "ResetSystem", "UpdateCapsule", "QueryCapsuleCapabilities",
               "QueryVariableInfo"),
))

SIMPLE_TEXT_OUTPUT_PROTOCOL = Struct("EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL", _pointers(
    "Reset", "OutputString", "TestString", "QueryMode", "SetMode", "SetAttribute", "ClearScreen",
    "SetCursorPosition", "EnableCursor", "Mode",
))

EFI_SUCCESS = 0

# EFI_RESET_TYPE
RESET_COLD = 0
RESET_WARM = 1
RESET_SHUTDOWN = 2
RESET_PLATFORM_SPECIFIC = 3

SYSTEM_TABLE_SIGNATURE = int.from_bytes(b"IBI SYST", "little")
RUNTIME_SERVICES_SIGNATURE = int.from_bytes(b"RUNTSERV", "little")
