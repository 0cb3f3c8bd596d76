"""ACPI tables as the probe dumps them: the RSDP, the XSDT and the tables it lists, with checksums.

Implements from the ACPI Specification 6.5: §5.2.5.3 RSDP, §5.2.6 system description table header,
§5.2.8 XSDT, §5.2.9 FADT (Flags at 112, ARM_BOOT_ARCH at 129, minor version at 131), §5.2.12 MADT (GICC 0x0B,
GICD 0x0C, GIC MSI frame 0x0D, GICR 0x0E, ITS 0x0F), §5.2.25 GTDT (timer GSIVs); the SPCR and DBG2 tables of
Microsoft's "Serial Port Console Redirection Table" (interface types 0x03 PL011, 0x0E SBSA generic UART) and
"Debug Port Table 2" specifications; and MCFG from the PCI Firmware Specification 3.2 §4.1.2.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "AcpiError", "Rsdp", "SdtHeader", "Fadt", "Madt", "Gtdt", "Spcr", "Dbg2Device", "McfgAllocation",
    "parse_rsdp", "parse_header", "parse_fadt", "parse_madt", "parse_gtdt", "parse_spcr", "parse_dbg2",
    "parse_mcfg", "xsdt_entries", "checksum_ok", "UART_TYPES",
]  # fmt: skip

UART_TYPES = {0x00: "16550", 0x01: "16450", 0x03: "ARM PL011", 0x0D: "ARM SBSA (2.x only)",
              0x0E: "ARM SBSA generic", 0x0F: "ARM DCC", 0x12: "16550-compatible GAS"}  # fmt: skip


class AcpiError(ValueError):
    """A table is too short or does not carry the expected signature."""


def checksum_ok(data: bytes) -> bool:
    """Every byte of the table sums to zero (mod 256)."""
    return sum(data) % 256 == 0


@dataclass(frozen=True)
class Rsdp:
    revision: int
    oem_id: str
    rsdt_address: int
    xsdt_address: int  # 0 for revision 0
    length: int
    checksum_ok: bool  # first 20 bytes
    extended_checksum_ok: bool  # the whole structure (revision 2+)


def parse_rsdp(data: bytes) -> Rsdp:
    if len(data) < 20 or data[:8] != b"RSD PTR ":
        raise AcpiError("not an RSDP (signature 'RSD PTR ')")
    oem, revision, rsdt = struct.unpack_from("<6sBI", data, 9)
    if revision == 0:
        return Rsdp(0, _text(oem), rsdt, 0, 20, checksum_ok(data[:20]), True)
    if len(data) < 36:
        raise AcpiError(f"RSDP revision {revision} needs 36 bytes, have {len(data)}")
    length, xsdt = struct.unpack_from("<IQ", data, 20)
    return Rsdp(revision, _text(oem), rsdt, xsdt, length, checksum_ok(data[:20]), checksum_ok(data[:length]))


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0 ").decode("ascii", "replace")


@dataclass(frozen=True)
class SdtHeader:
    signature: str
    length: int
    revision: int
    oem_id: str
    oem_table_id: str
    oem_revision: int
    creator_id: str
    creator_revision: int
    checksum_ok: bool


def parse_header(data: bytes) -> SdtHeader:
    if len(data) < 36:
        raise AcpiError(f"{len(data)} bytes is shorter than an ACPI table header")
    sig, length, rev, _, oem, table_id, oem_rev, creator, creator_rev = struct.unpack_from("<4sIBB6s8sI4sI", data)
    complete = len(data) >= length
    return SdtHeader(
        sig.decode("ascii", "replace"),
        length,
        rev,
        _text(oem),
        _text(table_id),
        oem_rev,
        creator.decode("ascii", "replace"),
        creator_rev,
        complete and checksum_ok(data[:length]),
    )


def _expect(data: bytes, signature: str, minimum: int) -> None:
    if data[:4] != signature.encode() or len(data) < minimum:
        raise AcpiError(f"not a {signature} table of at least {minimum} bytes")


def xsdt_entries(data: bytes) -> tuple[int, ...]:
    _expect(data, "XSDT", 36)
    length = min(struct.unpack_from("<I", data, 4)[0], len(data))
    return struct.unpack_from(f"<{(length - 36) // 8}Q", data, 36)


@dataclass(frozen=True)
class Fadt:
    flags: int
    arm_boot_arch: int
    minor_version: int

    @property
    def hw_reduced(self) -> bool:
        return bool(self.flags & (1 << 20))

    @property
    def psci_compliant(self) -> bool:
        return bool(self.arm_boot_arch & 1)

    @property
    def psci_use_hvc(self) -> bool:
        return bool(self.arm_boot_arch & 2)


def parse_fadt(data: bytes) -> Fadt:
    _expect(data, "FACP", 132)
    return Fadt(struct.unpack_from("<I", data, 112)[0], struct.unpack_from("<H", data, 129)[0], data[131])


@dataclass(frozen=True)
class Madt:
    gicc: tuple[tuple[int, int, bool], ...]  # (CPU interface number, MPIDR, enabled)
    gic_version: int | None  # from the GICD entry (1..4), 0 = "detect from hardware"
    gicd_base: int | None
    redistributors: int
    its: int
    msi_frames: int


def parse_madt(data: bytes) -> Madt:
    _expect(data, "APIC", 44)
    length = min(struct.unpack_from("<I", data, 4)[0], len(data))
    gicc: list[tuple[int, int, bool]] = []
    version = base = None
    counts = {0x0D: 0, 0x0E: 0, 0x0F: 0}
    pos = 44
    while pos + 2 <= length:
        kind, size = data[pos], data[pos + 1]
        if size < 2 or pos + size > length:
            raise AcpiError(f"MADT entry at {pos} has length {size}")
        if kind == 0x0B and size >= 76:
            (number,) = struct.unpack_from("<I", data, pos + 4)
            (flags,) = struct.unpack_from("<I", data, pos + 12)
            (mpidr,) = struct.unpack_from("<Q", data, pos + 68)
            gicc.append((number, mpidr, bool(flags & 1)))
        elif kind == 0x0C and size >= 24:
            (base,) = struct.unpack_from("<Q", data, pos + 8)
            version = data[pos + 20]
        elif kind in counts:
            counts[kind] += 1
        pos += size
    return Madt(tuple(gicc), version, base, counts[0x0E], counts[0x0F], counts[0x0D])


@dataclass(frozen=True)
class Gtdt:
    secure_el1: int
    non_secure_el1: int
    virtual_el1: int
    non_secure_el2: int


def parse_gtdt(data: bytes) -> Gtdt:
    _expect(data, "GTDT", 80)
    s, _, ns, _, v, _, el2, _ = struct.unpack_from("<8I", data, 48)
    return Gtdt(s, ns, v, el2)


@dataclass(frozen=True)
class Spcr:
    interface_type: int
    address_space: int  # of the base address GAS: 0 = system memory
    base_address: int

    @property
    def interface(self) -> str:
        return UART_TYPES.get(self.interface_type, f"type {self.interface_type:#x}")


def parse_spcr(data: bytes) -> Spcr:
    _expect(data, "SPCR", 52)
    return Spcr(data[36], data[40], struct.unpack_from("<Q", data, 44)[0])


@dataclass(frozen=True)
class Dbg2Device:
    port_type: int  # 0x8000 serial
    port_subtype: int  # 0x0003 PL011, 0x000E SBSA generic
    base_addresses: tuple[int, ...]


def parse_dbg2(data: bytes) -> tuple[Dbg2Device, ...]:
    _expect(data, "DBG2", 44)
    offset, count = struct.unpack_from("<II", data, 36)
    devices: list[Dbg2Device] = []
    for _ in range(count):
        if offset + 22 > len(data):
            raise AcpiError("DBG2 device information runs off the table")
        _, length, ngas = struct.unpack_from("<BHB", data, offset)
        port_type, subtype = struct.unpack_from("<HH", data, offset + 12)
        (gas_offset,) = struct.unpack_from("<H", data, offset + 18)
        bases = tuple(struct.unpack_from("<Q", data, offset + gas_offset + 12 * i + 4)[0] for i in range(ngas))
        devices.append(Dbg2Device(port_type, subtype, bases))
        offset += length
    return tuple(devices)


@dataclass(frozen=True)
class McfgAllocation:
    base: int
    segment: int
    start_bus: int
    end_bus: int


def parse_mcfg(data: bytes) -> tuple[McfgAllocation, ...]:
    _expect(data, "MCFG", 44)
    length = min(struct.unpack_from("<I", data, 4)[0], len(data))
    return tuple(McfgAllocation(*struct.unpack_from("<QHBB", data, pos)) for pos in range(44, length - 15, 16))
