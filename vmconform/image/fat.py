"""The FAT volume builder: lays out a FAT16 or FAT32 volume holding a set of files (an ESP) in a `SparseImage`:
the directory tree, one contiguous cluster chain per file and directory, the FATs, the boot sector and FSInfo
(Microsoft "FAT32 File System Specification", fatgen103 v1.03, 2000; as referenced by UEFI 2.11 §13.3 "File
System Format"). Its parts: geometry in `fat_geometry`, boot sector and FSInfo in `fat_boot`, directory entries
and names in `fat_entries`.

Only non-zero regions are written into the `SparseImage`: the zeroed FAT tails, free clusters and
unused directory slots stay holes.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from vmconform.image.fat_boot import Fat32BootSector, FsInfo, bios_parameter_block
from vmconform.image.fat_entries import (
    ATTR_ARCHIVE,
    ATTR_DIRECTORY,
    ATTR_VOLUME_ID,
    DIR_ENTRY_SIZE,
    DirectoryEntry,
    FatTimestamp,
    LowerCaseStyle,
    NameRecords,
    is_short_name,
    long_name_entries,
    name_records,
    validate_long_name,
    volume_label_bytes,
)
from vmconform.image.fat_geometry import FAT16_EOC, FAT32_EOC, FatGeometry, FatType, ceil_div
from vmconform.image.sparse import SparseImage

MAX_FILE_SIZE = 0xFFFFFFFF
_U32 = "I" if array("I").itemsize == 4 else "L"


@dataclass(frozen=True)
class EspFile:
    """A file to place on the ESP (or any FAT volume): a path such as "EFI/BOOT/BOOTAA64.EFI" and its bytes.

    '/' and '\\' both separate components; a leading separator is ignored. Parent directories are
    created as needed. Components that are not upper-case 8.3 names get long-file-name entries.
    """

    path: str
    data: bytes

    @property
    def components(self) -> tuple[str, ...]:
        parts = self.path.replace("\\", "/").lstrip("/").split("/")
        if parts == [""]:
            raise ValueError(f"file path {self.path!r} is empty; give a path such as 'EFI/BOOT/BOOTAA64.EFI'")
        for part in parts:
            if part in ("", ".", ".."):
                raise ValueError(
                    f"file path {self.path!r} has an empty, '.' or '..' component; give a plain path "
                    "such as 'EFI/BOOT/BOOTAA64.EFI'"
                )
        return tuple(parts)


@dataclass(frozen=True)
class FatVolumeSpec:
    """How to format a FAT volume; the defaults give the reference ESP (FAT32)."""

    sectors_per_cluster: int | None = None
    """None: fatgen103's cluster size for the volume size (FAT32: 512 bytes up to 260 MiB)."""
    reserved_sectors: int | None = None
    """None: 32 for FAT32, 1 for FAT16."""
    num_fats: int = 2
    volume_label: str = "VMCONFORM"
    oem_name: str = "MSWIN4.1"
    media: int = 0xF8
    fat_type: FatType = 32
    root_entry_count: int = 512
    """FAT16 only: entries in the fixed root directory."""
    min_clusters: int | None = None
    """None: the FAT type's rule (FAT32 >= 65525). 0 builds an undersized FAT32 volume on purpose."""
    lower_case_names: LowerCaseStyle = "lfn"
    """How names that are not upper-case 8.3 are stored: long-name entries (what Linux writes) or, for
    all-lower-case 8.3 names, the Windows NT case bits of the short entry."""
    hidden_sectors: int | None = None
    """BPB_HiddSec; None: the partition's starting LBA (which must then fit in 32 bits)."""


@dataclass(frozen=True)
class AllocatedFile:
    """Where a file or directory landed: its cluster chain is first_cluster .. first_cluster+clusters-1.

    The FAT16 root directory lives in the fixed root region: first_cluster 0, clusters 0.
    """

    path: tuple[str, ...]
    is_directory: bool
    first_cluster: int
    clusters: int
    size: int
    short_name: bytes = b""
    """The 11-byte DIR_Name the entry was given (empty for the root)."""


@dataclass(frozen=True)
class FatVolume:
    """A FAT volume as written: its geometry and where every directory and file went."""

    geometry: FatGeometry
    boot_sector: Fat32BootSector
    fs_info: FsInfo | None
    allocations: tuple[AllocatedFile, ...]
    next_free_cluster: int

    def allocation(self, *path: str) -> AllocatedFile:
        """The file or directory at `path` (components compared case-insensitively); () is the root."""
        want = tuple(p.upper() for p in path)
        for alloc in self.allocations:
            if tuple(p.upper() for p in alloc.path) == want:
                return alloc
        raise LookupError(f"no file or directory {'/'.join(path)!r} on this volume")


