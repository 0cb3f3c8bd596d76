"""Run a probe image (AArch64 or Arm) in unicorn against a fake UEFI firmware, recording every service call.

The image is loaded with pefile (not with the writer's own knowledge): headers read-only, sections by
their characteristics (.text read+execute, as AAVMF maps it). The fake firmware is a system table, a ConOut
protocol, runtime and boot services tables, a loaded image with its device paths and configuration tables
in memory. Every function pointer points at its own stub; a code hook on the stubs records the call
(service, arguments, sp, the platform register) and performs it in Python: OutputString collects text,
HandleProtocol, GetTime/SetTime, GetVariable/SetVariable (on a `VariableStore` that survives a `run_probe`,
like NVRAM across a reset), Stall, CopyMem and ResetSystem (which stops the run) behave as the UEFI spec
says. On Arm the stubs are Thumb code, as EDK2's are, so every call must interwork.

Struct offsets are written here from the UEFI spec, independently of vmconform.probe.uefi.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from uuid import UUID

import pefile
from unicorn import (
    UC_ARCH_ARM,
    UC_ARCH_ARM64,
    UC_HOOK_CODE,
    UC_MODE_ARM,
    UC_PROT_EXEC,
    UC_PROT_READ,
    Uc,
    UcError,
)
from unicorn import arm64_const as r64
from unicorn import arm_const as r32

IMAGE_BASE = 0x4000_0000
FIRMWARE = 0x5000_0000
FIRMWARE_SIZE = 0x10_0000
SYSTEM_TABLE = FIRMWARE
CON_OUT = FIRMWARE + 0x400
RUNTIME_SERVICES = FIRMWARE + 0x800
BOOT_SERVICES = FIRMWARE + 0xC00
LOADED_IMAGE = FIRMWARE + 0x1000
VENDOR = FIRMWARE + 0x2000
CONFIG_TABLE = FIRMWARE + 0x3000
DEVICE_PATH = FIRMWARE + 0x4000
FILE_PATH = FIRMWARE + 0x5000
BLOBS = FIRMWARE + 0x8000
STUBS = 0x6000_0000
STACK_TOP = 0x7001_0000
STACK_SIZE = 0x10000
IMAGE_HANDLE = 0x0DEF_0000
DEVICE_HANDLE = 0x0DEF_1000
PLATFORM_CANARY = 0x1818_1818_1818_1818
RETURN_TO_FIRMWARE = "<return to firmware>"

CON_OUT_FUNCTIONS = (
    "Reset",
    "OutputString",
    "TestString",
    "QueryMode",
    "SetMode",
    "SetAttribute",
    "ClearScreen",
    "SetCursorPosition",
    "EnableCursor",
)
RUNTIME_FUNCTIONS = (
    "GetTime",
    "SetTime",
    "GetWakeupTime",
    "SetWakeupTime",
    "SetVirtualAddressMap",
    "ConvertPointer",
    "GetVariable",
    "GetNextVariableName",
    "SetVariable",
    "GetNextHighMonotonicCount",
    "ResetSystem",
    "UpdateCapsule",
    "QueryCapsuleCapabilities",
    "QueryVariableInfo",
)
BOOT_FUNCTIONS = (
    "RaiseTPL",
    "RestoreTPL",
    "AllocatePages",
    "FreePages",
    "GetMemoryMap",
    "AllocatePool",
    "FreePool",
    "CreateEvent",
    "SetTimer",
    "WaitForEvent",
    "SignalEvent",
    "CloseEvent",
    "CheckEvent",
    "InstallProtocolInterface",
    "ReinstallProtocolInterface",
    "UninstallProtocolInterface",
    "HandleProtocol",
    "Reserved",
    "RegisterProtocolNotify",
    "LocateHandle",
    "LocateDevicePath",
    "InstallConfigurationTable",
    "LoadImage",
    "StartImage",
    "Exit",
    "UnloadImage",
    "ExitBootServices",
    "GetNextMonotonicCount",
    "Stall",
    "SetWatchdogTimer",
    "ConnectController",
    "DisconnectController",
    "OpenProtocol",
    "CloseProtocol",
    "OpenProtocolInformation",
    "ProtocolsPerHandle",
    "LocateHandleBuffer",
    "LocateProtocol",
    "InstallMultipleProtocolInterfaces",
    "UninstallMultipleProtocolInterfaces",
    "CalculateCrc32",
    "CopyMem",
    "SetMem",
    "CreateEventEx",
)
assert len(BOOT_FUNCTIONS) == 44

LOADED_IMAGE_GUID = UUID("5B1B31A1-9562-11D2-8E3F-00A0C969723B")
DEVICE_PATH_GUID = UUID("09576E91-6D3F-11D2-8E39-00A0C969723B")

SUCCESS = 0
ERRORS = {"INVALID_PARAMETER": 2, "UNSUPPORTED": 3, "BUFFER_TOO_SMALL": 5, "DEVICE_ERROR": 7, "NOT_FOUND": 14}


@dataclass(frozen=True)
class Arch:
    name: str
    pointer_size: int
    uc_arch: int
    args: tuple[int, ...]  # unicorn register ids of the register arguments
    sp: int
    lr: int
    pc: int
    platform: int  # x18 / r9: never to be touched
    ret: bytes  # the stub: return to the caller
    spin: int  # the word of a branch to itself

    def error(self, name: str) -> int:
        return (1 << (8 * self.pointer_size - 1)) | ERRORS[name]


AARCH64 = Arch(
    "aarch64",
    8,
    UC_ARCH_ARM64,
    tuple(getattr(r64, f"UC_ARM64_REG_X{i}") for i in range(8)),
    r64.UC_ARM64_REG_SP,
    r64.UC_ARM64_REG_X30,
    r64.UC_ARM64_REG_PC,
    r64.UC_ARM64_REG_X18,
    struct.pack("<I", 0xD65F03C0),
    0x14000000,
)
# Arm: firmware functions are Thumb code: the stub is Thumb "bx lr" (0x4770) and entered with bit 0 set
ARM = Arch(
    "arm",
    4,
    UC_ARCH_ARM,
    (r32.UC_ARM_REG_R0, r32.UC_ARM_REG_R1, r32.UC_ARM_REG_R2, r32.UC_ARM_REG_R3),
    r32.UC_ARM_REG_SP,
    r32.UC_ARM_REG_LR,
    r32.UC_ARM_REG_PC,
    r32.UC_ARM_REG_R9,
    struct.pack("<HH", 0x4770, 0x4770),
    0xEAFFFFFE,
)
ARCHES = {"aarch64": AARCH64, "arm": ARM}


def efi_time(
    year: int = 2026,
    month: int = 11,
    day: int = 27,
    hour: int = 16,
    minute: int = 20,
    second: int = 0,
    nanosecond: int = 0,
    tz: int = 0x7FF,
    daylight: int = 0,
) -> bytes:
    """An EFI_TIME (UEFI §8.3): Year, Month, Day, Hour, Minute, Second, Pad1, Nanosecond, TimeZone, Daylight, Pad2."""
    return struct.pack("<HBBBBBBIhBB", year, month, day, hour, minute, second, 0, nanosecond, tz, daylight, 0)


def device_path_node(type_: int, subtype: int, body: bytes) -> bytes:
    return struct.pack("<BBH", type_, subtype, 4 + len(body)) + body


END_NODE = device_path_node(0x7F, 0xFF, b"")
PARTITION_GUID = UUID("6A9C2DA7-9AB1-5D50-9BD0-38D97ABD19B2")


def disk_device_path(partition: int = 1, start: int = 0x800, size: int = 0x1F000, guid: UUID = PARTITION_GUID) -> bytes:
    """PciRoot(0x0)/Pci(0x1,0x0)/HD(partition,GPT,guid,start,size), as AAVMF builds it for virtio-blk."""
    return (
        device_path_node(2, 1, struct.pack("<II", 0x0A0341D0, 0))
        + device_path_node(1, 1, bytes([0, 1]))
        + device_path_node(4, 1, struct.pack("<IQQ16sBB", partition, start, size, guid.bytes_le, 2, 2))
        + END_NODE
    )


def file_path(path: str) -> bytes:
    return device_path_node(4, 4, path.encode("utf-16-le") + b"\0\0") + END_NODE


@dataclass(frozen=True)
class FakeFirmware:
    st_signature: int = int.from_bytes(b"IBI SYST", "little")
    uefi_revision: int = 0x0002_0046
    firmware_revision: int = 0x0001_0000
    rt_signature: int = int.from_bytes(b"RUNTSERV", "little")
    vendor: str | None = "EDK II"
    reset_returns: bool = False  # True: ResetSystem returns to the probe (a broken firmware)
    tables: tuple[tuple[UUID, bytes], ...] = ()  # configuration tables: GUID and the bytes it points to
    loaded_image: bool = True  # False: HandleProtocol(ImageHandle, LoadedImage) fails with UNSUPPORTED
    device_path: bytes | None = field(default_factory=disk_device_path)  # None: the device has none
    file_path: bytes = file_path("\\EFI\\BOOT\\BOOTAA64.EFI")
    times: tuple[bytes, ...] = (efi_time(second=0), efi_time(second=1))  # successive GetTime results
    get_time_status: str | None = None  # an ERRORS name to fail GetTime with
    set_time_status: str | None = None
    variable_status: dict[str, str] = field(default_factory=dict)  # variable name -> an ERRORS name GetVariable gives


@dataclass
class Variable:
    attributes: int
    data: bytes


@dataclass
class VariableStore:
    """The firmware's variables, kept across runs like NVRAM; `reset()` drops the volatile ones."""

    variables: dict[tuple[str, UUID], Variable] = field(default_factory=dict)
    persist: bool = True  # False: a broken store that forgets even non-volatile variables at a reset

    def reset(self) -> None:
        self.variables = {k: v for k, v in self.variables.items() if self.persist and v.attributes & 1}


