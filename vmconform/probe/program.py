"""The probe program as a sequence of steps, independent of the instruction set.

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
Adding an architecture means adding a lowering; the probe itself (`probe_program`) is written once.

Literal text, GUIDs and other constant bytes live in a data area (`DataArea`) after the code. The nonce
and the names derived from it have fixed-size slots, so the layout does not depend on the nonce.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any
from uuid import UUID

from . import protocol
from .asm import Assembler
from .uefi import (
    ACPI_20_TABLE_GUID,
    BOOT_SERVICES,
    CONFIG_TABLE_VENDOR_TABLE,
    DEVICE_PATH_PROTOCOL_GUID,
    DTB_TABLE_GUID,
    EFI_NOT_FOUND,
    EFI_SUCCESS,
    GLOBAL_VARIABLE_GUID,
    LOAD_OPTION_ACTIVE,
    LOADED_IMAGE_PROTOCOL,
    LOADED_IMAGE_PROTOCOL_GUID,
    RESET_COLD,
    RESET_SHUTDOWN,
    RESET_WARM,
    RUNTIME_SERVICES,
    SMBIOS3_TABLE_GUID,
    SYSTEM_TABLE,
    VARIABLE_BOOTSERVICE_ACCESS,
    VARIABLE_NON_VOLATILE,
    VARIABLE_RUNTIME_ACCESS,
    Field,
    config_table_entry_size,
    efi_error,
    guid_bytes,
)

__all__ = [
    "EntryArg", "Const", "Load", "Mem", "Var", "Buf", "AddrOf", "DataRef", "BinOp", "Bswap32", "Value",
    "Blob", "NonceName", "NonceBytes", "DataItem",
    "Text", "NonceText", "Hex", "HexBytes", "FirmwareString", "Part",
    "Cond", "Print", "CallService", "Set", "Store", "If", "While", "ReadCpu", "Comment", "Halt", "Step",
    "Program", "fact", "probe_program", "DataArea", "MODES", "FACTS", "HEX_BYTES_MAX", "DUMP_MAX",
    "NONCE_LABEL", "ENTRY_LABEL", "VENDOR_GUID", "NV_VARIABLE_PREFIX", "VOLATILE_VARIABLE_PREFIX",
    "BOOTNEXT_OPTION", "NEXT_PATH", "CPU_REGISTERS", "COUNTER_REGISTER", "ucs2z",
]  # fmt: skip

HEX_BYTES_MAX = 64  # bytes one HexBytes part prints at most (the helper's buffer)
DUMP_MAX = 0x40000  # bytes one DUMP blob prints at most (the header still gives the real size)
DEVICE_PATH_MAX = 1024  # a device path walk gives up after this many bytes

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
    return BinOp("add", a, Const(b) if isinstance(b, int) else b)


def sub(a: Value, b: Value | int) -> BinOp:
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
        if not 1 <= self.digits <= 16:
            raise ValueError(f"hex digits must be 1..16, got {self.digits}")


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
    cond: Cond
    then: tuple[Step, ...]
    orelse: tuple[Step, ...] = ()


@dataclass(frozen=True)
class While:
    cond: Cond
    body: tuple[Step, ...]


@dataclass(frozen=True)
class ReadCpu:
    """Store the system register `register` (a name the lowering knows) as 8 little-endian bytes in `into`."""

    register: str
    into: Buf


@dataclass(frozen=True)
class Comment:
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
    steps: tuple[Step, ...]

    def nodes(self) -> Iterator[Any]:
        """Every step, value and part of the program, depth first."""
        yield from _walk(self.steps)

    def parts(self) -> Iterator[Part]:
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


# ------------------------------------------------------------------------------------------------ building lines


FieldValue = str | Part | tuple[Part, ...]


def fact(key: str, *items: str | tuple[str, FieldValue]) -> Print:
    """A protocol line `VMCONFORM <nonce> <key> <items...>` as a Print step.

    `items` are literal args (str) or (name, value) fields whose value is literal text or run-time parts;
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
        if isinstance(value, tuple):
            parts += value
        else:
            parts.append(Text(value) if isinstance(value, str) else value)
    parts.append(Text(protocol.LINE_END))
    return Print(_merge(parts))


def _merge(parts: list[Part] | tuple[Part, ...]) -> tuple[Part, ...]:
    merged: list[Part] = []
    for part in parts:
        if merged and isinstance(part, Text) and isinstance(merged[-1], Text):
            merged[-1] = Text(merged[-1].text + part.text)
        else:
            merged.append(part)
    return tuple(merged)


def _line_start(key: str, *args: str) -> Print:
    """The start of a fact line whose fields follow in later steps (some printed conditionally)."""
    return Print(_merge([Text(protocol.PREFIX + " "), NonceText(), Text(" " + " ".join((key, *args)))]))


