"""UEFI device paths as the probe prints them (hex bytes): nodes, the hard-drive node, file path nodes.

Implements the generic node header of UEFI Specification 2.10 §10.2 (Type, SubType, Length) and the nodes
the probe's facts need from §10.3: ACPI (2/1), PCI (1/1), Hard Drive media (4/1), File Path media (4/4)
and the end node (0x7F). Other nodes are kept as raw bytes and shown as `Path(type,subtype,hex)`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from uuid import UUID

__all__ = ["DevicePathNode", "HardDrive", "parse_device_path", "device_path_text", "hard_drive", "file_path_text"]

END_TYPE = 0x7F
MEDIA_TYPE = 4
HARD_DRIVE = 1
FILE_PATH = 4


@dataclass(frozen=True)
class DevicePathNode:
    type: int
    subtype: int
    data: bytes  # the node body, after the 4-byte header

    @property
    def is_end(self) -> bool:
        return self.type == END_TYPE

    def text(self) -> str:
        d = self.data
        if self.type == 2 and self.subtype == 1 and len(d) == 8:
            hid, uid = struct.unpack("<II", d)
            if hid == 0x0A0341D0:
                return f"PciRoot({uid:#x})"
            return f"Acpi({hid:#010x},{uid:#x})"
        if self.type == 1 and self.subtype == 1 and len(d) == 2:
            return f"Pci({d[1]:#x},{d[0]:#x})"
        if self.type == MEDIA_TYPE and self.subtype == HARD_DRIVE and len(d) == 38:
            return HardDrive.from_node(self).text()
        if self.type == MEDIA_TYPE and self.subtype == FILE_PATH:
            return _ucs2(d)
        return f"Path({self.type},{self.subtype},{d.hex().upper()})"


@dataclass(frozen=True)
class HardDrive:
    """HARDDRIVE_DEVICE_PATH (§10.3.5.1): the partition the image was loaded from."""

    number: int
    start: int  # LBA
    size: int  # blocks
    signature: bytes  # 16 bytes: the GPT UniquePartitionGUID, or an MBR signature in the first 4
    format: int  # 1 = MBR, 2 = GPT
    signature_type: int  # 0 = none, 1 = MBR 32-bit, 2 = GUID

    @classmethod
    def from_node(cls, node: DevicePathNode) -> HardDrive:
        number, start, size, signature, fmt, sig_type = struct.unpack("<IQQ16sBB", node.data)
        return cls(number, start, size, signature, fmt, sig_type)

    @property
    def guid(self) -> UUID | None:
        """The partition's unique GUID when the signature is one (signature type 2)."""
        return UUID(bytes_le=self.signature) if self.signature_type == 2 else None

    def text(self) -> str:
        if self.format == 2 and self.guid is not None:
            return f"HD({self.number},GPT,{str(self.guid).upper()},{self.start:#x},{self.size:#x})"
        mbr = int.from_bytes(self.signature[:4], "little")
        return f"HD({self.number},MBR,{mbr:#010x},{self.start:#x},{self.size:#x})"


def _ucs2(data: bytes) -> str:
    text = data[: len(data) // 2 * 2].decode("utf-16-le", "replace")
    return text.split("\0", 1)[0]


def parse_device_path(data: bytes) -> tuple[DevicePathNode, ...]:
    """The nodes of one device-path instance, up to and including its end node (ValueError if malformed)."""
    nodes: list[DevicePathNode] = []
    pos = 0
    while pos + 4 <= len(data):
        type_, subtype, length = struct.unpack_from("<BBH", data, pos)
        if length < 4 or pos + length > len(data):
            raise ValueError(f"device path node at byte {pos} has length {length} (data has {len(data) - pos} left)")
        nodes.append(DevicePathNode(type_, subtype, data[pos + 4 : pos + length]))
        pos += length
        if type_ == END_TYPE:
            return tuple(nodes)
    raise ValueError("device path has no end node")


def device_path_text(nodes: tuple[DevicePathNode, ...]) -> str:
    """The UEFI text form of the nodes before the end node, e.g. PciRoot(0x0)/Pci(0x1,0x0)/HD(...)."""
    return "/".join(node.text() for node in nodes if not node.is_end)


def hard_drive(nodes: tuple[DevicePathNode, ...]) -> HardDrive | None:
    """The last hard-drive node of a device path (the partition), or None."""
    found = [n for n in nodes if n.type == MEDIA_TYPE and n.subtype == HARD_DRIVE and len(n.data) == 38]
    return HardDrive.from_node(found[-1]) if found else None


def file_path_text(nodes: tuple[DevicePathNode, ...]) -> str | None:
    """The file path nodes of a device path, concatenated (None when there are none)."""
    parts = [_ucs2(n.data) for n in nodes if n.type == MEDIA_TYPE and n.subtype == FILE_PATH]
    return "".join(parts) if parts else None
