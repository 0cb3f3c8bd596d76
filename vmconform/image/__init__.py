"""Pure-Python generator of GPT disk images with a FAT32 EFI System Partition (and the variations and
defects of the case matrix: FAT16, long names, legacy MBR, unpartitioned disks, 4Kn, > 2 TiB).

spec = DiskSpec(files=(EspFile("EFI/BOOT/BOOTAA64.EFI", pe_bytes),), seed="case-id")
img = build_disk(spec)
img.save(path)  # sparse file

Named layouts: `vmconform.image.layouts.LAYOUTS`; named defects: `vmconform.image.defects.DEFECTS`.
"""

from vmconform.image.disk import (
    BuiltDisk,
    DataPartition,
    DiskLayout,
    DiskSpec,
    EspPartition,
    Partition,
    PlacedPartition,
    build_disk,
    plan_disk,
    render_disk,
)
from vmconform.image.fat import EspFile, Fat32Volume, FatVolume, FatVolumeSpec
from vmconform.image.fat_geometry import FatGeometry
from vmconform.image.guid import ESP_TYPE_GUID, Guid
from vmconform.image.sparse import SparseImage

__all__ = [
    "BuiltDisk",
    "DataPartition",
    "DiskLayout",
    "DiskSpec",
    "ESP_TYPE_GUID",
    "EspFile",
    "EspPartition",
    "Fat32Volume",
    "FatGeometry",
    "FatVolume",
    "FatVolumeSpec",
    "Guid",
    "Partition",
    "PlacedPartition",
    "SparseImage",
    "build_disk",
    "plan_disk",
    "render_disk",
]
