"""The probe's flows across resets: NVRAM persistence (warm, cold, power) and BootNext.

Each flow is one probe image booted more than once on the same variable store; the probe finds out which
phase it is in from the variables it left behind. `vmconform.nvram` drives the boots on the host.

* NVRAM: phase 1 (its NV variable absent) sets an NV|BS|RT and a BS|RT variable holding the nonce, reads
  both back and resets (warm, cold) or powers off; phase 2 (the NV variable there) reports it, checks the
  volatile one is gone and deletes the NV one.
* BootNext: phase 1 writes a Boot#### option for NEXT_PATH on the probe's own device and BootNext, then
  resets cold; the probe at NEXT_PATH (mode next) reports BootCurrent and deletes the option.
"""

from __future__ import annotations

from ..contract import (
    BOOTNEXT_OPTION,
    NEXT_DESCRIPTION,
    NEXT_PATH,
    NV_VARIABLE_PREFIX,
    VENDOR_GUID,
    VOLATILE_VARIABLE_PREFIX,
)
from ..uefi import (
    BOOT_SERVICES,
    EFI_NOT_FOUND,
    EFI_SUCCESS,
    GLOBAL_VARIABLE_GUID,
    LOAD_OPTION_ACTIVE,
    RESET_COLD,
    RESET_WARM,
    VARIABLE_BOOTSERVICE_ACCESS,
    VARIABLE_RUNTIME_ACCESS,
)
from .common import DATA_BUFFER, NV_BS_RT, Target, file_path_node, guid_blob
from .data import ucs2z
from .ir import (
    AddrOf,
    Blob,
    Buf,
    Comment,
    Cond,
    Const,
    DataRef,
    Halt,
    Hex,
    If,
    Mem,
    NonceBytes,
    NonceName,
    Set,
    Step,
    Store,
    Text,
    Var,
    add,
    sub,
)
from .lines import LINE_END, line, line_items, line_start

__all__ = [
    "nvram", "bootnext", "next_boot", "VENDOR_GUID", "NV_VARIABLE_PREFIX", "VOLATILE_VARIABLE_PREFIX",
    "BOOTNEXT_OPTION", "NEXT_PATH", "NEXT_DESCRIPTION", "LOAD_OPTION_MAX",
]  # fmt: skip

LOAD_OPTION_MAX = 512  # bytes of the EFI_LOAD_OPTION the probe builds (its device path must fit)


def _reset(fw: Target, mode: str) -> tuple[Step, ...]:
    """RESET <mode> and the reset (warm, cold), or END and the power-off (power)."""
    if mode == "power":
        return fw.shutdown()
    kind = {"warm": RESET_WARM, "cold": RESET_COLD}[mode]
    return (line("RESET", mode), *fw.reset(kind), line("END", "reset-returned"), Halt())


def nvram(fw: Target, mode: str) -> tuple[Step, ...]:
    """NVRAM phase1 ... / phase2 ... for mode warm, cold or power (see the module docstring)."""
    guid = guid_blob("vendor", VENDOR_GUID)
    nv, vol, data = NonceName(NV_VARIABLE_PREFIX), NonceName(VOLATILE_VARIABLE_PREFIX), NonceBytes()
    buf = Buf("var_data", DATA_BUFFER)
    got, st_nv, st_vol, st_del = Var("st_get"), Var("st_set_nv"), Var("st_set_vol"), Var("st_delete")
    nonce_len = Mem(DataRef(data), -4, 4)
    volatile = VARIABLE_BOOTSERVICE_ACCESS | VARIABLE_RUNTIME_ACCESS
    phase1 = (
        line("NVRAM", "phase1", ("mode", mode), ("get", fw.status(got))),
        Comment("RT->SetVariable(nv name, vendor, NV|BS|RT, nonce): the persistent test variable"),
        fw.set_variable(nv, guid, NV_BS_RT, nonce_len, DataRef(data), st_nv),
        Comment("RT->SetVariable(volatile name, vendor, BS|RT, nonce): must be gone after the reset"),
        fw.set_variable(vol, guid, volatile, nonce_len, DataRef(data), st_vol),
        line("NVRAM", "set", ("nv", fw.status(st_nv)), ("vol", fw.status(st_vol))),
        *fw.get_variable(nv, guid, got, buf),
        line_start("NVRAM", "readback", *fw.var_fields("nv", got, buf)),
        *fw.get_variable(vol, guid, got, buf),
        line_items(*fw.var_fields("vol", got, buf)),
        LINE_END,
        *_reset(fw, mode),
    )
    phase2 = (
        line("NVRAM", "phase2", ("mode", mode), *fw.var_fields("get", got, buf)),
        *fw.get_variable(vol, guid, got, buf),
        line("NVRAM", "volatile", ("get", fw.status(got))),
        Comment("RT->SetVariable(nv name, vendor, 0, 0, NULL): delete the test variable"),
        fw.set_variable(nv, guid, 0, Const(0), Const(0), st_del),
        line("NVRAM", "delete", ("status", fw.status(st_del))),
        line("NVRAM", "done"),
    )
    return (
        *fw.get_variable(nv, guid, got, buf),
        If(Cond("eq", got, fw.error(EFI_NOT_FOUND)), phase1, (
            If(Cond("eq", got, Const(EFI_SUCCESS)), phase2, (
                line("NVRAM", "error", ("get", fw.status(got))),
            )),
        )),
        *fw.shutdown(),
    )  # fmt: skip