Fat32Volume = FatVolume


class _Node:
    """A directory or file being laid out (internal, mutable while planning)."""

    def __init__(self, path: tuple[str, ...], data: bytes | None) -> None:
        self.path = path
        self.data = data  # None for a directory
        self.children: dict[str, _Node] = {}
        self.first_cluster = 0
        self.clusters = 0
        self.names = NameRecords(b"")

    @property
    def is_directory(self) -> bool:
        return self.data is None


def _build_tree(files: Sequence[EspFile], style: LowerCaseStyle) -> _Node:
    root = _Node((), None)
    for file in files:
        parts = file.components
        for part in parts:
            if not is_short_name(part):
                validate_long_name(part)  # validate early, with the component in the message
        if len(file.data) > MAX_FILE_SIZE:
            raise ValueError(f"{file.path!r} is {len(file.data)} bytes; FAT files are at most 4 GiB - 1")
        node = root
        for depth, part in enumerate(parts):
            key = part.upper()
            last = depth == len(parts) - 1
            child = node.children.get(key)
            if child is None:
                child = _Node(parts[: depth + 1], file.data if last else None)
                node.children[key] = child
            elif last or not child.is_directory:
                raise ValueError(
                    f"{file.path!r} collides with another file or directory at "
                    f"{'/'.join(parts[: depth + 1])!r} "
                    "(names compare case-insensitively); give each file a distinct path"
                )
            node = child
    _assign_names(root, style)
    return root


def _assign_names(directory: _Node, style: LowerCaseStyle) -> None:
    """Give every child its short (and long) names: exact 8.3 names first, so generated ones avoid them."""
    taken: set[bytes] = set()
    children = list(directory.children.values())
    for child in children:
        if is_short_name(child.path[-1]):
            child.names = name_records(child.path[-1], taken, style)
    for child in children:
        if not is_short_name(child.path[-1]):
            child.names = name_records(child.path[-1], taken, style)
        if child.is_directory:
            _assign_names(child, style)


def _name_records(node: _Node, timestamp: FatTimestamp) -> list[bytes]:
    """The directory records naming `node` in its parent: long-name entries (if any), then the short entry."""
    names = node.names
    entry = DirectoryEntry(
        name=names.short,
        attr=ATTR_DIRECTORY if node.is_directory else ATTR_ARCHIVE,
        first_cluster=node.first_cluster,
        file_size=0 if node.data is None else len(node.data),
        created=timestamp,
        nt_res=names.nt_res,
    )
    records = [] if names.long_name is None else long_name_entries(names.long_name, names.short)
    return records + [entry.to_bytes()]


def _directory_records(node: _Node, parent: _Node | None, timestamp: FatTimestamp, label: bytes | None) -> list[bytes]:
    records: list[bytes] = []
    if parent is None:
        if label is not None:
            records.append(DirectoryEntry(label, ATTR_VOLUME_ID, created=timestamp).to_bytes())
    else:
        dot_dot_cluster = 0 if parent.path == () else parent.first_cluster  # fatgen103 §6.7: root is 0
        records.append(DirectoryEntry(b".          ", ATTR_DIRECTORY, node.first_cluster, created=timestamp).to_bytes())
        records.append(DirectoryEntry(b"..         ", ATTR_DIRECTORY, dot_dot_cluster, created=timestamp).to_bytes())
    for child in node.children.values():
        records.extend(_name_records(child, timestamp))
    return records


