"""FAT volume geometry: where the reserved region, the FATs, the FAT16 root directory and the data clusters of a
FAT16/FAT32 volume lie, the cluster size fatgen103 picks for a volume, and the cluster counts that decide the FAT
type; with the values the FAT's entries hold (Microsoft "FAT32 File System Specification", fatgen103 v1.03, 2000:
§3.5 cluster count and FAT type, §4 the FAT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vmconform.image.fat_entries import DIR_ENTRY_SIZE

FAT32_MIN_CLUSTERS = 65525
"""fatgen103 §3.5: a volume with fewer clusters is FAT12/16 whatever its BPB says (EDK2 rejects it)."""
FAT16_MIN_CLUSTERS = 4085
"""fatgen103 §3.5: fewer clusters than this make a FAT12 volume."""
FAT32_MAX_CLUSTERS = 0x0FFFFFF5 - 2
FAT32_EOC = 0x0FFFFFFF
FAT16_EOC = 0xFFFF
FAT32_ENTRY_MASK = 0x0FFFFFFF
FAT32_CLN_SHUT_BIT = 0x08000000
FAT32_HRD_ERR_BIT = 0x04000000

FatType = Literal[16, 32]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class FatGeometry:
    """Sizes of the regions of a FAT volume of `total_sectors` sectors (fatgen103 §3.5)."""

    bytes_per_sector: int
    sectors_per_cluster: int
    reserved_sectors: int
    num_fats: int
    total_sectors: int
    fat_size: int
    """Sectors per FAT (BPB_FATSz32, or BPB_FATSz16 for FAT16)."""
    fat_type: FatType = 32
    root_entry_count: int = 0
    """FAT16: entries in the fixed root directory region (BPB_RootEntCnt); 0 for FAT32."""

    @property
    def cluster_bytes(self) -> int:
        return self.bytes_per_sector * self.sectors_per_cluster

    @property
    def root_dir_sectors(self) -> int:
        return ceil_div(self.root_entry_count * DIR_ENTRY_SIZE, self.bytes_per_sector)

    @property
    def root_dir_offset(self) -> int:
        """FAT16: byte offset of the fixed root directory region from the start of the volume."""
        return (self.reserved_sectors + self.num_fats * self.fat_size) * self.bytes_per_sector

    @property
    def first_data_sector(self) -> int:
        return self.reserved_sectors + self.num_fats * self.fat_size + self.root_dir_sectors

    @property
    def cluster_count(self) -> int:
        """CountofClusters: data clusters, numbered 2 .. cluster_count + 1."""
        return (self.total_sectors - self.first_data_sector) // self.sectors_per_cluster

    @property
    def fat_entry_bytes(self) -> int:
        return 4 if self.fat_type == 32 else 2

    def fat_offset(self, fat_index: int) -> int:
        """Byte offset of FAT number `fat_index` from the start of the volume."""
        return (self.reserved_sectors + fat_index * self.fat_size) * self.bytes_per_sector

    def fat_entry_offset(self, fat_index: int, cluster: int) -> int:
        """Byte offset of `cluster`'s entry in FAT number `fat_index`, from the start of the volume."""
        return self.fat_offset(fat_index) + cluster * self.fat_entry_bytes

    def cluster_offset(self, cluster: int) -> int:
        """Byte offset of data cluster `cluster` (>= 2) from the start of the volume."""
        return (self.first_data_sector + (cluster - 2) * self.sectors_per_cluster) * self.bytes_per_sector


def _fatgen103_cluster_bytes(volume_bytes: int, fat_type: FatType) -> int:
    """Cluster size from fatgen103's tables (DskTableFAT32 / DskTableFAT16), expressed in bytes."""
    sectors_512 = volume_bytes // 512
    if fat_type == 16:
        for limit, size in ((32680, 1024), (262144, 2048), (524288, 4096), (1048576, 8192), (2097152, 16384)):
            if sectors_512 <= limit:
                return size
        return 32768
    if sectors_512 <= 532480:  # up to 260 MiB
        return 512
    if sectors_512 <= 16777216:  # up to 8 GiB
        return 4096
    if sectors_512 <= 33554432:  # up to 16 GiB
        return 8192
    if sectors_512 <= 67108864:  # up to 32 GiB
        return 16384
    return 32768


def _fat_size_for(
    total: int, reserved: int, num_fats: int, spc: int, bytes_per_sector: int, entry_bytes: int, root_sectors: int
) -> int:
    """The smallest FAT (in sectors) that maps every cluster of the volume (entries 0 and 1 included)."""
    entries_per_sector = bytes_per_sector // entry_bytes
    # Need fat_size * eps >= clusters + 2 with clusters <= (total - fixed - num_fats * fat_size) / spc.
    return max(1, ceil_div(total - reserved - root_sectors + 2 * spc, entries_per_sector * spc + num_fats))


def min_fat32_volume_sectors(
    bytes_per_sector: int, sectors_per_cluster: int, reserved_sectors: int = 32, num_fats: int = 2
) -> int:
    """The fewest sectors a FAT32 volume with this layout needs to reach 65525 clusters."""
    fat_size = ceil_div((FAT32_MIN_CLUSTERS + 2) * 4, bytes_per_sector)
    return reserved_sectors + num_fats * fat_size + FAT32_MIN_CLUSTERS * sectors_per_cluster


