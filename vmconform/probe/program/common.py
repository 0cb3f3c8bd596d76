"""Building blocks of the probe's steps for one target firmware: calls, statuses, walks, dumps and variables.

`Target` knows the architecture and the firmware's pointer size; its methods return steps (or values and
line items) that `facts` and `nvram` put together. Every firmware call is preceded by a `Comment` naming
it, so the listing (`vmconform gen --listing`) reads like the C it stands for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from ..uefi import (
    CONFIG_TABLE_VENDOR_TABLE,
    EFI_SUCCESS,
    KNOWN_GUIDS,
    RESET_SHUTDOWN,
    RUNTIME_SERVICES,
    SYSTEM_TABLE,
    VARIABLE_BOOTSERVICE_ACCESS,
    VARIABLE_NON_VOLATILE,
    VARIABLE_RUNTIME_ACCESS,
    Field,
    config_table_entry_size,
    efi_error,
    guid_bytes,
)
from .data import ucs2z
from .ir import (
    HEX_BYTES_MAX,
    AddrOf,
    BinOp,
    Blob,
    Buf,
    CallService,
    Comment,
    Cond,
    Const,
    DataItem,
    DataRef,
    EntryArg,
    Halt,
    Hex,
    HexBytes,
    If,
    Load,
    Mem,
    NonceName,
    Part,
    Set,
    Step,
    Text,
    Value,
    Var,
    While,
    add,
    sub,
)
from .lines import Item, arg, line

__all__ = [
    "Target", "DUMP_MAX", "DEVICE_PATH_MAX", "DATA_BUFFER", "NV_BS_RT", "u16le", "file_path_node", "guid_blob",
]  # fmt: skip

DUMP_MAX = 0x40000  # bytes one DUMP blob prints at most (the header still gives the real size)
DEVICE_PATH_MAX = 1024  # a device path walk gives up after this many bytes
DATA_BUFFER = HEX_BYTES_MAX  # GetVariable buffer (the nonce is at most 32 bytes); HexBytes shows all of it
NV_BS_RT = VARIABLE_NON_VOLATILE | VARIABLE_BOOTSERVICE_ACCESS | VARIABLE_RUNTIME_ACCESS

Chunk = Callable[[Value, Var, Var], Step]  # (address, offset, size) -> the step printing that chunk


def u16le(addr: Value, offset: int = 0) -> Value:
    """A little-endian UINT16 read bytewise (device path nodes are byte-packed, so not always aligned)."""
    return BinOp("or", Mem(addr, offset, 1), BinOp("shl", Mem(addr, offset + 1, 1), Const(8)))


def file_path_node(path: str) -> bytes:
    """MEDIA_DEVICE_PATH / MEDIA_FILEPATH_DP (UEFI §10.3.5.4) for `path`, then the end-of-path node."""
    name = ucs2z(path)
    return bytes([4, 4]) + (4 + len(name)).to_bytes(2, "little") + name + bytes([0x7F, 0xFF, 4, 0])


def guid_blob(name: str, guid: UUID) -> DataRef:
    """The address of `guid` (EFI_GUID layout) in the data area, labelled `guid_<name>`."""
    return DataRef(Blob(f"guid_{name}", guid_bytes(guid)))


@dataclass(frozen=True)
class Target:
    """The firmware the probe is built for: its architecture and pointer size (4 or 8)."""

    arch: str
    pointer_size: int

    @property
    def st(self) -> EntryArg:
        """The SystemTable argument of the entry point."""
        return EntryArg.SYSTEM_TABLE

    @property
    def rt(self) -> Load:
        """SystemTable->RuntimeServices."""
        return Load(self.st, SYSTEM_TABLE["RuntimeServices"])

    @property
    def bs(self) -> Load:
        """SystemTable->BootServices."""
        return Load(self.st, SYSTEM_TABLE["BootServices"])

    # -------------------------------------------------------------- values

    def status(self, var: Var) -> Hex:
        """An EFI_STATUS (UINTN) in hex, all digits."""
        return Hex(var, 2 * self.pointer_size)

    def error(self, code: int) -> Const:
        """The EFI_STATUS of error `code` (e.g. EFI_NOT_FOUND) on this firmware."""
        return Const(efi_error(code, self.pointer_size))

    def hex64(self, addr: Value, offset: int = 0) -> tuple[Part, ...]:
        """The aligned UINT64 at addr+offset as 16 hex digits (two 32-bit halves on 32-bit firmware)."""
        if self.pointer_size == 8:
            return (Hex(Mem(addr, offset, 8), 16),)
        return Hex(Mem(addr, offset + 4, 4), 8), Hex(Mem(addr, offset, 4), 8)

    def u64_address(self, addr: Value, offset: int) -> Value:
        """A UINT64 physical address at a 4-byte aligned place as a pointer (32-bit firmware: the low half)."""
        low = Mem(addr, offset, 4)
        return low if self.pointer_size == 4 else BinOp("or", low, BinOp("shl", Mem(addr, offset + 4, 4), Const(32)))

    # -------------------------------------------------------------- calls and walks

    def call(self, table: Value, struct_field: Field, *args: Value, result: Var | None = None) -> CallService:
        """table->field(args...), the status kept in `result` when given."""
        return CallService(Load(table, struct_field), tuple(args), result)

    def chunked(self, addr: Value, length: Var, chunk: Chunk) -> tuple[Step, ...]:
        """The step `chunk(address, offset, size)` for each HEX_BYTES_MAX-byte chunk of `length` bytes at `addr`."""
        offset, size = Var("chunk_off"), Var("chunk_len")
        return (
            Set(offset, Const(0)),
            While(Cond("lo", offset, length), (
                Set(size, sub(length, offset)),
                If(Cond("hi", size, Const(HEX_BYTES_MAX)), (Set(size, Const(HEX_BYTES_MAX)),)),
                chunk(add(addr, offset), offset, size),
                Set(offset, add(offset, size)),
            )),
        )  # fmt: skip

    def device_path_size(self, path: Value, size: Var) -> tuple[Step, ...]:
        """`size` = the bytes of the device path at `path` up to and including its first end node."""
        node, length, walking = Var("dp_node"), Var("dp_len"), Var("dp_walking")
        return (
            Set(node, path),
            Set(walking, Const(1)),
            While(Cond("ne", walking, Const(0)), (
                Set(length, u16le(node, 2)),
                If(Cond("eq", Mem(node, 0, 1), Const(0x7F)), (Set(walking, Const(0)),)),  # END_DEVICE_PATH_TYPE
                If(Cond("lo", length, Const(4)), (Set(walking, Const(0)), Set(length, Const(4)))),
                Set(node, add(node, length)),
                If(Cond("hi", sub(node, path), Const(DEVICE_PATH_MAX)), (Set(walking, Const(0)),)),
            )),
            Set(size, sub(node, path)),
        )  # fmt: skip

    def find_table(self, guid: UUID, out: Var) -> tuple[Step, ...]:
        """`out` = the VendorTable of the configuration-table entry with `guid` (one of KNOWN_GUIDS), or 0."""
        entry, index = Var("ct_entry"), Var("ct_index")
        ref = guid_blob(KNOWN_GUIDS[guid].lower(), guid)
        match: tuple[Step, ...] = (Set(out, Mem(entry, CONFIG_TABLE_VENDOR_TABLE)),)
        for word in (12, 8, 4, 0):  # compare the GUID a 32-bit word at a time
            match = (If(Cond("eq", Mem(entry, word, 4), Mem(ref, word, 4)), match),)
        return (
            Comment(f"find the configuration table {KNOWN_GUIDS[guid]} {guid}"),
            Set(out, Const(0)),
            Set(entry, Load(self.st, SYSTEM_TABLE["ConfigurationTable"])),
            Set(index, Const(0)),
            While(Cond("lo", index, Load(self.st, SYSTEM_TABLE["NumberOfTableEntries"])), (
                *match,
                Set(entry, add(entry, config_table_entry_size(self.pointer_size))),
                Set(index, add(index, 1)),
            )),
        )  # fmt: skip

    def dump(self, name: tuple[str | Part, ...], addr: Var, size: Var, shown: Var | None = None) -> tuple[Step, ...]:
        """DUMP <name> addr= size=<size> shown=<bytes dumped>, then DUMP <name> off= data= lines.

        `shown` (default `size`) is how much to dump, capped at DUMP_MAX: the FDT's header counts the free
        space its buffer has left, which the host need not see.
        """
        total = Var("dump_total")
        blob = arg(*name)
        return (
            Set(total, size if shown is None else shown),
            If(Cond("hi", total, Const(DUMP_MAX)), (Set(total, Const(DUMP_MAX)),)),
            line("DUMP", blob, ("addr", Hex(addr, 2 * self.pointer_size)), ("size", Hex(size, 8)),
                 ("shown", Hex(total, 8))),
            *self.chunked(addr, total, lambda at, offset, chunk: line(
                "DUMP", blob, ("off", Hex(offset, 8)), ("data", HexBytes(at, chunk)))),
        )  # fmt: skip

    # -------------------------------------------------------------- reset

    def reset(self, kind: int) -> tuple[Step, ...]:
        """RT->ResetSystem(kind, EFI_SUCCESS, 0, NULL)."""
        return (
            Comment(f"RT->ResetSystem({kind}, EFI_SUCCESS, 0, NULL)"),
            self.call(self.rt, RUNTIME_SERVICES["ResetSystem"], Const(kind), Const(EFI_SUCCESS), Const(0), Const(0)),
        )

    def shutdown(self, how: str = "shutdown") -> tuple[Step, ...]:
        """END, then ResetSystem(EfiResetShutdown); if that returns, spin (never return to the firmware)."""
        return (line("END", how), *self.reset(RESET_SHUTDOWN), Halt())

    # -------------------------------------------------------------- variables

    def get_variable(
        self, name: DataItem, guid: Value, result: Var, buf: Buf | None, size: int | None = None
    ) -> tuple[Step, ...]:
        """RT->GetVariable(name, guid, &var_attr, &var_size, buf) with var_size = `size` (default: all of buf).

        With `buf` None the call passes Data = NULL and DataSize = 0: a variable that exists answers
        EFI_BUFFER_TOO_SMALL with its size in var_size.
        """
        attr, var_size = Var("var_attr"), Var("var_size")
        room = (buf.size if buf else 0) if size is None else size
        label = name.prefix + "<nonce>" if isinstance(name, NonceName) else name.text if isinstance(name, Text) else "?"
        data = "NULL" if buf is None else buf.name
        return (
            Set(attr, Const(0)),
            Set(var_size, Const(room)),
            Comment(f"RT->GetVariable({label}, guid, &var_attr, &var_size = {room}, {data})"),
            self.call(self.rt, RUNTIME_SERVICES["GetVariable"], DataRef(name), guid, AddrOf(attr), AddrOf(var_size),
                      Const(0) if buf is None else AddrOf(buf), result=result),
        )  # fmt: skip

    def set_variable(
        self, name: DataItem, guid: Value, attributes: int, size: Value, data: Value, result: Var
    ) -> CallService:
        """RT->SetVariable(name, guid, attributes, size, data) (attributes 0 or size 0: delete it)."""
        return self.call(
            self.rt, RUNTIME_SERVICES["SetVariable"], DataRef(name), guid, Const(attributes), size, data, result=result
        )

    def var_fields(self, prefix: str, status: Var, buf: Buf | None) -> tuple[Item, ...]:
        """`<prefix>=<status> <prefix>_attr= <prefix>_size=` and, with a buffer, `<prefix>_data=`.

        From the last get_variable; the data shown is at most HEX_BYTES_MAX bytes, whatever size the firmware
        reported.
        """
        attr, size = Var("var_attr"), Var("var_size")
        items: tuple[Item, ...] = (
            (prefix, self.status(status)), (f"{prefix}_attr", Hex(attr, 8)), (f"{prefix}_size", Hex(size, 8)),
        )  # fmt: skip
        return items if buf is None else (*items, (f"{prefix}_data", HexBytes(AddrOf(buf), size)))