def _parts(*items: str | Part) -> Print:
    return Print(_merge([Text(i) if isinstance(i, str) else i for i in items]))


_LINE_END = Print((Text(protocol.LINE_END),))

# ------------------------------------------------------------------------------------------------ the probe

MODES = ("boot", "warm", "cold", "power", "bootnext", "next")
"""boot: report and shut down. warm/cold/power: the NVRAM persistence flows (phase 1 sets the variables, then
ResetSystem(EfiResetWarm/EfiResetCold/EfiResetShutdown); phase 2 checks and cleans up). bootnext: phase 1 writes
a Boot#### option for NEXT_PATH and BootNext, then resets cold. next: the probe at NEXT_PATH (reports BootCurrent,
deletes the option)."""

FACTS = ("tables", "time", "cpu", "dump")
"""Optional fact groups: TABLES, TIME (+ the 1 s stall), CPU, and DUMP of the DTB, ACPI and SMBIOS3 tables."""

VENDOR_GUID = UUID("0B0E5D1C-7A2E-4C5F-9B1D-766D636F6E66")  # vmconform's own variable vendor GUID
NV_VARIABLE_PREFIX = "VmcNv-"
VOLATILE_VARIABLE_PREFIX = "VmcVol-"
BOOTNEXT_OPTION = 0x5643
NEXT_PATH = "\\EFI\\VMCONFORM\\NEXT.EFI"
NEXT_DESCRIPTION = "vmconform NEXT"
NV_BS_RT = VARIABLE_NON_VOLATILE | VARIABLE_BOOTSERVICE_ACCESS | VARIABLE_RUNTIME_ACCESS
DATA_BUFFER = HEX_BYTES_MAX  # GetVariable buffer (the nonce is at most 32 bytes); HexBytes shows all of it

# System registers for the CPU fact, per architecture: (field name, register name the lowering knows).
CPU_REGISTERS: dict[str, tuple[tuple[str, str], ...]] = {
    "aarch64": (("el", "CurrentEL"), ("cntfrq", "CNTFRQ_EL0"), ("midr", "MIDR_EL1"), ("pfr0", "ID_AA64PFR0_EL1")),
    "arm": (("cpsr", "CPSR"), ("cntfrq", "CNTFRQ"), ("midr", "MIDR"), ("pfr1", "ID_PFR1")),
}
COUNTER_REGISTER = {"aarch64": "CNTVCT_EL0", "arm": "CNTVCT"}


def _u16le(addr: Value, offset: int = 0) -> Value:
    """A little-endian UINT16 read bytewise (device path nodes are byte-packed, so not always aligned)."""
    return BinOp("or", Mem(addr, offset, 1), BinOp("shl", Mem(addr, offset + 1, 1), Const(8)))


def _file_path_node(path: str) -> bytes:
    """MEDIA_DEVICE_PATH / MEDIA_FILEPATH_DP (UEFI §10.3.5.4) for `path`, then the end-of-path node."""
    name = ucs2z(path)
    return bytes([4, 4]) + (4 + len(name)).to_bytes(2, "little") + name + bytes([0x7F, 0xFF, 4, 0])


ChunkParts = Callable[[Value, Var, Var], tuple[str | Part, ...]]  # (address, offset, size) -> line parts


def _hex_chunk(at: Value, offset: Var, size: Var) -> tuple[str | Part, ...]:
    return (HexBytes(at, size),)


