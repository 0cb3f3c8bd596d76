"""The probe's fact lines: BOOT (where the image came from), FW, and the optional TABLES, TIME and CPU.

Each function returns the steps for one fact group on one `Target`; `probe_program` strings them together.
The lines' grammar is in `vmconform.probe.protocol`, their meaning on the host in `vmconform.facts`.
"""

from __future__ import annotations

from ..uefi import (
    BOOT_SERVICES,
    DEVICE_PATH_PROTOCOL_GUID,
    EFI_NOT_FOUND,
    EFI_SUCCESS,
    LOADED_IMAGE_PROTOCOL,
    LOADED_IMAGE_PROTOCOL_GUID,
    RUNTIME_SERVICES,
    SYSTEM_TABLE,
    config_table_entry_size,
)
from .common import Target, guid_blob, u16le
from .ir import (
    AddrOf,
    Buf,
    Comment,
    Cond,
    Const,
    EntryArg,
    FirmwareString,
    Hex,
    HexBytes,
    If,
    Load,
    Print,
    ReadCpu,
    Set,
    Step,
    Value,
    Var,
    While,
    add,
)
from .lines import LINE_END, Item, arg, line, line_items, line_start, line_value

__all__ = ["boot", "firmware", "tables", "time_and_cpu", "CPU_REGISTERS", "COUNTER_REGISTER"]

# System registers for the CPU fact, per architecture: (field name, register name the lowering knows).
CPU_REGISTERS: dict[str, tuple[tuple[str, str], ...]] = {
    "aarch64": (("el", "CurrentEL"), ("cntfrq", "CNTFRQ_EL0"), ("midr", "MIDR_EL1"), ("pfr0", "ID_AA64PFR0_EL1")),
    "arm": (("cpsr", "CPSR"), ("cntfrq", "CNTFRQ"), ("midr", "MIDR"), ("pfr1", "ID_PFR1")),
}
COUNTER_REGISTER = {"aarch64": "CNTVCT_EL0", "arm": "CNTVCT"}


def _hex_chunk(at: Value, offset: Var, size: Var) -> Step:
    """One chunk of a hex field's value."""
    return line_value(HexBytes(at, size))


def boot(fw: Target) -> tuple[Step, ...]:
    """BOOT <arch> image= device= [devpath=] [filepath= [path=]]: the LoadedImage and its device's path."""
    li, dp, fp = Var("loaded_image"), Var("device_path"), Var("file_path")
    st_li, st_dp = Var("st_loaded_image"), Var("st_device_path")
    size = Var("dp_size")
    return (
        Comment("BS->HandleProtocol(ImageHandle, &gEfiLoadedImageProtocolGuid, &loaded_image)"),
        fw.call(fw.bs, BOOT_SERVICES["HandleProtocol"], EntryArg.IMAGE_HANDLE,
                guid_blob("loaded_image", LOADED_IMAGE_PROTOCOL_GUID), AddrOf(li), result=st_li),
        Set(st_dp, fw.error(EFI_NOT_FOUND)),
        If(Cond("eq", st_li, Const(EFI_SUCCESS)), (
            Comment("BS->HandleProtocol(loaded_image->DeviceHandle, &gEfiDevicePathProtocolGuid, &device_path)"),
            fw.call(fw.bs, BOOT_SERVICES["HandleProtocol"], Load(li, LOADED_IMAGE_PROTOCOL["DeviceHandle"]),
                    guid_blob("device_path", DEVICE_PATH_PROTOCOL_GUID), AddrOf(dp), result=st_dp),
        )),
        line_start("BOOT", fw.arch),
        line_items(("image", fw.status(st_li)), ("device", fw.status(st_dp))),
        If(Cond("eq", st_dp, Const(EFI_SUCCESS)), (
            Comment("the loaded image's device path (the host finds the HD() node in it)"),
            *fw.device_path_size(dp, size),
            line_items(("devpath", ())),
            *fw.chunked(dp, size, _hex_chunk),
        )),
        If(Cond("eq", st_li, Const(EFI_SUCCESS)), (
            Comment("loaded_image->FilePath, as bytes and, when it starts with a file path node, as text"),
            Set(fp, Load(li, LOADED_IMAGE_PROTOCOL["FilePath"])),
            *fw.device_path_size(fp, size),
            line_items(("filepath", ())),
            *fw.chunked(fp, size, _hex_chunk),
            If(Cond("eq", u16le(fp), Const(0x0404)), (  # MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP
                line_items(("path", FirmwareString(add(fp, 4)))),
            )),
        )),
        LINE_END,
    )  # fmt: skip


