"""The reserved region of a FAT volume: the boot sector with its BPB and extended boot record (fatgen103 v1.03
§3.1-§3.3, bytes 0..89 for FAT32 and 0..61 for FAT16, and the 0x55 0xAA signature) and the FAT32 FSInfo sector
(§5).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from vmconform.image.fat_geometry import FatGeometry, FatType

_BPB_COMMON = struct.Struct("<3s8sHBHBHHBHHHII")  # bytes 0..35, shared by FAT12/16 and FAT32
_BPB32_TAIL = struct.Struct("<IHHIHH12sBBBI11s8s")  # bytes 36..89
_BPB16_TAIL = struct.Struct("<BBBI11s8s")  # bytes 36..61
_FSINFO_LEAD_SIG = 0x41615252
_FSINFO_STRUC_SIG = 0x61417272
_FSINFO_TRAIL_SIG = 0xAA550000
# A tiny x86 stub after the BPB so a legacy BIOS that jumps here halts instead of running zeros.
_BOOT_STUB = b"\xfa\xf4\xeb\xfd"  # cli; hlt; jmp $-1
_JMP_BOOT = b"\xeb\x58\x90"  # jmp short 0x5A; nop
_JMP_BOOT_16 = b"\xeb\x3c\x90"  # jmp short 0x3E; nop (after the shorter FAT12/16 BPB)


@dataclass(frozen=True)
class BiosParameterBlock:
    """The BPB and extended boot record (fatgen103 §3.1-§3.3): bytes 0..89 for FAT32, 0..61 for FAT16."""

    bytes_per_sector: int
    sectors_per_cluster: int
    reserved_sector_count: int
    num_fats: int
    total_sectors_32: int
    fat_size_32: int
    hidden_sectors: int
    volume_id: int
    volume_label: bytes = b"NO NAME    "
    oem_name: bytes = b"MSWIN4.1"
    media: int = 0xF8
    root_cluster: int = 2
    fs_info_sector: int = 1
    backup_boot_sector: int = 6
    ext_flags: int = 0
    fs_version: int = 0
    sectors_per_track: int = 63
    num_heads: int = 255
    drive_number: int = 0x80
    boot_signature: int = 0x29
    fs_type: bytes = b"FAT32   "
    root_entry_count: int = 0
    total_sectors_16: int = 0
    fat_size_16: int = 0
    jmp_boot: bytes = _JMP_BOOT
    fat_type: FatType = 32

    def to_bytes(self) -> bytes:
        common = _BPB_COMMON.pack(
            self.jmp_boot,
            self.oem_name,
            self.bytes_per_sector,
            self.sectors_per_cluster,
            self.reserved_sector_count,
            self.num_fats,
            self.root_entry_count,
            self.total_sectors_16,
            self.media,
            self.fat_size_16,
            self.sectors_per_track,
            self.num_heads,
            self.hidden_sectors,
            self.total_sectors_32,
        )
        if self.fat_type == 16:
            return common + _BPB16_TAIL.pack(
                self.drive_number, 0, self.boot_signature, self.volume_id, self.volume_label, self.fs_type
            )
        return common + _BPB32_TAIL.pack(
            self.fat_size_32,
            self.ext_flags,
            self.fs_version,
            self.root_cluster,
            self.fs_info_sector,
            self.backup_boot_sector,
            bytes(12),
            self.drive_number,
            0,
            self.boot_signature,
            self.volume_id,
            self.volume_label,
            self.fs_type,
        )


@dataclass(frozen=True)
class Fat32BootSector:
    """Sector 0 of the volume: BPB, boot code and the 0x55 0xAA signature at bytes 510-511."""

    bpb: BiosParameterBlock
    boot_code: bytes = _BOOT_STUB
    signature: int = 0xAA55

    def to_bytes(self) -> bytes:
        out = bytearray(self.bpb.bytes_per_sector)
        bpb = self.bpb.to_bytes()
        out[: len(bpb)] = bpb
        if len(bpb) + len(self.boot_code) > 510:
            raise ValueError("boot code overlaps the boot sector signature")
        out[len(bpb) : len(bpb) + len(self.boot_code)] = self.boot_code
        struct.pack_into("<H", out, 510, self.signature)
        return bytes(out)


@dataclass(frozen=True)
class FsInfo:
    """The FAT32 FSInfo sector (fatgen103 §5). 0xFFFFFFFF means "unknown" for both hints."""

    free_count: int
    next_free: int
    lead_sig: int = _FSINFO_LEAD_SIG
    struc_sig: int = _FSINFO_STRUC_SIG
    trail_sig: int = _FSINFO_TRAIL_SIG

    def to_bytes(self, bytes_per_sector: int) -> bytes:
        out = bytearray(bytes_per_sector)
        struct.pack_into("<I", out, 0, self.lead_sig)
        struct.pack_into("<IIII", out, 484, self.struc_sig, self.free_count, self.next_free, 0)
        struct.pack_into("<I", out, 508, self.trail_sig)
        return bytes(out)


def bios_parameter_block(
    geometry: FatGeometry, *, hidden_sectors: int, volume_id: int, volume_label: bytes, oem_name: bytes, media: int
) -> BiosParameterBlock:
    """The BPB describing a volume of `geometry`: FAT32's, or FAT16's (16-bit total when it fits, fixed root)."""
    fat32 = BiosParameterBlock(
        bytes_per_sector=geometry.bytes_per_sector,
        sectors_per_cluster=geometry.sectors_per_cluster,
        reserved_sector_count=geometry.reserved_sectors,
        num_fats=geometry.num_fats,
        total_sectors_32=geometry.total_sectors,
        fat_size_32=geometry.fat_size,
        hidden_sectors=hidden_sectors,
        volume_id=volume_id,
        volume_label=volume_label,
        oem_name=oem_name,
        media=media,
    )
    if geometry.fat_type == 32:
        return fat32
    small = geometry.total_sectors < 0x10000
    return replace(
        fat32,
        total_sectors_32=0 if small else geometry.total_sectors,
        total_sectors_16=geometry.total_sectors if small else 0,
        fat_size_32=0,
        fat_size_16=geometry.fat_size,
        root_entry_count=geometry.root_entry_count,
        fs_type=b"FAT16   ",
        jmp_boot=_JMP_BOOT_16,
        fat_type=16,
    )