@dataclass(frozen=True)
class ServiceCall:
    service: str
    args: tuple[int, ...]  # the register arguments, then (Arm) the first stack words
    text: str | None  # the UCS-2 string of an OutputString call; the variable name of a variable call
    sp: int
    platform: int  # x18 / r9 at the call
    detail: object = None  # GUID of HandleProtocol/variables, data written by SetVariable, ...


@dataclass
class Emulation:
    arch: Arch
    calls: list[ServiceCall] = field(default_factory=list)
    final_pc: int = 0
    spinning: bool = False  # final_pc holds a branch to itself

    @property
    def output(self) -> str:
        return "".join(c.text or "" for c in self.calls if c.service == "OutputString")

    @property
    def services(self) -> list[str]:
        """The calls other than OutputString, in order."""
        return [c.service for c in self.calls if c.service != "OutputString"]

    def lines(self) -> list[str]:
        return self.output.split("\r\n")[:-1]


def _page(n: int) -> int:
    return (n + 0xFFF) & ~0xFFF


def _read_ucs2(uc: Uc, address: int, limit: int = 4096) -> str:
    chars: list[str] = []
    for i in range(limit):
        (unit,) = struct.unpack("<H", uc.mem_read(address + 2 * i, 2))
        if unit == 0:
            return "".join(chars)
        chars.append(chr(unit))
    raise AssertionError(f"string at {address:#x} not terminated within {limit} characters")


