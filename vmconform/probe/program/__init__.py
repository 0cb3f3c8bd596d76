"""The probe program: written once as steps, independent of the instruction set, lowered per architecture.

`probe_program(arch, pointer_size, mode, facts)` is the whole probe as a `Program` (a tuple of steps, see
`ir`); a lowering (`vmconform.probe.lower_a64`, `lower_a32`) turns it into machine code that keeps all
writable state on the stack, and `DataArea` places its text and constant bytes after the code. Adding an
architecture means adding a lowering; the probe itself is written here, once:

=============  =====================================================================================
module         what
=============  =====================================================================================
``ir``         values, line parts and steps: the language the probe is written in
``lines``      the one way to build a protocol line (`line`, `line_start`/`line_items`/`LINE_END`)
``data``       the data area: labelled text, GUIDs and nonce slots after the code
``common``     `Target`: firmware calls, statuses, device-path and table walks, dumps, variables
``facts``      BOOT, FW, TABLES, TIME, CPU
``dumps``      DUMP of the DTB, ACPI and SMBIOS 3 tables
``secureboot`` SECUREBOOT: the Secure Boot mode variables and whether PK, KEK, db, dbx are set
``nvram``      the flows across resets: NVRAM (warm, cold, power) and BootNext
=============  =====================================================================================
"""

from __future__ import annotations

from collections.abc import Collection

from ..contract import DEFAULT_FACTS, FACTS, MODES
from .common import DATA_BUFFER, DEVICE_PATH_MAX, DUMP_MAX, NV_BS_RT, Target
from .data import ENTRY_LABEL, NONCE_LABEL, DataArea, ucs2z
from .dumps import dumps
from .facts import COUNTER_REGISTER, CPU_REGISTERS, boot, firmware, tables, time_and_cpu
from .ir import (
    HEX_BYTES_MAX,
    HEX_DIGITS_MAX,
    AddrOf,
    BinOp,
    Blob,
    Bswap32,
    Buf,
    CallService,
    Comment,
    Cond,
    Const,
    DataItem,
    DataRef,
    EntryArg,
    FirmwareString,
    Halt,
    Hex,
    HexBytes,
    If,
    Load,
    Mem,
    NonceBytes,
    NonceName,
    NonceText,
    Part,
    Print,
    Program,
    ReadCpu,
    Set,
    Step,
    Store,
    Text,
    Value,
    Var,
    While,
)
from .lines import LINE_END, line, line_items, line_start, line_value
from .nvram import (
    BOOTNEXT_OPTION,
    NEXT_DESCRIPTION,
    NEXT_PATH,
    NV_VARIABLE_PREFIX,
    VENDOR_GUID,
    VOLATILE_VARIABLE_PREFIX,
    bootnext,
    next_boot,
    nvram,
)
from .secureboot import KEY_VARIABLES, MODE_VARIABLES, secureboot

__all__ = [
    "EntryArg", "Const", "Load", "Mem", "Var", "Buf", "AddrOf", "DataRef", "BinOp", "Bswap32", "Value", "Blob",
    "NonceName", "NonceBytes", "DataItem", "Text", "NonceText", "Hex", "HexBytes", "FirmwareString", "Part", "Cond",
    "Print", "CallService", "Set", "Store", "If", "While", "ReadCpu", "Comment", "Halt", "Step", "Program", "line",
    "line_start", "line_items", "line_value", "LINE_END", "probe_program", "DataArea", "MODES", "FACTS",
    "DEFAULT_FACTS", "KEY_VARIABLES", "MODE_VARIABLES", "HEX_BYTES_MAX", "HEX_DIGITS_MAX", "DUMP_MAX",
    "DEVICE_PATH_MAX", "DATA_BUFFER", "NV_BS_RT", "NONCE_LABEL", "ENTRY_LABEL", "VENDOR_GUID", "NV_VARIABLE_PREFIX",
    "VOLATILE_VARIABLE_PREFIX", "BOOTNEXT_OPTION", "NEXT_PATH", "NEXT_DESCRIPTION", "CPU_REGISTERS",
    "COUNTER_REGISTER", "ucs2z", "Target",
]  # fmt: skip


def probe_program(arch: str, pointer_size: int = 8, mode: str = "boot", facts: Collection[str] = ()) -> Program:
    """The probe for `arch`: BOOT, FW, the optional `facts`, then what `mode` asks; it never returns.

    mode is one of MODES, facts a subset of FACTS; the mode's DEFAULT_FACTS come whether asked or not.
    """
    if mode not in MODES:
        raise ValueError(f"unknown probe mode {mode!r}; known: {', '.join(MODES)}")
    unknown = set(facts) - set(FACTS)
    if unknown:
        raise ValueError(f"unknown probe facts {sorted(unknown)}; known: {', '.join(FACTS)}")
    if arch not in CPU_REGISTERS:
        raise ValueError(f"no probe program for {arch!r}")
    fw = Target(arch, pointer_size)
    steps: list[Step] = [*boot(fw), firmware(fw)]
    if "secureboot" in facts or "secureboot" in DEFAULT_FACTS.get(mode, ()):
        steps += secureboot(fw)
    if "tables" in facts:
        steps += tables(fw)
    if "time" in facts or "cpu" in facts:
        steps += time_and_cpu(fw, "time" in facts, "cpu" in facts)
    if "dump" in facts:
        steps += dumps(fw)
    if mode == "boot":
        steps += fw.shutdown()
    elif mode in ("warm", "cold", "power"):
        steps += nvram(fw, mode)
    elif mode == "bootnext":
        steps += bootnext(fw)
    else:
        steps += next_boot(fw)
    return Program(tuple(steps))