def bootnext(fw: Target) -> tuple[Step, ...]:
    """BOOTNEXT phase1 / set ...: a Boot#### option for NEXT_PATH and BootNext, then a cold reset."""
    glob = guid_blob("global_variable", GLOBAL_VARIABLE_GUID)
    option_name = Text(f"Boot{BOOTNEXT_OPTION:04X}")
    buf = Buf("var_data", DATA_BUFFER)
    opt, next_value = Buf("load_option", LOAD_OPTION_MAX), Buf("boot_next", 8)
    dp, dp_size = Var("device_path"), Var("dp_size")
    st_dp, got, st_opt, st_next, st_del = (
        Var("st_device_path"), Var("st_get"), Var("st_set_option"), Var("st_set_next"), Var("st_delete"),
    )  # fmt: skip
    description = Blob("next_description", ucs2z(NEXT_DESCRIPTION))
    tail = Blob("next_file_path", file_path_node(NEXT_PATH))
    # EFI_LOAD_OPTION: Attributes (4), FilePathListLength (2), Description, FilePathList[] (UEFI §3.1.3)
    at_path = 6 + len(description.data)
    path_size = Var("option_path_size")
    copy = BOOT_SERVICES["CopyMem"]
    phase1 = (
        line("BOOTNEXT", "phase1", ("get", fw.status(got))),
        Comment("the load option: our device's path (without its end node) + file path NEXT.EFI + end"),
        *fw.device_path_size(dp, dp_size),
        Set(path_size, add(sub(dp_size, 4), len(tail.data))),
        If(Cond("hi", add(path_size, at_path), Const(opt.size)), (Set(path_size, Const(0)),)),
        If(Cond("ne", path_size, Const(0)), (
            Store(AddrOf(opt), Const(LOAD_OPTION_ACTIVE), 0, 4),
            Store(AddrOf(opt), path_size, 4, 2),
            Comment("BS->CopyMem(): description, device path, file path node"),
            fw.call(fw.bs, copy, add(AddrOf(opt), 6), DataRef(description), Const(len(description.data))),
            fw.call(fw.bs, copy, add(AddrOf(opt), at_path), dp, sub(dp_size, 4)),
            fw.call(fw.bs, copy, add(add(AddrOf(opt), at_path), sub(dp_size, 4)), DataRef(tail),
                    Const(len(tail.data))),
            Comment(f"RT->SetVariable(Boot{BOOTNEXT_OPTION:04X}, global, NV|BS|RT, option)"),
            fw.set_variable(option_name, glob, NV_BS_RT, add(path_size, at_path), AddrOf(opt), st_opt),
            Store(AddrOf(next_value), Const(BOOTNEXT_OPTION), 0, 2),
            Comment("RT->SetVariable(BootNext, global, NV|BS|RT, option number)"),
            fw.set_variable(Text("BootNext"), glob, NV_BS_RT, Const(2), AddrOf(next_value), st_next),
            line("BOOTNEXT", "set", ("option", f"{BOOTNEXT_OPTION:04X}"), ("option_status", fw.status(st_opt)),
                 ("next_status", fw.status(st_next))),
            *_reset(fw, "cold"),
        )),
        line("BOOTNEXT", "error", ("devpath_size", Hex(dp_size, 8))),  # no room in the option buffer
    )  # fmt: skip
    again = (
        line("BOOTNEXT", "again", ("get", fw.status(got))),
        fw.set_variable(option_name, glob, 0, Const(0), Const(0), st_del),
        line("BOOTNEXT", "delete", ("status", fw.status(st_del))),
    )
    return (
        Comment("phase 1 unless our option exists: it uses the device path the BOOT fact fetched (st_device_path)"),
        *fw.get_variable(option_name, glob, got, buf),
        If(Cond("eq", got, fw.error(EFI_NOT_FOUND)), (
            If(Cond("eq", st_dp, Const(EFI_SUCCESS)), phase1, (
                line("BOOTNEXT", "error", ("device", fw.status(st_dp))),
            )),
        ), again),
        *fw.shutdown(),
    )  # fmt: skip


def next_boot(fw: Target) -> tuple[Step, ...]:
    """BOOTNEXT next current_status= current= / delete status=: the probe BootNext started (mode next)."""
    glob = guid_blob("global_variable", GLOBAL_VARIABLE_GUID)
    buf = Buf("var_data", DATA_BUFFER)
    got, st_del = Var("st_get"), Var("st_delete")
    return (
        *fw.get_variable(Text("BootCurrent"), glob, got, buf),
        line("BOOTNEXT", "next", ("current_status", fw.status(got)), ("current", Hex(Mem(AddrOf(buf), 0, 2), 4))),
        Comment(f"RT->SetVariable(Boot{BOOTNEXT_OPTION:04X}, global, 0, 0, NULL): delete the option"),
        fw.set_variable(Text(f"Boot{BOOTNEXT_OPTION:04X}"), glob, 0, Const(0), Const(0), st_del),
        line("BOOTNEXT", "delete", ("status", fw.status(st_del))),
        *fw.shutdown(),
    )