class _Probe:
    """Builds the probe's steps for one architecture; every step is commented with what it calls."""

    def __init__(self, arch: str, pointer_size: int) -> None:
        self.arch = arch
        self.ps = pointer_size
        self.st = EntryArg.SYSTEM_TABLE
        self.rt = Load(self.st, SYSTEM_TABLE["RuntimeServices"])
        self.bs = Load(self.st, SYSTEM_TABLE["BootServices"])

    # -------------------------------------------------------------- helpers

    def status(self, var: Var) -> Hex:
        """An EFI_STATUS (UINTN) in hex, all digits."""
        return Hex(var, 2 * self.ps)

    def error(self, code: int) -> Const:
        return Const(efi_error(code, self.ps))

    def hex64(self, addr: Value, offset: int = 0) -> tuple[Part, ...]:
        """The aligned UINT64 at addr+offset as 16 hex digits (two 32-bit halves on 32-bit firmware)."""
        if self.ps == 8:
            return (Hex(Mem(addr, offset, 8), 16),)
        return Hex(Mem(addr, offset + 4, 4), 8), Hex(Mem(addr, offset, 4), 8)

    def u64_address(self, addr: Value, offset: int) -> Value:
        """A UINT64 physical address at a 4-byte aligned place as a pointer (32-bit firmware: the low half)."""
        low = Mem(addr, offset, 4)
        return low if self.ps == 4 else BinOp("or", low, BinOp("shl", Mem(addr, offset + 4, 4), Const(32)))

    def call(self, table: Value, struct_field: Field, *args: Value, result: Var | None = None) -> CallService:
        return CallService(Load(table, struct_field), tuple(args), result)

    def chunked(self, addr: Value, length: Var, parts: ChunkParts) -> tuple[Step, ...]:
        """Print `parts(address, offset, size)` for each HEX_BYTES_MAX-byte chunk of the `length` bytes at `addr`."""
        offset, chunk = Var("chunk_off"), Var("chunk_len")
        return (
            Set(offset, Const(0)),
            While(Cond("lo", offset, length), (
                Set(chunk, sub(length, offset)),
                If(Cond("hi", chunk, Const(HEX_BYTES_MAX)), (Set(chunk, Const(HEX_BYTES_MAX)),)),
                _parts(*parts(add(addr, offset), offset, chunk)),
                Set(offset, add(offset, chunk)),
            )),
        )  # fmt: skip

    def device_path_size(self, path: Value, size: Var) -> tuple[Step, ...]:
        """`size` = the bytes of the device path at `path` up to and including its first end node."""
        node, length, walking = Var("dp_node"), Var("dp_len"), Var("dp_walking")
        return (
            Set(node, path),
            Set(walking, Const(1)),
            While(Cond("ne", walking, Const(0)), (
                Set(length, _u16le(node, 2)),
                If(Cond("eq", Mem(node, 0, 1), Const(0x7F)), (Set(walking, Const(0)),)),  # END_DEVICE_PATH_TYPE
                If(Cond("lo", length, Const(4)), (Set(walking, Const(0)), Set(length, Const(4)))),
                Set(node, add(node, length)),
                If(Cond("hi", sub(node, path), Const(DEVICE_PATH_MAX)), (Set(walking, Const(0)),)),
            )),
            Set(size, sub(node, path)),
        )  # fmt: skip

    def find_table(self, guid: UUID, out: Var) -> tuple[Step, ...]:
        """`out` = the VendorTable of the configuration-table entry with `guid`, or 0."""
        entry, index = Var("ct_entry"), Var("ct_index")
        ref = DataRef(Blob(f"guid_{guid}", guid_bytes(guid)))
        match: tuple[Step, ...] = (Set(out, Mem(entry, CONFIG_TABLE_VENDOR_TABLE)),)
        for word in (12, 8, 4, 0):  # compare the GUID a 32-bit word at a time
            match = (If(Cond("eq", Mem(entry, word, 4), Mem(ref, word, 4)), match),)
        return (
            Comment(f"find the configuration table {guid}"),
            Set(out, Const(0)),
            Set(entry, Load(self.st, SYSTEM_TABLE["ConfigurationTable"])),
            Set(index, Const(0)),
            While(Cond("lo", index, Load(self.st, SYSTEM_TABLE["NumberOfTableEntries"])), (
                *match,
                Set(entry, add(entry, config_table_entry_size(self.ps))),
                Set(index, add(index, 1)),
            )),
        )  # fmt: skip

    def dump(self, name: tuple[str | Part, ...], addr: Var, size: Var, shown: Var | None = None) -> tuple[Step, ...]:
        """DUMP <name> addr= size=<size> shown=<bytes dumped>, then DUMP <name> off= data= lines.

        `shown` (default `size`) is how much to dump, capped at DUMP_MAX: the FDT's header counts the free
        space its buffer has left, which the host need not see.
        """
        total = Var("dump_total")
        line = ("VMCONFORM ", NonceText(), " DUMP ", *name)
        return (
            Set(total, size if shown is None else shown),
            If(Cond("hi", total, Const(DUMP_MAX)), (Set(total, Const(DUMP_MAX)),)),
            _parts(*line, " addr=", Hex(addr, 2 * self.ps), " size=", Hex(size, 8), " shown=", Hex(total, 8),
                   protocol.LINE_END),
            *self.chunked(addr, total, lambda at, offset, chunk: (
                *line, " off=", Hex(offset, 8), " data=", HexBytes(at, chunk), protocol.LINE_END)),
        )  # fmt: skip

    def reset(self, kind: int) -> tuple[Step, ...]:
        return (
            Comment(f"RT->ResetSystem({kind}, EFI_SUCCESS, 0, NULL)"),
            self.call(self.rt, RUNTIME_SERVICES["ResetSystem"], Const(kind), Const(EFI_SUCCESS), Const(0), Const(0)),
        )

    def shutdown(self, how: str = "shutdown") -> tuple[Step, ...]:
        """END, then ResetSystem(EfiResetShutdown); if that returns, spin (never return to the firmware)."""
        return (fact("END", how), *self.reset(RESET_SHUTDOWN), Halt())

    # -------------------------------------------------------------- facts

    def boot(self) -> tuple[Step, ...]:
        li, dp, fp = Var("loaded_image"), Var("device_path"), Var("file_path")
        st_li, st_dp = Var("st_loaded_image"), Var("st_device_path")
        size = Var("dp_size")
        return (
            Comment("BS->HandleProtocol(ImageHandle, &gEfiLoadedImageProtocolGuid, &loaded_image)"),
            self.call(self.bs, BOOT_SERVICES["HandleProtocol"], EntryArg.IMAGE_HANDLE,
                      DataRef(Blob("guid_loaded_image", guid_bytes(LOADED_IMAGE_PROTOCOL_GUID))), AddrOf(li),
                      result=st_li),
            Set(st_dp, Const(efi_error(EFI_NOT_FOUND, self.ps))),
            If(Cond("eq", st_li, Const(EFI_SUCCESS)), (
                Comment("BS->HandleProtocol(loaded_image->DeviceHandle, &gEfiDevicePathProtocolGuid, &device_path)"),
                self.call(self.bs, BOOT_SERVICES["HandleProtocol"], Load(li, LOADED_IMAGE_PROTOCOL["DeviceHandle"]),
                          DataRef(Blob("guid_device_path", guid_bytes(DEVICE_PATH_PROTOCOL_GUID))), AddrOf(dp),
                          result=st_dp),
            )),
            _line_start("BOOT", self.arch),
            _parts(" image=", self.status(st_li), " device=", self.status(st_dp)),
            If(Cond("eq", st_dp, Const(EFI_SUCCESS)), (
                Comment("the loaded image's device path (the host finds the HD() node in it)"),
                *self.device_path_size(dp, size),
                _parts(" devpath="),
                *self.chunked(dp, size, _hex_chunk),
            )),
            If(Cond("eq", st_li, Const(EFI_SUCCESS)), (
                Comment("loaded_image->FilePath, as bytes and, when it starts with a file path node, as text"),
                Set(fp, Load(li, LOADED_IMAGE_PROTOCOL["FilePath"])),
                *self.device_path_size(fp, size),
                _parts(" filepath="),
                *self.chunked(fp, size, _hex_chunk),
                If(Cond("eq", _u16le(fp), Const(0x0404)), (  # MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP
                    _parts(" path=", FirmwareString(add(fp, 4))),
                )),
            )),
            _LINE_END,
        )  # fmt: skip

    def firmware(self) -> Print:
        st, rt = self.st, self.rt
        return fact(
            "FW",
            ("st_sig", self.hex64(st, SYSTEM_TABLE["Hdr.Signature"].offset(self.ps))),
            ("uefi_rev", Hex(Load(st, SYSTEM_TABLE["Hdr.Revision"]), 8)),
            ("fw_rev", Hex(Load(st, SYSTEM_TABLE["FirmwareRevision"]), 8)),
            ("rt_sig", self.hex64(rt, RUNTIME_SERVICES["Hdr.Signature"].offset(self.ps))),
            ("vendor", FirmwareString(Load(st, SYSTEM_TABLE["FirmwareVendor"]))),
        )

    def tables(self) -> tuple[Step, ...]:
        entry, index = Var("ct_entry"), Var("ct_index")
        count = Load(self.st, SYSTEM_TABLE["NumberOfTableEntries"])
        return (
            Comment("every configuration-table GUID, in memory order"),
            _line_start("TABLES"),
            _parts(" count=", Hex(count, 8)),
            Set(entry, Load(self.st, SYSTEM_TABLE["ConfigurationTable"])),
            Set(index, Const(0)),
            While(Cond("lo", index, count), (
                _parts(" ", HexBytes(entry, Const(16))),
                Set(entry, add(entry, config_table_entry_size(self.ps))),
                Set(index, add(index, 1)),
            )),
            _LINE_END,
        )  # fmt: skip

    def time_and_cpu(self, time: bool, cpu: bool) -> tuple[Step, ...]:
        t0, t1, c0, c1 = Buf("time0", 16), Buf("time1", 16), Buf("counter0", 8), Buf("counter1", 8)
        g0, g1, stall, set_ = Var("st_get0"), Var("st_get1"), Var("st_stall"), Var("st_set")
        counter = COUNTER_REGISTER[self.arch]
        steps: list[Step] = [
            ReadCpu(counter, c0),
            Comment("RT->GetTime(&time0, NULL)"),
            self.call(self.rt, RUNTIME_SERVICES["GetTime"], AddrOf(t0), Const(0), result=g0),
            Comment("BS->Stall(1000000): one second"),
            self.call(self.bs, BOOT_SERVICES["Stall"], Const(1_000_000), result=stall),
            Comment("RT->GetTime(&time1, NULL)"),
            self.call(self.rt, RUNTIME_SERVICES["GetTime"], AddrOf(t1), Const(0), result=g1),
            ReadCpu(counter, c1),
        ]
        if time:
            steps += [
                Comment("RT->SetTime(&time1): write the time back"),
                self.call(self.rt, RUNTIME_SERVICES["SetTime"], AddrOf(t1), result=set_),
                fact(
                    "TIME",
                    ("get0", self.status(g0)),
                    ("t0", HexBytes(AddrOf(t0), Const(16))),
                    ("stall", self.status(stall)),
                    ("get1", self.status(g1)),
                    ("t1", HexBytes(AddrOf(t1), Const(16))),
                    ("set", self.status(set_)),
                ),
            ]
        if cpu:
            regs = [(name, reg, Buf(f"cpu_{name}", 8)) for name, reg in CPU_REGISTERS[self.arch]]
            steps += [ReadCpu(reg, buf) for _, reg, buf in regs]
            items = [(name, self.hex64(AddrOf(buf))) for name, _, buf in regs]
            items += [("cntvct0", self.hex64(AddrOf(c0))), ("cntvct1", self.hex64(AddrOf(c1)))]
            steps.append(fact("CPU", *items))
        return tuple(steps)

    def dumps(self) -> tuple[Step, ...]:
        fdt, size, rsdp, xsdt, entry, table, index, count = (
            Var("fdt"), Var("blob_size"), Var("rsdp"), Var("xsdt"), Var("xsdt_entry"), Var("acpi_table"),
            Var("acpi_index"), Var("acpi_count"),
        )  # fmt: skip
        smbios, smbios_table = Var("smbios3"), Var("smbios3_table")
        used, strings_end = Var("fdt_used"), Var("fdt_strings_end")
        return (
            *self.find_table(DTB_TABLE_GUID, fdt),
            If(Cond("ne", fdt, Const(0)), (
                Comment("the FDT (big-endian header): totalsize at 4; the blocks end at off_dt_struct (8) + "
                        "size_dt_struct (36) and off_dt_strings (12) + size_dt_strings (32)"),
                Set(size, Bswap32(Mem(fdt, 4, 4))),
                Set(used, add(Bswap32(Mem(fdt, 8, 4)), Bswap32(Mem(fdt, 36, 4)))),
                Set(strings_end, add(Bswap32(Mem(fdt, 12, 4)), Bswap32(Mem(fdt, 32, 4)))),
                If(Cond("hi", strings_end, used), (Set(used, strings_end),)),
                If(Cond("hi", used, size), (Set(used, size),)),
                *self.dump(("dtb",), fdt, size, used),
            )),
            *self.find_table(ACPI_20_TABLE_GUID, rsdp),
            If(Cond("ne", rsdp, Const(0)), (
                Comment("the RSDP: Length at 20 (revision 2+), XsdtAddress at 24"),
                Set(size, Mem(rsdp, 20, 4)),
                If(Cond("eq", Mem(rsdp, 15, 1), Const(0)), (Set(size, Const(20)),)),  # ACPI 1.0 RSDP
                If(Cond("hi", size, Const(HEX_BYTES_MAX)), (Set(size, Const(HEX_BYTES_MAX)),)),
                *self.dump(("rsdp",), rsdp, size),
                Set(xsdt, Const(0)),
                If(Cond("ne", Mem(rsdp, 15, 1), Const(0)), (Set(xsdt, self.u64_address(rsdp, 24)),)),
                If(Cond("ne", xsdt, Const(0)), (
                    Comment("the XSDT, then every table it lists (64-bit addresses from offset 36)"),
                    Set(size, Mem(xsdt, 4, 4)),
                    *self.dump(("xsdt",), xsdt, size),
                    Set(count, BinOp("shr", sub(size, 36), Const(3))),
                    If(Cond("lo", size, Const(36)), (Set(count, Const(0)),)),
                    Set(entry, add(xsdt, 36)),
                    Set(index, Const(0)),
                    While(Cond("lo", index, count), (
                        Set(table, self.u64_address(entry, 0)),
                        If(Cond("ne", table, Const(0)), (
                            Set(size, Mem(table, 4, 4)),
                            *self.dump(("acpi", Hex(index, 2)), table, size),
                        )),
                        Set(entry, add(entry, 8)),
                        Set(index, add(index, 1)),
                    )),
                )),
            )),
            *self.find_table(SMBIOS3_TABLE_GUID, smbios),
            If(Cond("ne", smbios, Const(0)), (
                Comment("the SMBIOS 3 entry point (length at 6), then the structure table (max size at 12, "
                        "address at 16)"),
                Set(size, Mem(smbios, 6, 1)),
                *self.dump(("smbios3",), smbios, size),
                Set(smbios_table, self.u64_address(smbios, 16)),
                Set(size, Mem(smbios, 12, 4)),
                If(Cond("ne", smbios_table, Const(0)), self.dump(("smbios3_table",), smbios_table, size)),
            )),
        )  # fmt: skip

    # -------------------------------------------------------------- NVRAM

    def get_variable(self, name: DataItem, guid: Value, result: Var, buf: Buf) -> tuple[Step, ...]:
        attr, size = Var("var_attr"), Var("var_size")
        label = name.prefix if isinstance(name, NonceName) else getattr(name, "text", "")
        return (
            Set(attr, Const(0)),
            Set(size, Const(buf.size)),
            Comment(f"RT->GetVariable({label}..., guid, &attr, &size, buffer)"),
            self.call(
                self.rt,
                RUNTIME_SERVICES["GetVariable"],
                DataRef(name),
                guid,
                AddrOf(attr),
                AddrOf(size),
                AddrOf(buf),
                result=result,
            ),
        )

    def set_variable(
        self, name: DataItem, guid: Value, attributes: int, size: Value, data: Value, result: Var
    ) -> CallService:
        return self.call(
            self.rt, RUNTIME_SERVICES["SetVariable"], DataRef(name), guid, Const(attributes), size, data, result=result
        )

    def var_fields(self, prefix: str, status: Var, buf: Buf) -> tuple[Part | str, ...]:
        """` <prefix>=<status> <prefix>_attr= <prefix>_size= <prefix>_data=` from the last get_variable.

        The data shown is at most HEX_BYTES_MAX = DATA_BUFFER bytes, whatever size the firmware reported.
        """
        attr, size = Var("var_attr"), Var("var_size")
        return (
            " ",
            prefix,
            "=",
            self.status(status),
            " ",
            prefix,
            "_attr=",
            Hex(attr, 8),
            " ",
            prefix,
            "_size=",
            Hex(size, 8),
            " ",
            prefix,
            "_data=",
            HexBytes(AddrOf(buf), size),
        )

    def nvram(self, mode: str) -> tuple[Step, ...]:
        guid = DataRef(Blob("guid_vendor", guid_bytes(VENDOR_GUID)))
        nv, vol, data = NonceName(NV_VARIABLE_PREFIX), NonceName(VOLATILE_VARIABLE_PREFIX), NonceBytes()
        buf = Buf("var_data", DATA_BUFFER)
        got, st_nv, st_vol, st_del = Var("st_get"), Var("st_set_nv"), Var("st_set_vol"), Var("st_delete")
        nonce_len = Mem(DataRef(data), -4, 4)
        volatile = VARIABLE_BOOTSERVICE_ACCESS | VARIABLE_RUNTIME_ACCESS
        reset = {
            "warm": (fact("RESET", "warm"), *self.reset(RESET_WARM), fact("END", "reset-returned"), Halt()),
            "cold": (fact("RESET", "cold"), *self.reset(RESET_COLD), fact("END", "reset-returned"), Halt()),
            "power": self.shutdown(),
        }[mode]
        phase1 = (
            _parts("VMCONFORM ", NonceText(), f" NVRAM phase1 mode={mode} get=", self.status(got), protocol.LINE_END),
            Comment("RT->SetVariable(nv name, vendor, NV|BS|RT, nonce): the persistent test variable"),
            self.set_variable(nv, guid, NV_BS_RT, nonce_len, DataRef(data), st_nv),
            Comment("RT->SetVariable(volatile name, vendor, BS|RT, nonce): must be gone after the reset"),
            self.set_variable(vol, guid, volatile, nonce_len, DataRef(data), st_vol),
            fact("NVRAM", "set", ("nv", self.status(st_nv)), ("vol", self.status(st_vol))),
            *self.get_variable(nv, guid, got, buf),
            _parts("VMCONFORM ", NonceText(), " NVRAM readback", *self.var_fields("nv", got, buf)),
            *self.get_variable(vol, guid, got, buf),
            _parts(*self.var_fields("vol", got, buf), protocol.LINE_END),
            *reset,
        )
        phase2 = (
            _parts(
                "VMCONFORM ",
                NonceText(),
                f" NVRAM phase2 mode={mode}",
                *self.var_fields("get", got, buf),
                protocol.LINE_END,
            ),
            *self.get_variable(vol, guid, got, buf),
            fact("NVRAM", "volatile", ("get", self.status(got))),
            Comment("RT->SetVariable(nv name, vendor, 0, 0, NULL): delete the test variable"),
            self.set_variable(nv, guid, 0, Const(0), Const(0), st_del),
            fact("NVRAM", "delete", ("status", self.status(st_del))),
            fact("NVRAM", "done"),
        )
        return (
            *self.get_variable(nv, guid, got, buf),
            If(Cond("eq", got, self.error(EFI_NOT_FOUND)), phase1, (
                If(Cond("eq", got, Const(EFI_SUCCESS)), phase2, (
                    fact("NVRAM", "error", ("get", self.status(got))),
                )),
            )),
            *self.shutdown(),
        )  # fmt: skip

    def bootnext(self) -> tuple[Step, ...]:
        glob = DataRef(Blob("guid_global", guid_bytes(GLOBAL_VARIABLE_GUID)))
        option_name = Text(f"Boot{BOOTNEXT_OPTION:04X}")
        buf = Buf("var_data", DATA_BUFFER)
        opt, next_value = Buf("load_option", 512), Buf("boot_next", 8)
        dp, dp_size = Var("device_path"), Var("dp_size")
        st_dp, got, st_opt, st_next, st_del = (
            Var("st_device_path"), Var("st_get"), Var("st_set_option"), Var("st_set_next"), Var("st_delete"),
        )  # fmt: skip
        description = Blob("next_description", ucs2z(NEXT_DESCRIPTION))
        tail = Blob("next_file_path", _file_path_node(NEXT_PATH))
        # EFI_LOAD_OPTION: Attributes (4), FilePathListLength (2), Description, FilePathList[] (UEFI §3.1.3)
        at_path = 6 + len(description.data)
        path_size = Var("option_path_size")
        copy = BOOT_SERVICES["CopyMem"]
        phase1 = (
            fact("BOOTNEXT", "phase1", ("get", self.status(got))),
            Comment("the load option: our device's path (without its end node) + file path NEXT.EFI + end"),
            *self.device_path_size(dp, dp_size),
            Set(path_size, add(sub(dp_size, 4), len(tail.data))),
            If(Cond("hi", add(path_size, at_path), Const(opt.size)), (Set(path_size, Const(0)),)),
            If(
                Cond("ne", path_size, Const(0)),
                (
                    Store(AddrOf(opt), Const(LOAD_OPTION_ACTIVE), 0, 4),
                    Store(AddrOf(opt), path_size, 4, 2),
                    Comment("BS->CopyMem(): description, device path, file path node"),
                    self.call(self.bs, copy, add(AddrOf(opt), 6), DataRef(description), Const(len(description.data))),
                    self.call(self.bs, copy, add(AddrOf(opt), at_path), dp, sub(dp_size, 4)),
                    self.call(
                        self.bs,
                        copy,
                        add(add(AddrOf(opt), at_path), sub(dp_size, 4)),
                        DataRef(tail),
                        Const(len(tail.data)),
                    ),
                    Comment(f"RT->SetVariable(Boot{BOOTNEXT_OPTION:04X}, global, NV|BS|RT, option)"),
                    self.set_variable(option_name, glob, NV_BS_RT, add(path_size, at_path), AddrOf(opt), st_opt),
                    Store(AddrOf(next_value), Const(BOOTNEXT_OPTION), 0, 2),
                    Comment("RT->SetVariable(BootNext, global, NV|BS|RT, option number)"),
                    self.set_variable(Text("BootNext"), glob, NV_BS_RT, Const(2), AddrOf(next_value), st_next),
                    _parts(
                        "VMCONFORM ",
                        NonceText(),
                        f" BOOTNEXT set option={BOOTNEXT_OPTION:04X} option_status=",
                        self.status(st_opt),
                        " next_status=",
                        self.status(st_next),
                        protocol.LINE_END,
                    ),
                    fact("RESET", "cold"),
                    *self.reset(RESET_COLD),
                    fact("END", "reset-returned"),
                    Halt(),
                ),
            ),
            fact("BOOTNEXT", "error", ("devpath_size", Hex(dp_size, 8))),  # no room in the option buffer
        )
        again = (
            fact("BOOTNEXT", "again", ("get", self.status(got))),
            self.set_variable(option_name, glob, 0, Const(0), Const(0), st_del),
            fact("BOOTNEXT", "delete", ("status", self.status(st_del))),
        )
        return (
            Comment("phase 1 unless our option exists: it uses the device path the BOOT fact fetched (st_device_path)"),
            *self.get_variable(option_name, glob, got, buf),
            If(Cond("eq", got, self.error(EFI_NOT_FOUND)), (
                If(Cond("eq", st_dp, Const(EFI_SUCCESS)), phase1, (
                    fact("BOOTNEXT", "error", ("device", self.status(st_dp))),
                )),
            ), again),
            *self.shutdown(),
        )  # fmt: skip

    def next(self) -> tuple[Step, ...]:
        glob = DataRef(Blob("guid_global", guid_bytes(GLOBAL_VARIABLE_GUID)))
        buf = Buf("var_data", DATA_BUFFER)
        got, st_del = Var("st_get"), Var("st_delete")
        return (
            *self.get_variable(Text("BootCurrent"), glob, got, buf),
            fact("BOOTNEXT", "next", ("current_status", self.status(got)),
                 ("current", Hex(Mem(AddrOf(buf), 0, 2), 4))),
            Comment(f"RT->SetVariable(Boot{BOOTNEXT_OPTION:04X}, global, 0, 0, NULL): delete the option"),
            self.set_variable(Text(f"Boot{BOOTNEXT_OPTION:04X}"), glob, 0, Const(0), Const(0), st_del),
            fact("BOOTNEXT", "delete", ("status", self.status(st_del))),
            *self.shutdown(),
        )  # fmt: skip


