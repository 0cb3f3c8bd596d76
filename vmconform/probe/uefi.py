"""UEFI tables and constants the probe reads, with field offsets for 32- and 64-bit firmware.

Implements the layouts of UEFI Specification 2.10 §4.2 (EFI_TABLE_HEADER), §4.3 (EFI_SYSTEM_TABLE),
§4.5 (EFI_RUNTIME_SERVICES), §12.4 (EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL), §8.5.1 (EFI_RESET_TYPE),
§4.4 (EFI_BOOT_SERVICES), §9.1 (EFI_LOADED_IMAGE_PROTOCOL), §4.6 (EFI_CONFIGURATION_TABLE), §8.2 (variable
attributes), §3.1.3 (load options) and Appendix D (status codes);
see also shared/spec/clauses.md §1.7. Structures use natural alignment (§2.3.1): a field is aligned to its
own size, so UINTN, handles and pointers are 4 or 8 bytes by the firmware's pointer size. The offsets
computed here are the ones the AArch64 and Arm prototypes confirmed on AAVMF (tests pin them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from uuid import UUID

__all__ = [
    "Kind",
    "Field",
    "Struct",
    "SYSTEM_TABLE",
    "RUNTIME_SERVICES",
    "SIMPLE_TEXT_OUTPUT_PROTOCOL",
    "EFI_SUCCESS",
    "RESET_COLD",
    "RESET_WARM",
    "RESET_SHUTDOWN",
    "RESET_PLATFORM_SPECIFIC",
    "SYSTEM_TABLE_SIGNATURE",
    "RUNTIME_SERVICES_SIGNATURE",
    "BOOT_SERVICES",
    "LOADED_IMAGE_PROTOCOL",
    "config_table_entry_size",
    "CONFIG_TABLE_VENDOR_TABLE",
    "efi_error",
    "EFI_NOT_FOUND",
    "EFI_BUFFER_TOO_SMALL",
    "guid_bytes",
    "KNOWN_GUIDS",
    "LOADED_IMAGE_PROTOCOL_GUID",
    "DEVICE_PATH_PROTOCOL_GUID",
    "GLOBAL_VARIABLE_GUID",
    "IMAGE_SECURITY_DATABASE_GUID",
    "ACPI_20_TABLE_GUID",
    "ACPI_10_TABLE_GUID",
    "DTB_TABLE_GUID",
    "SMBIOS_TABLE_GUID",
    "SMBIOS3_TABLE_GUID",
    "RT_PROPERTIES_TABLE_GUID",
    "MEMORY_ATTRIBUTES_TABLE_GUID",
    "VARIABLE_NON_VOLATILE",
    "VARIABLE_BOOTSERVICE_ACCESS",
    "VARIABLE_RUNTIME_ACCESS",
    "LOAD_OPTION_ACTIVE",
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
        self._fields = {member: Field(name, member, kind, tuple(kinds[:i])) for i, (member, kind) in enumerate(members)}
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


SYSTEM_TABLE = Struct(
    "EFI_SYSTEM_TABLE",
    (
        *_TABLE_HEADER,
        ("FirmwareVendor", Kind.UINTN),
        ("FirmwareRevision", Kind.U32),
        *_pointers(
            "ConsoleInHandle",
            "ConIn",
            "ConsoleOutHandle",
            "ConOut",
            "StandardErrorHandle",
            "StdErr",
            "RuntimeServices",
            "BootServices",
            "NumberOfTableEntries",
            "ConfigurationTable",
        ),
    ),
)

RUNTIME_SERVICES = Struct(
    "EFI_RUNTIME_SERVICES",
    (
        *_TABLE_HEADER,
        *_pointers(
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
        ),
    ),
)

BOOT_SERVICES = Struct(
    "EFI_BOOT_SERVICES",
    (
        *_TABLE_HEADER,
        *_pointers(
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
        ),
    ),
)

LOADED_IMAGE_PROTOCOL = Struct(
    "EFI_LOADED_IMAGE_PROTOCOL",
    (
        ("Revision", Kind.U32),
        *_pointers("ParentHandle", "SystemTable", "DeviceHandle", "FilePath", "Reserved"),
        ("LoadOptionsSize", Kind.U32),
        *_pointers("LoadOptions", "ImageBase"),
        ("ImageSize", Kind.U64),
    ),
)

# EFI_CONFIGURATION_TABLE: EFI_GUID VendorGuid (16 bytes, 4-byte aligned), VOID *VendorTable
CONFIG_TABLE_VENDOR_TABLE = 16


def config_table_entry_size(pointer_size: int) -> int:
    """sizeof(EFI_CONFIGURATION_TABLE): 24 with 8-byte pointers, 20 with 4-byte pointers."""
    return 16 + pointer_size + -(16 + pointer_size) % pointer_size


SIMPLE_TEXT_OUTPUT_PROTOCOL = Struct(
    "EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL",
    _pointers(
        "Reset",
        "OutputString",
        "TestString",
        "QueryMode",
        "SetMode",
        "SetAttribute",
        "ClearScreen",
        "SetCursorPosition",
        "EnableCursor",
        "Mode",
    ),
)

EFI_SUCCESS = 0


def efi_error(code: int, pointer_size: int) -> int:
    """The EFI_STATUS of error `code` (Appendix D): the code with the top bit of a UINTN set."""
    return (1 << (8 * pointer_size - 1)) | code


EFI_BUFFER_TOO_SMALL = 5  # error codes; efi_error() makes the status
EFI_NOT_FOUND = 14

# EFI_RESET_TYPE
RESET_COLD = 0
RESET_WARM = 1
RESET_SHUTDOWN = 2
RESET_PLATFORM_SPECIFIC = 3

SYSTEM_TABLE_SIGNATURE = int.from_bytes(b"IBI SYST", "little")
RUNTIME_SERVICES_SIGNATURE = int.from_bytes(b"RUNTSERV", "little")


# Variable attributes (§8.2) and load option attributes (§3.1.3)
VARIABLE_NON_VOLATILE = 0x1
VARIABLE_BOOTSERVICE_ACCESS = 0x2
VARIABLE_RUNTIME_ACCESS = 0x4
LOAD_OPTION_ACTIVE = 0x1

LOADED_IMAGE_PROTOCOL_GUID = UUID("5B1B31A1-9562-11D2-8E3F-00A0C969723B")
DEVICE_PATH_PROTOCOL_GUID = UUID("09576E91-6D3F-11D2-8E39-00A0C969723B")
GLOBAL_VARIABLE_GUID = UUID("8BE4DF61-93CA-11D2-AA0D-00E098032B8C")
IMAGE_SECURITY_DATABASE_GUID = UUID("D719B2CB-3D3A-4596-A3BC-DAD00E67656F")  # db, dbx (§32.6.1)
ACPI_20_TABLE_GUID = UUID("8868E871-E4F1-11D3-BC22-0080C73C8881")
ACPI_10_TABLE_GUID = UUID("EB9D2D30-2D88-11D3-9A16-0090273FC14D")
DTB_TABLE_GUID = UUID("B1B621D5-F19C-41A5-830B-D9152C69AAE0")
SMBIOS_TABLE_GUID = UUID("EB9D2D31-2D88-11D3-9A16-0090273FC14D")
SMBIOS3_TABLE_GUID = UUID("F2FD1544-9794-4A2C-992E-E5BBCF20E394")
RT_PROPERTIES_TABLE_GUID = UUID("EB66918A-7EEF-402A-842E-931D21C38AE9")
MEMORY_ATTRIBUTES_TABLE_GUID = UUID("DCFA911D-26EB-469F-A220-38B7DC461220")

KNOWN_GUIDS: dict[UUID, str] = {
    ACPI_20_TABLE_GUID: "ACPI_20",
    ACPI_10_TABLE_GUID: "ACPI_10",
    DTB_TABLE_GUID: "DTB",
    SMBIOS_TABLE_GUID: "SMBIOS",
    SMBIOS3_TABLE_GUID: "SMBIOS3",
    RT_PROPERTIES_TABLE_GUID: "RT_PROPERTIES",
    MEMORY_ATTRIBUTES_TABLE_GUID: "MEMORY_ATTRIBUTES",
}
"""Configuration-table GUIDs the host names (shared/spec/clauses.md §1.7)."""


def guid_bytes(guid: UUID) -> bytes:
    """The 16 bytes of an EFI_GUID in memory (Data1..Data3 little-endian, as UUID.bytes_le)."""
    return guid.bytes_le