def _load_image(uc: Uc, image: bytes) -> int:
    pe = pefile.PE(data=image)
    opt = pe.OPTIONAL_HEADER
    uc.mem_map(IMAGE_BASE, _page(opt.SizeOfImage), UC_PROT_READ)
    uc.mem_write(IMAGE_BASE, image[: opt.SizeOfHeaders])
    for section in pe.sections:
        start = IMAGE_BASE + section.VirtualAddress
        raw = image[section.PointerToRawData : section.PointerToRawData + section.SizeOfRawData]
        uc.mem_write(start, raw[: section.Misc_VirtualSize])
        perms = UC_PROT_READ | (UC_PROT_EXEC if section.Characteristics & 0x20000000 else 0)
        uc.mem_protect(start, _page(section.Misc_VirtualSize), perms)
    return IMAGE_BASE + opt.AddressOfEntryPoint


def arch_of(image: bytes) -> Arch:
    machine = pefile.PE(data=image).FILE_HEADER.Machine
    return {0xAA64: AARCH64, 0x01C2: ARM}[machine]


class _Firmware:
    """The fake firmware's memory and services for one run."""

    def __init__(self, uc: Uc, arch: Arch, fw: FakeFirmware, store: VariableStore, result: Emulation) -> None:
        self.uc, self.arch, self.fw, self.store, self.result = uc, arch, fw, store, result
        self.ps = arch.pointer_size
        self.stubs: dict[int, str] = {}
        self.times = list(fw.times)

    def ptr(self, value: int) -> bytes:
        return value.to_bytes(self.ps, "little")

    def read_ptr(self, address: int) -> int:
        return int.from_bytes(self.uc.mem_read(address, self.ps), "little")

    def stub(self, name: str) -> int:
        address = STUBS + 4 * len(self.stubs)
        self.stubs[address] = name
        return address | (1 if self.arch is ARM else 0)  # Thumb entry on Arm

    def build(self) -> int:
        uc, fw, ps = self.uc, self.fw, self.ps
        uc.mem_map(FIRMWARE, FIRMWARE_SIZE)
        # EFI_SYSTEM_TABLE: header (24 bytes), then FirmwareVendor, FirmwareRevision, ConsoleInHandle, ConIn,
        # ConsoleOutHandle, ConOut, StandardErrorHandle, StdErr, RuntimeServices, BootServices,
        # NumberOfTableEntries, ConfigurationTable. 64-bit: the UINT32 FirmwareRevision is padded to 8 bytes.
        uc.mem_write(SYSTEM_TABLE, struct.pack("<QIIII", fw.st_signature, fw.uefi_revision, 120, 0, 0))
        vendor_ptr = 0 if fw.vendor is None else VENDOR
        after_rev = 40 if ps == 8 else 32
        uc.mem_write(SYSTEM_TABLE + 24, self.ptr(vendor_ptr) + struct.pack("<I", fw.firmware_revision))
        pointers = [0, 0, 0, CON_OUT, 0, 0, RUNTIME_SERVICES, BOOT_SERVICES, len(fw.tables), CONFIG_TABLE]
        uc.mem_write(SYSTEM_TABLE + after_rev, b"".join(self.ptr(p) for p in pointers))
        if fw.vendor is not None:
            uc.mem_write(VENDOR, fw.vendor.encode("utf-16-le") + b"\0\0")
        uc.mem_write(CON_OUT, b"".join(self.ptr(self.stub(n)) for n in CON_OUT_FUNCTIONS))
        uc.mem_write(RUNTIME_SERVICES, struct.pack("<Q", fw.rt_signature))
        uc.mem_write(RUNTIME_SERVICES + 24, b"".join(self.ptr(self.stub(n)) for n in RUNTIME_FUNCTIONS))
        uc.mem_write(BOOT_SERVICES, struct.pack("<Q", int.from_bytes(b"BOOTSERV", "little")))
        uc.mem_write(BOOT_SERVICES + 24, b"".join(self.ptr(self.stub(n)) for n in BOOT_FUNCTIONS))
        # EFI_LOADED_IMAGE_PROTOCOL: Revision (UINT32), ParentHandle, SystemTable, DeviceHandle, FilePath
        uc.mem_write(
            LOADED_IMAGE,
            struct.pack("<I", 0x1000)
            + bytes(ps - 4)
            + self.ptr(0)
            + self.ptr(SYSTEM_TABLE)
            + self.ptr(DEVICE_HANDLE)
            + self.ptr(FILE_PATH),
        )
        if fw.device_path is not None:
            uc.mem_write(DEVICE_PATH, fw.device_path)
        uc.mem_write(FILE_PATH, fw.file_path)
        # EFI_CONFIGURATION_TABLE entries: VendorGuid, then VendorTable (24 bytes each, 20 on 32-bit)
        blob = BLOBS
        for i, (guid, data) in enumerate(fw.tables):
            uc.mem_write(CONFIG_TABLE + i * (16 + ps), guid.bytes_le + self.ptr(blob))
            uc.mem_write(blob, data)
            blob = (blob + len(data) + 0xFFF) & ~0xFFF
        assert blob <= FIRMWARE + FIRMWARE_SIZE
        return self.stub(RETURN_TO_FIRMWARE)

    # -------------------------------------------------------------------------------- services

    def args(self) -> tuple[int, ...]:
        regs = tuple(self.uc.reg_read(r) for r in self.arch.args)
        if self.arch is ARM:  # arguments 5 and 6 on the stack
            sp = self.uc.reg_read(self.arch.sp)
            regs += struct.unpack("<II", self.uc.mem_read(sp, 8))
        return regs

    def guid(self, address: int) -> UUID:
        return UUID(bytes_le=bytes(self.uc.mem_read(address, 16)))

    def on_stub(self, uc: Uc, address: int, size: int, user_data: object) -> None:
        name = self.stubs[address]
        args = self.args()
        call = {"text": None, "detail": None}
        status = getattr(self, f"do_{name}", self.do_nothing)(args, call)
        self.result.calls.append(
            ServiceCall(
                name, args, call["text"], uc.reg_read(self.arch.sp), uc.reg_read(self.arch.platform), call["detail"]
            )
        )
        uc.reg_write(self.arch.args[0], status)
        if name == RETURN_TO_FIRMWARE or (name == "ResetSystem" and not self.fw.reset_returns):
            uc.emu_stop()

    def do_nothing(self, args: tuple[int, ...], call: dict[str, object]) -> int:
        return SUCCESS

    def do_OutputString(self, args: tuple[int, ...], call: dict[str, object]) -> int:  # noqa: N802
        call["text"] = _read_ucs2(self.uc, args[1])
        return SUCCESS

    def do_HandleProtocol(self, args: tuple[int, ...], call: dict[str, object]) -> int:  # noqa: N802
        handle, guid, out = args[0], self.guid(args[1]), args[2]
        call["detail"] = guid
        if handle == IMAGE_HANDLE and guid == LOADED_IMAGE_GUID and self.fw.loaded_image:
            self.uc.mem_write(out, self.ptr(LOADED_IMAGE))
            return SUCCESS
        if handle == DEVICE_HANDLE and guid == DEVICE_PATH_GUID and self.fw.device_path is not None:
            self.uc.mem_write(out, self.ptr(DEVICE_PATH))
            return SUCCESS
        return self.arch.error("UNSUPPORTED")

    def do_CopyMem(self, args: tuple[int, ...], call: dict[str, object]) -> int:  # noqa: N802
        self.uc.mem_write(args[0], bytes(self.uc.mem_read(args[1], args[2])))
        return SUCCESS

    def do_GetTime(self, args: tuple[int, ...], call: dict[str, object]) -> int:  # noqa: N802
        if self.fw.get_time_status:
            return self.arch.error(self.fw.get_time_status)
        self.uc.mem_write(args[0], self.times.pop(0))
        return SUCCESS

    def do_SetTime(self, args: tuple[int, ...], call: dict[str, object]) -> int:  # noqa: N802
        call["detail"] = bytes(self.uc.mem_read(args[0], 16))
        return self.arch.error(self.fw.set_time_status) if self.fw.set_time_status else SUCCESS

    def do_GetVariable(self, args: tuple[int, ...], call: dict[str, object]) -> int:  # noqa: N802
        name, guid = _read_ucs2(self.uc, args[0]), self.guid(args[1])
        attr_ptr, size_ptr, data_ptr = args[2], args[3], args[4]
        call["text"], call["detail"] = name, guid
        if name in self.fw.variable_status:
            return self.arch.error(self.fw.variable_status[name])
        var = self.store.variables.get((name, guid))
        if var is None:
            return self.arch.error("NOT_FOUND")
        room = self.read_ptr(size_ptr)
        self.uc.mem_write(size_ptr, self.ptr(len(var.data)))
        if attr_ptr:  # on EFI_SUCCESS and on EFI_BUFFER_TOO_SMALL (UEFI 2.10 §8.2.1)
            self.uc.mem_write(attr_ptr, struct.pack("<I", var.attributes))
        if room < len(var.data):
            return self.arch.error("BUFFER_TOO_SMALL")
        if not data_ptr:
            return self.arch.error("INVALID_PARAMETER")
        self.uc.mem_write(data_ptr, var.data)
        return SUCCESS

    def do_SetVariable(self, args: tuple[int, ...], call: dict[str, object]) -> int:  # noqa: N802
        name, guid = _read_ucs2(self.uc, args[0]), self.guid(args[1])
        attributes, size, data_ptr = args[2], args[3], args[4]
        data = bytes(self.uc.mem_read(data_ptr, size)) if size else b""
        call["text"], call["detail"] = name, (guid, attributes, data)
        if not attributes & 0x7 or not size:
            return SUCCESS if self.store.variables.pop((name, guid), None) else self.arch.error("NOT_FOUND")
        if attributes & 0x4 and not attributes & 0x2:
            return self.arch.error("INVALID_PARAMETER")
        self.store.variables[(name, guid)] = Variable(attributes, data)
        return SUCCESS


