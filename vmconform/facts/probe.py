"""The probe's fact lines as typed values: BOOT, FW, TABLES, TIME, CPU, SECUREBOOT and the DUMP blobs.

The probe prints raw numbers and bytes (see `vmconform.probe.protocol`); this module gives them meaning:
EFI_STATUS names (UEFI Specification 2.10 Appendix D), the EFI_TIME layout and its valid ranges (§8.3),
device paths (`devicepath`), configuration-table GUID names (clauses.md §1.7) and the reassembly of DUMP
chunks into the bytes of the DTB, ACPI and SMBIOS tables, which `fdt`, `acpi` and `smbios` decode.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from uuid import UUID

from vmconform.probe.protocol import ProbeLine
from vmconform.probe.uefi import KNOWN_GUIDS

from . import acpi
from .devicepath import DevicePathNode, HardDrive, file_path_text, hard_drive, parse_device_path
from .fdt import Fdt, parse_fdt
from .secureboot import SecureBootFact
from .smbios import Smbios3EntryPoint, SmbiosStructure, parse_entry_point, parse_structures
from .status import STATUS_NAMES, EfiStatus, FactError
from .status import bytes_field as _bytes
from .status import hex_field as _hex
from .status import status_field as _status

__all__ = [
    "FactError", "EfiStatus", "BootFact", "FirmwareFact", "TablesFact", "EfiTime", "TimeFact", "CpuFact", "Dump",
    "AcpiFacts", "ProbeFacts", "STATUS_NAMES", "guid_from_hex",
]  # fmt: skip


def guid_from_hex(text: str) -> UUID:
    """A GUID printed as its 16 bytes in memory order (EFI_GUID: the first three fields little-endian)."""
    return UUID(bytes_le=bytes.fromhex(text))


@dataclass(frozen=True)
class BootFact:
    arch: str
    image: EfiStatus  # HandleProtocol(ImageHandle, LoadedImage)
    device: EfiStatus  # HandleProtocol(DeviceHandle, DevicePath)
    device_path: tuple[DevicePathNode, ...] | None
    file_path: tuple[DevicePathNode, ...] | None
    path_text: str | None  # the first file path node, as the probe printed it

    @classmethod
    def from_line(cls, line: ProbeLine) -> BootFact:
        if not line.args:
            raise FactError(f"BOOT line without the architecture: {line.raw!r}")
        image, device = (_status(line, "image"), _status(line, "device")) if "image" in line.fields else (
            EfiStatus(0), EfiStatus(0))  # fmt: skip
        dp = parse_device_path(_bytes(line, "devpath")) if "devpath" in line.fields else None
        fp = parse_device_path(_bytes(line, "filepath")) if "filepath" in line.fields else None
        return cls(line.args[0], image, device, dp, fp, line.fields.get("path"))

    @property
    def partition(self) -> HardDrive | None:
        """The HD() node of the device the image was loaded from."""
        return None if self.device_path is None else hard_drive(self.device_path)

    @property
    def loaded_path(self) -> str | None:
        """LoadedImage->FilePath as text, e.g. \\EFI\\BOOT\\BOOTAA64.EFI."""
        return None if self.file_path is None else file_path_text(self.file_path)


@dataclass(frozen=True)
class FirmwareFact:
    st_signature: int
    uefi_revision: int
    firmware_revision: int
    rt_signature: int
    vendor: str

    @classmethod
    def from_line(cls, line: ProbeLine) -> FirmwareFact:
        return cls(_hex(line, "st_sig"), _hex(line, "uefi_rev"), _hex(line, "fw_rev"), _hex(line, "rt_sig"),
                   line.fields.get("vendor", ""))  # fmt: skip

    @property
    def st_signature_ok(self) -> bool:
        return self.st_signature == int.from_bytes(b"IBI SYST", "little")

    @property
    def rt_signature_ok(self) -> bool:
        return self.rt_signature == int.from_bytes(b"RUNTSERV", "little")

    @property
    def uefi_version(self) -> tuple[int, int]:
        """(major, minor) of the system table revision: (2, 70) is UEFI 2.7."""
        return self.uefi_revision >> 16, self.uefi_revision & 0xFFFF

    @property
    def uefi_version_text(self) -> str:
        major, minor = self.uefi_version
        return f"{major}.{minor // 10}" + (f".{minor % 10}" if minor % 10 else "")


@dataclass(frozen=True)
class TablesFact:
    guids: tuple[UUID, ...]

    @classmethod
    def from_line(cls, line: ProbeLine) -> TablesFact:
        count = _hex(line, "count")
        try:
            guids = tuple(guid_from_hex(arg) for arg in line.args)
        except ValueError:
            raise FactError(f"TABLES line with an argument that is not 16 hex bytes: {line.raw!r}") from None
        if len(guids) != count:
            raise FactError(f"TABLES line says count={count} but lists {len(guids)} GUIDs: {line.raw!r}")
        return cls(guids)

    @property
    def names(self) -> tuple[str, ...]:
        """Each table's name (clauses.md §1.7) or its GUID in canonical upper-case form."""
        return tuple(KNOWN_GUIDS.get(g, str(g).upper()) for g in self.guids)

    def has(self, name: str) -> bool:
        return name in self.names