def probe_program(arch: str, pointer_size: int = 8, mode: str = "boot", facts: Collection[str] = ()) -> Program:
    """The probe for `arch`: BOOT, FW, the optional `facts`, then what `mode` asks; it never returns.

    mode is one of MODES, facts a subset of FACTS.
    """
    if mode not in MODES:
        raise ValueError(f"unknown probe mode {mode!r}; known: {', '.join(MODES)}")
    unknown = set(facts) - set(FACTS)
    if unknown:
        raise ValueError(f"unknown probe facts {sorted(unknown)}; known: {', '.join(FACTS)}")
    if arch not in CPU_REGISTERS:
        raise ValueError(f"no probe program for {arch!r}")
    p = _Probe(arch, pointer_size)
    steps: list[Step] = [*p.boot(), p.firmware()]
    if "tables" in facts:
        steps += p.tables()
    if "time" in facts or "cpu" in facts:
        steps += p.time_and_cpu("time" in facts, "cpu" in facts)
    if "dump" in facts:
        steps += p.dumps()
    if mode == "boot":
        steps += p.shutdown()
    elif mode in ("warm", "cold", "power"):
        steps += p.nvram(mode)
    elif mode == "bootnext":
        steps += p.bootnext()
    else:
        steps += p.next()
    return Program(tuple(steps))