def run_probe(
    image: bytes,
    firmware: FakeFirmware = FakeFirmware(),
    max_instructions: int = 2_000_000,
    store: VariableStore | None = None,
) -> Emulation:
    arch = arch_of(image)
    uc = Uc(arch.uc_arch, UC_MODE_ARM)
    if arch is ARM:
        uc.ctl_set_cpu_model(r32.UC_CPU_ARM_CORTEX_A15)  # has the generic timer (CNTFRQ, CNTVCT)
    entry = _load_image(uc, image)
    result = Emulation(arch)
    fake = _Firmware(uc, arch, firmware, store if store is not None else VariableStore(), result)
    return_address = fake.build()
    uc.mem_protect(FIRMWARE, 0x3000, UC_PROT_READ)  # the probe has no business writing firmware tables
    uc.mem_map(STUBS, 0x1000, UC_PROT_READ | UC_PROT_EXEC)
    uc.mem_write(STUBS, arch.ret * len(fake.stubs))
    uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE)
    uc.hook_add(UC_HOOK_CODE, fake.on_stub, begin=STUBS, end=STUBS + 0xFFF)

    uc.reg_write(arch.args[0], IMAGE_HANDLE)
    uc.reg_write(arch.args[1], SYSTEM_TABLE)
    uc.reg_write(arch.platform, PLATFORM_CANARY & ((1 << (8 * arch.pointer_size)) - 1))
    uc.reg_write(arch.lr, return_address)
    uc.reg_write(arch.sp, STACK_TOP)
    try:
        uc.emu_start(entry, 0xFFFF_FFFF_FFFF_FFFF if arch is AARCH64 else 0xFFFF_FFFF, count=max_instructions)
    except UcError as exc:
        pc = uc.reg_read(arch.pc)
        raise AssertionError(f"emulation fault at pc={pc:#x} (image+{pc - IMAGE_BASE:#x}): {exc}") from exc
    result.final_pc = uc.reg_read(arch.pc)
    if IMAGE_BASE <= result.final_pc < STUBS:
        (word,) = struct.unpack("<I", uc.mem_read(result.final_pc, 4))
        result.spinning = word == arch.spin
    return result


