"""The DUMP fact: the DTB, the ACPI tables (RSDP, XSDT and every table it lists) and SMBIOS 3, in hex chunks.

Each blob is a header line `DUMP <blob> addr= size= shown=` and `DUMP <blob> off= data=` lines of at most
HEX_BYTES_MAX bytes; the host (`vmconform.facts`) puts them back together and decodes them.
"""

from __future__ import annotations

from ..uefi import ACPI_20_TABLE_GUID, DTB_TABLE_GUID, SMBIOS3_TABLE_GUID
from .common import Target
from .ir import HEX_BYTES_MAX, BinOp, Bswap32, Comment, Cond, Const, Hex, If, Mem, Set, Step, Var, While, add, sub

__all__ = ["dumps"]


def dumps(fw: Target) -> tuple[Step, ...]:
    """DUMP dtb, rsdp, xsdt, acpiNN, smbios3 and smbios3_table, for those the firmware publishes."""
    fdt, size, rsdp, xsdt, entry, table, index, count = (
        Var("fdt"), Var("blob_size"), Var("rsdp"), Var("xsdt"), Var("xsdt_entry"), Var("acpi_table"),
        Var("acpi_index"), Var("acpi_count"),
    )  # fmt: skip
    smbios, smbios_table = Var("smbios3"), Var("smbios3_table")
    used, strings_end = Var("fdt_used"), Var("fdt_strings_end")
    return (
        *fw.find_table(DTB_TABLE_GUID, fdt),
        If(Cond("ne", fdt, Const(0)), (
            Comment("the FDT (big-endian header): totalsize at 4; the blocks end at off_dt_struct (8) + "
                    "size_dt_struct (36) and off_dt_strings (12) + size_dt_strings (32)"),
            Set(size, Bswap32(Mem(fdt, 4, 4))),
            Set(used, add(Bswap32(Mem(fdt, 8, 4)), Bswap32(Mem(fdt, 36, 4)))),
            Set(strings_end, add(Bswap32(Mem(fdt, 12, 4)), Bswap32(Mem(fdt, 32, 4)))),
            If(Cond("hi", strings_end, used), (Set(used, strings_end),)),
            If(Cond("hi", used, size), (Set(used, size),)),
            *fw.dump(("dtb",), fdt, size, used),
        )),
        *fw.find_table(ACPI_20_TABLE_GUID, rsdp),
        If(Cond("ne", rsdp, Const(0)), (
            Comment("the RSDP: Length at 20 (revision 2+), XsdtAddress at 24"),
            Set(size, Mem(rsdp, 20, 4)),
            If(Cond("eq", Mem(rsdp, 15, 1), Const(0)), (Set(size, Const(20)),)),  # ACPI 1.0 RSDP
            If(Cond("hi", size, Const(HEX_BYTES_MAX)), (Set(size, Const(HEX_BYTES_MAX)),)),
            *fw.dump(("rsdp",), rsdp, size),
            Set(xsdt, Const(0)),
            If(Cond("ne", Mem(rsdp, 15, 1), Const(0)), (Set(xsdt, fw.u64_address(rsdp, 24)),)),
            If(Cond("ne", xsdt, Const(0)), (
                Comment("the XSDT, then every table it lists (64-bit addresses from offset 36)"),
                Set(size, Mem(xsdt, 4, 4)),
                *fw.dump(("xsdt",), xsdt, size),
                Set(count, BinOp("shr", sub(size, 36), Const(3))),
                If(Cond("lo", size, Const(36)), (Set(count, Const(0)),)),
                Set(entry, add(xsdt, 36)),
                Set(index, Const(0)),
                While(Cond("lo", index, count), (
                    Set(table, fw.u64_address(entry, 0)),
                    If(Cond("ne", table, Const(0)), (
                        Set(size, Mem(table, 4, 4)),
                        *fw.dump(("acpi", Hex(index, 2)), table, size),
                    )),
                    Set(entry, add(entry, 8)),
                    Set(index, add(index, 1)),
                )),
            )),
        )),
        *fw.find_table(SMBIOS3_TABLE_GUID, smbios),
        If(Cond("ne", smbios, Const(0)), (
            Comment("the SMBIOS 3 entry point (length at 6), then the structure table (max size at 12, "
                    "address at 16)"),
            Set(size, Mem(smbios, 6, 1)),
            *fw.dump(("smbios3",), smbios, size),
            Set(smbios_table, fw.u64_address(smbios, 16)),
            Set(size, Mem(smbios, 12, 4)),
            If(Cond("ne", smbios_table, Const(0)), fw.dump(("smbios3_table",), smbios_table, size)),
        )),
    )  # fmt: skip