# ------------------------------------------------------------------------------------------------ data area

NONCE_LABEL = "nonce"
ENTRY_LABEL = "entry"  # every lowering defines the entry point under this label


def ucs2z(text: str) -> bytes:
    """`text` as NUL-terminated UCS-2 (little-endian UTF-16 without surrogates)."""
    if any(ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF for c in text) or "\0" in text:
        raise ValueError(f"{text!r} is not representable as a NUL-terminated UCS-2 string")
    return text.encode("utf-16-le") + b"\0\0"


class DataArea:
    """The program's data items, each with a label, plus the nonce slot (always first)."""

    def __init__(self, program: Program) -> None:
        self._labels: dict[DataItem, str] = {}
        for item in program.data_items():
            self._labels[item] = f"data{len(self._labels)}"

    def label(self, item: DataItem | str) -> str:
        """The label of a data item (a str means that Text)."""
        return self._labels[Text(item) if isinstance(item, str) else item]

    def emit(self, asm: Assembler, nonce: str) -> None:
        """Place the data area: nonce slot first (fixed size), then the items in order of first use."""
        protocol.validate_nonce(nonce)
        slot = 2 * (protocol.NONCE_MAX + 1)
        asm.align(8)
        asm.label(NONCE_LABEL)
        asm.data(ucs2z(nonce).ljust(slot, b"\0"), f'.ucs2 "{nonce}" (slot of {protocol.NONCE_MAX} chars)')
        for item, label in self._labels.items():
            if isinstance(item, Text):
                asm.align(2)
                asm.label(label)
                asm.data(ucs2z(item.text), f".ucs2 {item.text!r}")
            elif isinstance(item, Blob):
                asm.align(8)
                asm.label(label)
                asm.data(item.data, f".bytes {item.name}")
            elif isinstance(item, NonceName):
                asm.align(8)
                asm.label(label)
                asm.data(
                    ucs2z(item.prefix + nonce).ljust(2 * len(item.prefix) + slot, b"\0"),
                    f'.ucs2 "{item.prefix}{nonce}" (fixed slot)',
                )
            else:
                asm.align(8)
                asm.data(len(nonce).to_bytes(4, "little"), f".word {len(nonce)} (nonce length)")
                asm.label(label)
                asm.data(nonce.encode("ascii").ljust(protocol.NONCE_MAX + 4, b"\0"), f'.ascii "{nonce}"')