def build_fdt(nodes: dict[str, dict[str, bytes]], slack: int = 0) -> bytes:
    """A minimal FDT (Devicetree Specification v0.4 §5) with `nodes` = {"/path": {prop: value}}, parents first;
    `slack` bytes of free space after the blocks (counted in totalsize, like a firmware's padded copy)."""
    strings = bytearray()
    offsets: dict[str, int] = {}

    def name_offset(name: str) -> int:
        if name not in offsets:
            offsets[name] = len(strings)
            strings.extend(name.encode() + b"\0")
        return offsets[name]

    block = bytearray()
    open_path: list[str] = []
    for path in nodes:
        parts = [p for p in path.split("/") if p]
        while open_path and open_path != parts[: len(open_path)]:
            block += struct.pack(">I", 2)
            open_path.pop()
        name = parts[-1].encode() if parts else b""
        block += struct.pack(">I", 1) + name + b"\0" * (4 - len(name) % 4)
        for prop, value in nodes[path].items():
            block += struct.pack(">III", 3, len(value), name_offset(prop)) + value + b"\0" * (-len(value) % 4)
        open_path = parts
    block += struct.pack(">I", 2) * (len(open_path) + 1) + struct.pack(">I", 9)
    rsvmap = bytes(16)
    off_rsv = 40
    off_struct = off_rsv + len(rsvmap)
    off_strings = off_struct + len(block)
    total = off_strings + len(strings) + slack
    header = struct.pack(
        ">10I", 0xD00DFEED, total, off_struct, off_strings, off_rsv, 17, 16, 0, len(strings), len(block)
    )
    return header + rsvmap + bytes(block) + bytes(strings) + bytes(slack)