def write_fat(
    image: SparseImage,
    volume_offset: int,
    geometry: FatGeometry,
    files: Sequence[EspFile],
    *,
    spec: FatVolumeSpec,
    hidden_sectors: int,
    volume_id: int,
    timestamp: FatTimestamp,
) -> FatVolume:
    """Format a FAT16/FAT32 volume at byte `volume_offset` of `image` and store `files` in it.

    Clusters are allocated contiguously from cluster 2, depth first in the order the files are given
    (on FAT32 the root directory comes first, at cluster 2), so the layout is a pure function of the
    arguments.
    """
    if not 0 <= hidden_sectors <= 0xFFFFFFFF:
        raise ValueError(
            f"BPB_HiddSec is 32-bit; a volume starting at sector {hidden_sectors} cannot record it "
            "(give FatVolumeSpec.hidden_sectors, e.g. 0)"
        )
    fat32 = geometry.fat_type == 32
    label = volume_label_bytes(spec.volume_label)
    root = _build_tree(files, spec.lower_case_names)
    cluster_bytes = geometry.cluster_bytes

    # Pass 1: allocate clusters. A directory's size depends only on how many records it holds.
    next_cluster = 2
    order: list[tuple[_Node, _Node | None]] = []

    def allocate(node: _Node, parent: _Node | None) -> None:
        nonlocal next_cluster
        if node.is_directory:
            n_records = len(_directory_records(node, parent, timestamp, label))
            if parent is None and not fat32:
                if n_records > geometry.root_entry_count:
                    raise ValueError(
                        f"the FAT16 root directory holds {geometry.root_entry_count} entries but needs "
                        f"{n_records}; raise root_entry_count or move files into a subdirectory"
                    )
                node.clusters = 0
            else:
                node.clusters = max(1, ceil_div(n_records * DIR_ENTRY_SIZE, cluster_bytes))
        else:
            assert node.data is not None
            node.clusters = ceil_div(len(node.data), cluster_bytes)
        if node.clusters:
            node.first_cluster = next_cluster
            next_cluster += node.clusters
        order.append((node, parent))
        if node.is_directory:
            for child in node.children.values():
                allocate(child, node)

    allocate(root, None)
    used = next_cluster - 2
    if used > geometry.cluster_count:
        raise ValueError(
            f"the files need {used} clusters of {cluster_bytes} bytes but the FAT{geometry.fat_type} volume has "
            f"only {geometry.cluster_count}; make the ESP (disk) larger or the files smaller"
        )

    # Pass 2: write directories and file data.
    for node, parent in order:
        if node.is_directory and parent is None and not fat32:
            image.write(
                volume_offset + geometry.root_dir_offset,
                b"".join(_directory_records(node, parent, timestamp, label)),
            )
            continue
        if node.clusters == 0:
            continue
        offset = volume_offset + geometry.cluster_offset(node.first_cluster)
        if node.is_directory:
            image.write(offset, b"".join(_directory_records(node, parent, timestamp, label)))
        else:
            assert node.data is not None
            image.write(offset, node.data)

    # The FATs: entries 0 and 1, then one contiguous chain per allocation; the rest stay zero (free).
    if fat32:
        eoc = FAT32_EOC
        fat = array(_U32, [0x0FFFFF00 | spec.media, FAT32_EOC])  # entry 1: EOC with clean-shutdown bits set
    else:
        eoc = FAT16_EOC
        fat = array("H", [0xFF00 | spec.media, FAT16_EOC])
    fat.extend(range(3, next_cluster + 1))
    for node, _parent in order:
        if node.clusters:
            fat[node.first_cluster + node.clusters - 1] = eoc
    if sys.byteorder != "little":
        fat.byteswap()
    fat_bytes = fat.tobytes()
    for index in range(geometry.num_fats):
        image.write(volume_offset + geometry.fat_offset(index), fat_bytes)

    oem = spec.oem_name.encode("ascii").ljust(8)[:8]
    bpb = bios_parameter_block(
        geometry, hidden_sectors=hidden_sectors, volume_id=volume_id, volume_label=label, oem_name=oem, media=spec.media
    )
    boot = Fat32BootSector(bpb)
    free = geometry.cluster_count - used
    sector = geometry.bytes_per_sector
    boot_bytes = boot.to_bytes()
    fs_info: FsInfo | None = None
    if fat32:
        fs_info = FsInfo(free_count=free, next_free=next_cluster if free else 0xFFFFFFFF)
        fs_info_bytes = fs_info.to_bytes(sector)
        for base in (0, bpb.backup_boot_sector):
            image.write(volume_offset + base * sector, boot_bytes)
            image.write(volume_offset + (base + bpb.fs_info_sector) * sector, fs_info_bytes)
    else:
        image.write(volume_offset, boot_bytes)

    allocations = tuple(
        AllocatedFile(
            node.path,
            node.is_directory,
            node.first_cluster,
            node.clusters,
            0 if node.data is None else len(node.data),
            node.names.short,
        )
        for node, _parent in order
    )
    return FatVolume(geometry, boot, fs_info, allocations, next_cluster)
