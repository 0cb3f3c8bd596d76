"""The FAT boot sector's BIOS Parameter Block for `vmconform check` (fatgen103 v1.03 §3: the BPB, §3.5: the
FAT type by cluster count), parsed from any 512 bytes and judged for consistency before anything uses it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Bpb:
    bytes_per_sector: int
    sectors_per_cluster: int
    reserved_sectors: int
    num_fats: int
    root_entry_count: int
    total_sectors: int
    fat_size: int
    fat_size_16: int
    fat_size_32: int
    root_cluster: int
    fs_info_sector: int
    signature_ok: bool

    @classmethod
    def parse(cls, sector: bytes) -> Bpb | None:
        if len(sector) < 512:
            return None
        bps, spc, rsvd, nfats, root_ent, tot16, _media, fatsz16 = struct.unpack_from("<HBHBHHBH", sector, 11)
        (tot32,) = struct.unpack_from("<I", sector, 32)
        fatsz32, _flags, _ver, root_clus, fsinfo = struct.unpack_from("<IHHIH", sector, 36)
        fat_size = fatsz16 or fatsz32
        return cls(
            bps, spc, rsvd, nfats, root_ent, tot16 or tot32, fat_size, fatsz16, fatsz32, root_clus, fsinfo,
            sector[510:512] == b"\x55\xaa",
        )  # fmt: skip

    def problems(self) -> list[str]:
        """What makes this BPB unusable (empty: consistent)."""
        out = []
        if not self.signature_ok:
            out.append("no 55 AA signature at bytes 510-511")
        if self.bytes_per_sector not in (512, 1024, 2048, 4096):
            out.append(f"BytsPerSec {self.bytes_per_sector} not 512/1024/2048/4096")
        if self.sectors_per_cluster not in (1, 2, 4, 8, 16, 32, 64, 128):
            out.append(f"SecPerClus {self.sectors_per_cluster} not a power of two up to 128")
        if self.reserved_sectors == 0:
            out.append("RsvdSecCnt is 0")
        if self.num_fats == 0:
            out.append("NumFATs is 0")
        if self.total_sectors == 0:
            out.append("TotSec16 and TotSec32 are both 0")
        if self.fat_size == 0:
            out.append("FATSz16 and FATSz32 are both 0")
        if out:
            return out
        if self.first_data_sector >= self.total_sectors:
            out.append(f"no data region: the first data sector {self.first_data_sector} >= TotSec {self.total_sectors}")
            return out
        entries = self.fat_size * self.bytes_per_sector * 8 // self.entry_bits
        if entries < self.cluster_count + 2:
            out.append(f"the FAT maps {entries} entries but the volume has {self.cluster_count} clusters")
        if self.structure == 32:
            if not 2 <= self.root_cluster <= self.cluster_count + 1:
                out.append(f"RootClus {self.root_cluster} outside 2..{self.cluster_count + 1}")
            if self.root_entry_count:
                out.append(f"RootEntCnt {self.root_entry_count} on FAT32 (must be 0)")
        elif self.root_entry_count == 0:
            out.append("RootEntCnt is 0 on FAT12/16")
        return out

    @property
    def structure(self) -> int:
        """The on-disk structure the BPB describes: 32 when FATSz16 is 0, else 12/16 by cluster count."""
        if self.fat_size_16 == 0:
            return 32
        return 12 if self.cluster_count < 4085 else 16

    @property
    def fat_type(self) -> int:
        """The type fatgen103 §3.5 assigns: by cluster count alone."""
        count = self.cluster_count
        return 12 if count < 4085 else 16 if count < 65525 else 32

    @property
    def entry_bits(self) -> int:
        return {12: 12, 16: 16, 32: 32}[self.structure]

    @property
    def root_dir_sectors(self) -> int:
        bps = self.bytes_per_sector or 512
        return (self.root_entry_count * 32 + bps - 1) // bps

    @property
    def first_data_sector(self) -> int:
        return self.reserved_sectors + self.num_fats * self.fat_size + self.root_dir_sectors

    @property
    def cluster_count(self) -> int:
        if not self.sectors_per_cluster:
            return 0
        return max(0, (self.total_sectors - self.first_data_sector) // self.sectors_per_cluster)

    @property
    def cluster_bytes(self) -> int:
        return self.bytes_per_sector * self.sectors_per_cluster