def plan_fat(
    total_sectors: int,
    bytes_per_sector: int = 512,
    sectors_per_cluster: int | None = None,
    reserved_sectors: int | None = None,
    num_fats: int = 2,
    *,
    fat_type: FatType = 32,
    root_entry_count: int = 512,
    min_clusters: int | None = None,
) -> FatGeometry:
    """Lay out a FAT16 or FAT32 volume; `sectors_per_cluster=None` picks fatgen103's size for the volume.

    The automatic choice halves the cluster while the count stays under the type's minimum. Raises
    ValueError when the cluster count does not fit the type: FAT32 needs >= 65525 clusters and FAT16
    4085..65524 (pass `min_clusters=0` to build a deliberately undersized FAT32 volume).
    `reserved_sectors=None`: 32 for FAT32, 1 for FAT16. `root_entry_count` applies to FAT16 only.
    """
    if fat_type not in (16, 32):
        raise ValueError(f"fat_type must be 16 or 32, got {fat_type!r}")
    if bytes_per_sector not in (512, 1024, 2048, 4096):
        raise ValueError(f"bytes per sector must be 512, 1024, 2048 or 4096, got {bytes_per_sector}")
    if reserved_sectors is None:
        reserved_sectors = 32 if fat_type == 32 else 1
    if fat_type == 32 and reserved_sectors < 8:
        raise ValueError(f"FAT32 needs at least 8 reserved sectors (boot, FSInfo, backups), got {reserved_sectors}")
    if reserved_sectors < 1:
        raise ValueError(f"a FAT volume needs at least 1 reserved sector, got {reserved_sectors}")
    if num_fats < 1:
        raise ValueError(f"a FAT volume needs at least one FAT, got {num_fats}")
    root_entries = 0
    if fat_type == 16:
        per_sector = bytes_per_sector // DIR_ENTRY_SIZE
        if not 1 <= root_entry_count <= 0xFFFF or root_entry_count % per_sector:
            raise ValueError(
                f"root_entry_count must fill whole sectors ({per_sector} entries each) and be at most 65535; "
                f"got {root_entry_count}"
            )
        root_entries = root_entry_count
    low = FAT32_MIN_CLUSTERS if min_clusters is None and fat_type == 32 else min_clusters
    if low is None:
        low = FAT16_MIN_CLUSTERS
    high = FAT32_MAX_CLUSTERS if fat_type == 32 else FAT32_MIN_CLUSTERS - 1

    def geometry_for(spc: int) -> FatGeometry:
        root_sectors = ceil_div(root_entries * DIR_ENTRY_SIZE, bytes_per_sector)
        fat_size = _fat_size_for(
            total_sectors, reserved_sectors, num_fats, spc, bytes_per_sector, 4 if fat_type == 32 else 2, root_sectors
        )
        return FatGeometry(
            bytes_per_sector, spc, reserved_sectors, num_fats, total_sectors, fat_size, fat_type, root_entries
        )

    if sectors_per_cluster is None:
        spc = max(1, _fatgen103_cluster_bytes(total_sectors * bytes_per_sector, fat_type) // bytes_per_sector)
        while spc > 1 and geometry_for(spc).cluster_count < low:
            spc //= 2
        while (
            fat_type == 16 and spc < 128 and spc * bytes_per_sector < 32768 and geometry_for(spc).cluster_count > high
        ):
            spc *= 2
    else:
        spc = sectors_per_cluster
    if spc < 1 or spc > 128 or spc & (spc - 1) or spc * bytes_per_sector > 32768:
        rule = "a power of two from 1 to 128, with clusters of at most 32 KiB"
        raise ValueError(f"sectors per cluster must be {rule}; got {spc}")
    geometry = geometry_for(spc)
    clusters = geometry.cluster_count
    if clusters < low:
        mib = total_sectors * bytes_per_sector / 2**20
        if fat_type == 32:
            need = min_fat32_volume_sectors(bytes_per_sector, spc, reserved_sectors, num_fats)
            raise ValueError(
                f"a FAT32 volume of {total_sectors} sectors ({mib:.1f} MiB) with {spc * bytes_per_sector}-byte "
                f"clusters has {max(clusters, 0)} clusters, fewer than the {low} FAT32 requires (EDK2 rejects "
                f"such a volume); make the volume at least {ceil_div(need * bytes_per_sector, 2**20)} MiB "
                "(enlarge the disk or the partition's size)" + (" or use smaller clusters" if spc > 1 else "")
            )
        raise ValueError(
            f"a FAT16 volume of {mib:.1f} MiB with {spc * bytes_per_sector}-byte clusters has {max(clusters, 0)} "
            f"clusters, fewer than the {low} FAT16 needs; enlarge the partition or use smaller clusters"
        )
    if clusters > high:
        raise ValueError(
            f"{clusters} clusters exceed the FAT{fat_type} maximum of {high}; use larger clusters"
            + (" or FAT32" if fat_type == 16 else "")
        )
    return geometry
