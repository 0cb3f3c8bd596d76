"""Run an AArch64 probe image in unicorn against a fake UEFI firmware, recording every service call.

The image is loaded with pefile (not with the writer's own knowledge): headers read-only, sections by
their characteristics (.text read+execute, as AAVMF maps it). The fake firmware is a system table, a
ConOut protocol, runtime and boot services tables in memory, whose function pointers all point at
distinct `ret` stubs; a code hook on the stubs records (service, x0..x7, sp, x18) and, for OutputString,
the UCS-2 string it was given. Struct offsets are written here from the UEFI spec, independently of
vmconform.probe.uefi.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pefile
from unicorn import UC_ARCH_ARM64, UC_HOOK_CODE, UC_MODE_ARM, UC_PROT_EXEC, UC_PROT_READ, Uc, UcError
from unicorn import arm64_const as r

IMAGE_BASE = 0x4000_0000
FIRMWARE = 0x5000_0000
SYSTEM_TABLE = FIRMWARE
CON_OUT = FIRMWARE + 0x400
RUNTIME_SERVICES = FIRMWARE + 0x800
BOOT_SERVICES = FIRMWARE + 0xC00
VENDOR = FIRMWARE + 0x2000
STUBS = 0x6000_0000
STACK_TOP = 0x7001_0000
STACK_SIZE = 0x10000
IMAGE_HANDLE = 0x0DEF_0000
X18_CANARY = 0x1818_1818_1818_1818
RET = 0xD65F03C0

CON_OUT_FUNCTIONS = ("Reset", "OutputString", "TestString", "QueryMode", "SetMode", "SetAttribute",
                     "ClearScreen", "SetCursorPosition", "EnableCursor")
RUNTIME_FUNCTIONS = ("GetTime", "SetTime", "GetWakeupTime", "SetWakeupTime", "SetVirtualAddressMap",
                     "ConvertPointer", "GetVariable", "GetNextVariableName", "SetVariable",
                     "GetNextHighMonotonicCount", "ResetSystem", "UpdateCapsule", "QueryCapsuleCapabilities",
                     "QueryVariableInfo")
BOOT_FUNCTION_COUNT = 44
RETURN_TO_FIRMWARE = "<return to firmware>"


@dataclass(frozen=True)
class FakeFirmware:
    st_signature: int = int.from_bytes(b"IBI SYST", "little")
    uefi_revision: int = 0x0002_0046
    firmware_revision: int = 0x0001_0000
    rt_signature: int = int.from_bytes(b"RUNTSERV", "little")
    vendor: str | None = "EDK II"
    reset_returns: bool = False  # True: ResetSystem returns to the probe (a broken firmware)


@dataclass(frozen=True)
class ServiceCall:
    service: str
    args: tuple[int, ...]  # x0..x7
    text: str | None       # the UCS-2 string of an OutputString call
    sp: int
    x18: int


@dataclass
class Emulation:
    calls: list[ServiceCall] = field(default_factory=list)
    final_pc: int = 0
    spinning: bool = False  # final_pc holds a branch to itself

    @property
    def output(self) -> str:
        return "".join(c.text or "" for c in self.calls if c.service == "OutputString")


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
        raw = image[section.PointerToRawData: section.PointerToRawData + section.SizeOfRawData]
        uc.mem_write(start, raw[: section.Misc_VirtualSize])
        perms = UC_PROT_READ | (UC_PROT_EXEC if section.Characteristics & 0x20000000 else 0)
        uc.mem_protect(start, _page(section.Misc_VirtualSize), perms)
    return IMAGE_BASE + opt.AddressOfEntryPoint


def run_probe(image: bytes, firmware: FakeFirmware = FakeFirmware(), max_instructions: int = 200_000) -> Emulation:
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    entry = _load_image(uc, image)

    stubs: dict[int, str] = {}

    def stub(name: str) -> int:
        address = STUBS + 4 * len(stubs)
        stubs[address] = name
        return address

    uc.mem_map(FIRMWARE, 0x10000)
    # EFI_SYSTEM_TABLE (64-bit): Hdr.Signature +0, Hdr.Revision +8, FirmwareVendor +24, FirmwareRevision +32,
    # ConOut +64, RuntimeServices +88, BootServices +96
    uc.mem_write(SYSTEM_TABLE, struct.pack("<QIIII", firmware.st_signature, firmware.uefi_revision, 120, 0, 0))
    vendor_ptr = 0 if firmware.vendor is None else VENDOR
    uc.mem_write(SYSTEM_TABLE + 24, struct.pack("<QI", vendor_ptr, firmware.firmware_revision))
    uc.mem_write(SYSTEM_TABLE + 64, struct.pack("<Q", CON_OUT))
    uc.mem_write(SYSTEM_TABLE + 88, struct.pack("<QQ", RUNTIME_SERVICES, BOOT_SERVICES))
    if firmware.vendor is not None:
        uc.mem_write(VENDOR, firmware.vendor.encode("utf-16-le") + b"\0\0")
    # EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL: 9 function pointers, then Mode
    uc.mem_write(CON_OUT, b"".join(struct.pack("<Q", stub(n)) for n in CON_OUT_FUNCTIONS))
    # EFI_RUNTIME_SERVICES: header, then 14 function pointers from +24
    uc.mem_write(RUNTIME_SERVICES, struct.pack("<Q", firmware.rt_signature))
    uc.mem_write(RUNTIME_SERVICES + 24, b"".join(struct.pack("<Q", stub(n)) for n in RUNTIME_FUNCTIONS))
    uc.mem_write(BOOT_SERVICES + 24, b"".join(
        struct.pack("<Q", stub(f"BootServices+{24 + 8 * i}")) for i in range(BOOT_FUNCTION_COUNT)))
    return_address = stub(RETURN_TO_FIRMWARE)
    uc.mem_protect(FIRMWARE, 0x10000, UC_PROT_READ)  # the probe has no business writing firmware tables

    uc.mem_map(STUBS, 0x1000, UC_PROT_READ | UC_PROT_EXEC)
    uc.mem_write(STUBS, struct.pack("<I", RET) * len(stubs))
    uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE)

    result = Emulation()

    def on_stub(uc: Uc, address: int, size: int, user_data: object) -> None:
        name = stubs[address]
        args = tuple(uc.reg_read(getattr(r, f"UC_ARM64_REG_X{i}")) for i in range(8))
        text = _read_ucs2(uc, args[1]) if name == "OutputString" else None
        result.calls.append(ServiceCall(name, args, text, uc.reg_read(r.UC_ARM64_REG_SP),
                                        uc.reg_read(r.UC_ARM64_REG_X18)))
        if name == RETURN_TO_FIRMWARE or (name == "ResetSystem" and not firmware.reset_returns):
            uc.emu_stop()

    uc.hook_add(UC_HOOK_CODE, on_stub, begin=STUBS, end=STUBS + 0xFFF)

    uc.reg_write(r.UC_ARM64_REG_X0, IMAGE_HANDLE)
    uc.reg_write(r.UC_ARM64_REG_X1, SYSTEM_TABLE)
    uc.reg_write(r.UC_ARM64_REG_X18, X18_CANARY)
    uc.reg_write(r.UC_ARM64_REG_X30, return_address)
    uc.reg_write(r.UC_ARM64_REG_SP, STACK_TOP)
    try:
        uc.emu_start(entry, 0xFFFF_FFFF_FFFF_FFFF, count=max_instructions)
    except UcError as exc:
        pc = uc.reg_read(r.UC_ARM64_REG_PC)
        raise AssertionError(f"emulation fault at pc={pc:#x} (image+{pc - IMAGE_BASE:#x}): {exc}") from exc
    result.final_pc = uc.reg_read(r.UC_ARM64_REG_PC)
    if IMAGE_BASE <= result.final_pc < STUBS:
        (word,) = struct.unpack("<I", uc.mem_read(result.final_pc, 4))
        result.spinning = word == 0x14000000  # b .
    return result