def firmware(fw: Target) -> Print:
    """FW st_sig= uefi_rev= fw_rev= rt_sig= vendor=: the system table's header, revision and vendor."""
    st, rt = fw.st, fw.rt
    return line(
        "FW",
        ("st_sig", fw.hex64(st, SYSTEM_TABLE["Hdr.Signature"].offset(fw.pointer_size))),
        ("uefi_rev", Hex(Load(st, SYSTEM_TABLE["Hdr.Revision"]), 8)),
        ("fw_rev", Hex(Load(st, SYSTEM_TABLE["FirmwareRevision"]), 8)),
        ("rt_sig", fw.hex64(rt, RUNTIME_SERVICES["Hdr.Signature"].offset(fw.pointer_size))),
        ("vendor", FirmwareString(Load(st, SYSTEM_TABLE["FirmwareVendor"]))),
    )


def tables(fw: Target) -> tuple[Step, ...]:
    """TABLES count= <guid>...: every configuration-table GUID, in memory order."""
    entry, index = Var("ct_entry"), Var("ct_index")
    count = Load(fw.st, SYSTEM_TABLE["NumberOfTableEntries"])
    return (
        Comment("every configuration-table GUID, in memory order"),
        line_start("TABLES", ("count", Hex(count, 8))),
        Set(entry, Load(fw.st, SYSTEM_TABLE["ConfigurationTable"])),
        Set(index, Const(0)),
        While(Cond("lo", index, count), (
            line_items(arg(HexBytes(entry, Const(16)))),
            Set(entry, add(entry, config_table_entry_size(fw.pointer_size))),
            Set(index, add(index, 1)),
        )),
        LINE_END,
    )  # fmt: skip


def time_and_cpu(fw: Target, time: bool, cpu: bool) -> tuple[Step, ...]:
    """GetTime twice around a 1 s Stall with the counter read on both sides; TIME (and SetTime) and/or CPU."""
    t0, t1, c0, c1 = Buf("time0", 16), Buf("time1", 16), Buf("counter0", 8), Buf("counter1", 8)
    g0, g1, stall, set_ = Var("st_get0"), Var("st_get1"), Var("st_stall"), Var("st_set")
    counter = COUNTER_REGISTER[fw.arch]
    steps: list[Step] = [
        ReadCpu(counter, c0),
        Comment("RT->GetTime(&time0, NULL)"),
        fw.call(fw.rt, RUNTIME_SERVICES["GetTime"], AddrOf(t0), Const(0), result=g0),
        Comment("BS->Stall(1000000): one second"),
        fw.call(fw.bs, BOOT_SERVICES["Stall"], Const(1_000_000), result=stall),
        Comment("RT->GetTime(&time1, NULL)"),
        fw.call(fw.rt, RUNTIME_SERVICES["GetTime"], AddrOf(t1), Const(0), result=g1),
        ReadCpu(counter, c1),
    ]
    if time:
        steps += [
            Comment("RT->SetTime(&time1): write the time back"),
            fw.call(fw.rt, RUNTIME_SERVICES["SetTime"], AddrOf(t1), result=set_),
            line(
                "TIME",
                ("get0", fw.status(g0)),
                ("t0", HexBytes(AddrOf(t0), Const(16))),
                ("stall", fw.status(stall)),
                ("get1", fw.status(g1)),
                ("t1", HexBytes(AddrOf(t1), Const(16))),
                ("set", fw.status(set_)),
            ),
        ]
    if cpu:
        regs = [(name, reg, Buf(f"cpu_{name}", 8)) for name, reg in CPU_REGISTERS[fw.arch]]
        steps += [ReadCpu(reg, buf) for _, reg, buf in regs]
        items: list[Item] = [(name, fw.hex64(AddrOf(buf))) for name, _, buf in regs]
        items += [("cntvct0", fw.hex64(AddrOf(c0))), ("cntvct1", fw.hex64(AddrOf(c1)))]
        steps.append(line("CPU", *items))
    return tuple(steps)