@dataclass(frozen=True)
class EfiTime:
    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    nanosecond: int
    time_zone: int
    daylight: int

    @classmethod
    def from_bytes(cls, data: bytes) -> EfiTime:
        y, mo, d, h, mi, s, _, ns, tz, dl, _ = struct.unpack("<HBBBBBBIhBB", data)
        return cls(y, mo, d, h, mi, s, ns, tz, dl)

    def problems(self) -> list[str]:
        """What is outside the ranges of UEFI §8.3 EFI_TIME (empty when valid)."""
        out = []
        checks = [("Year", self.year, 1900, 9999), ("Month", self.month, 1, 12), ("Day", self.day, 1, 31),
                  ("Hour", self.hour, 0, 23), ("Minute", self.minute, 0, 59), ("Second", self.second, 0, 59),
                  ("Nanosecond", self.nanosecond, 0, 999_999_999)]  # fmt: skip
        out = [f"{name} {value} outside {lo}..{hi}" for name, value, lo, hi in checks if not lo <= value <= hi]
        if not (-1440 <= self.time_zone <= 1440 or self.time_zone == 0x7FF):
            out.append(f"TimeZone {self.time_zone} is neither -1440..1440 nor EFI_UNSPECIFIED_TIMEZONE")
        return out

    def to_datetime(self) -> datetime.datetime:
        """As a naive datetime (the time zone, often unspecified, is ignored); ValueError when invalid."""
        return datetime.datetime(self.year, self.month, self.day, self.hour, self.minute, self.second,
                                 self.nanosecond // 1000)  # fmt: skip

    def __str__(self) -> str:
        return (f"{self.year:04}-{self.month:02}-{self.day:02} {self.hour:02}:{self.minute:02}:{self.second:02}"
                f".{self.nanosecond:09}")  # fmt: skip


@dataclass(frozen=True)
class TimeFact:
    get0: EfiStatus
    t0: EfiTime
    stall: EfiStatus
    get1: EfiStatus
    t1: EfiTime
    set: EfiStatus

    @classmethod
    def from_line(cls, line: ProbeLine) -> TimeFact:
        return cls(_status(line, "get0"), EfiTime.from_bytes(_bytes(line, "t0")), _status(line, "stall"),
                   _status(line, "get1"), EfiTime.from_bytes(_bytes(line, "t1")), _status(line, "set"))  # fmt: skip

    @property
    def advanced(self) -> float | None:
        """Seconds from the first GetTime to the second (None when either time is invalid)."""
        try:
            return (self.t1.to_datetime() - self.t0.to_datetime()).total_seconds()
        except ValueError:
            return None


@dataclass(frozen=True)
class CpuFact:
    arch: str
    registers: Mapping[str, int]  # field name -> value, as printed (see program.CPU_REGISTERS)

    @classmethod
    def from_line(cls, line: ProbeLine, arch: str) -> CpuFact:
        return cls(arch, MappingProxyType({name: _hex(line, name) for name in line.fields}))

    @property
    def privilege(self) -> str:
        """ "EL1" (AArch64 CurrentEL) or the AArch32 mode with its privilege level, e.g. "SVC (PL1)"."""
        if "el" in self.registers:
            return f"EL{(self.registers['el'] >> 2) & 3}"
        modes = {0x10: "USR (PL0)", 0x11: "FIQ (PL1)", 0x12: "IRQ (PL1)", 0x13: "SVC (PL1)", 0x16: "MON (PL1)",
                 0x17: "ABT (PL1)", 0x1A: "HYP (PL2)", 0x1B: "UND (PL1)", 0x1F: "SYS (PL1)"}  # fmt: skip
        mode = self.registers.get("cpsr", 0) & 0x1F
        return modes.get(mode, f"mode {mode:#x}")

    @property
    def counter_frequency(self) -> int:
        return self.registers.get("cntfrq", 0)

    @property
    def counter_seconds(self) -> float | None:
        """Seconds the virtual counter advanced across the probe's 1 s stall (None without a frequency)."""
        if not self.counter_frequency:
            return None
        return (self.registers["cntvct1"] - self.registers["cntvct0"]) / self.counter_frequency


@dataclass(frozen=True)
class Dump:
    """One DUMP blob put back together: `data` holds the bytes of the chunks, `missing` the gaps."""

    name: str
    address: int
    size: int  # the size the structure claims
    shown: int  # how many bytes the probe printed
    data: bytes
    missing: tuple[tuple[int, int], ...]  # (offset, length) never received

    @property
    def complete(self) -> bool:
        return not self.missing and len(self.data) == self.shown


def _dumps(lines: Iterable[ProbeLine]) -> dict[str, Dump]:
    headers: dict[str, ProbeLine] = {}
    chunks: dict[str, dict[int, bytes]] = {}
    for line in lines:
        if line.key != "DUMP" or not line.args:
            continue
        name = line.args[0]
        if "addr" in line.fields:
            headers[name] = line
            chunks[name] = {}
        elif name in chunks:
            chunks[name][_hex(line, "off")] = _bytes(line, "data")
    out = {}
    for name, header in headers.items():
        shown = _hex(header, "shown")
        buf = bytearray(shown)
        have = bytearray(shown)
        for off, data in chunks[name].items():
            buf[off : off + len(data)] = data
            have[off : off + len(data)] = b"\1" * len(data)
        missing = []
        pos = 0
        while pos < shown:
            if have[pos]:
                pos += 1
                continue
            start = pos
            while pos < shown and not have[pos]:
                pos += 1
            missing.append((start, pos - start))
        out[name] = Dump(name, _hex(header, "addr"), _hex(header, "size"), shown, bytes(buf[:shown]), tuple(missing))
    return out


@dataclass(frozen=True)
class AcpiFacts:
    rsdp: acpi.Rsdp
    xsdt: acpi.SdtHeader | None
    tables: Mapping[str, bytes]  # signature -> bytes (the first table with that signature)
    headers: tuple[acpi.SdtHeader, ...]  # every table the XSDT lists, in order

    def table(self, signature: str) -> bytes | None:
        return self.tables.get(signature)


@dataclass(frozen=True)
class ProbeFacts:
    """Everything one probe run reported; a fact is None when its line did not come."""

    boot: BootFact | None = None
    firmware: FirmwareFact | None = None
    tables: TablesFact | None = None
    time: TimeFact | None = None
    cpu: CpuFact | None = None
    dumps: Mapping[str, Dump] = field(default_factory=dict)
    secureboot: SecureBootFact | None = None

    @classmethod
    def from_lines(cls, lines: Iterable[ProbeLine]) -> ProbeFacts:
        """The facts of the lines of one nonce (the last line of each key wins)."""
        lines = list(lines)
        last = {line.key: line for line in lines}
        boot = BootFact.from_line(last["BOOT"]) if "BOOT" in last else None
        return cls(
            boot=boot,
            firmware=FirmwareFact.from_line(last["FW"]) if "FW" in last else None,
            tables=TablesFact.from_line(last["TABLES"]) if "TABLES" in last else None,
            time=TimeFact.from_line(last["TIME"]) if "TIME" in last else None,
            cpu=CpuFact.from_line(last["CPU"], boot.arch if boot else "") if "CPU" in last else None,
            dumps=MappingProxyType(_dumps(lines)),
            secureboot=SecureBootFact.from_line(last["SECUREBOOT"]) if "SECUREBOOT" in last else None,
        )

    def fdt(self) -> Fdt | None:
        """The device tree the firmware published (None when there was no DTB configuration table)."""
        dump = self.dumps.get("dtb")
        if dump is None:
            return None
        if dump.missing:
            raise FactError(f"the DTB dump misses bytes {dump.missing}")
        return parse_fdt(dump.data.ljust(dump.size, b"\0"))

    def acpi(self) -> AcpiFacts | None:
        """The RSDP, XSDT and listed tables (None when there was no ACPI 2.0 configuration table)."""
        if "rsdp" not in self.dumps:
            return None
        rsdp = acpi.parse_rsdp(self.dumps["rsdp"].data)
        xsdt = acpi.parse_header(self.dumps["xsdt"].data) if "xsdt" in self.dumps else None
        tables: dict[str, bytes] = {}
        headers = []
        for name in sorted(n for n in self.dumps if n.startswith("acpi")):
            data = self.dumps[name].data
            header = acpi.parse_header(data)
            headers.append(header)
            tables.setdefault(header.signature, data)
        return AcpiFacts(rsdp, xsdt, MappingProxyType(tables), tuple(headers))

    def smbios3(self) -> tuple[Smbios3EntryPoint, tuple[SmbiosStructure, ...]] | None:
        if "smbios3" not in self.dumps:
            return None
        entry = parse_entry_point(self.dumps["smbios3"].data)
        table = self.dumps.get("smbios3_table")
        return entry, parse_structures(table.data) if table else ()
