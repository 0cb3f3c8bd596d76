"""FAT32 volumes: boot sector and BPB, FSInfo, the FATs and short-name directories (Microsoft "FAT32 File
System Specification", fatgen103 v1.03, 2000: §3 boot sector and BPB, §3.5 cluster count and FAT type,
§4 FAT, §5 FSInfo, §6 directory entries; as referenced by UEFI 2.11 §13.3 "File System Format").

Only non-zero regions are written into the `SparseImage`: the zeroed FAT tails, free clusters and
unused directory slots stay holes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from vmconform.image.sparse import SparseImage

FAT32_MIN_CLUSTERS = 65525
"""fatgen103 §3.5: a volume with fewer clusters is FAT12/16 whatever its BPB says (EDK2 rejects it)."""
FAT32_MAX_CLUSTERS = 0x0FFFFFF5 - 2
DIR_ENTRY_SIZE = 32
FAT32_EOC = 0x0FFFFFFF
FAT32_ENTRY_MASK = 0x0FFFFFFF
FAT32_CLN_SHUT_BIT = 0x08000000
FAT32_HRD_ERR_BIT = 0x04000000
MAX_FILE_SIZE = 0xFFFFFFFF

ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LONG_NAME = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID

_BPB = struct.Struct("<3s8sHBHBHHBHHHIIIHHIHH12sBBBI11s8s")
_FSINFO_LEAD_SIG = 0x41615252
_FSINFO_STRUC_SIG = 0x61417272
_FSINFO_TRAIL_SIG = 0xAA550000
_DIR_ENTRY = struct.Struct("<11sBBBHHHHHHHI")
_U32 = "I" if array("I").itemsize == 4 else "L"

# Characters allowed in a short name besides A-Z and 0-9 (fatgen103 §6.1).
_SHORT_NAME_SPECIALS = frozenset("$%'-_@~`!(){}^#&")
# A tiny x86 stub after the BPB so a legacy BIOS that jumps here halts instead of running zeros.
_BOOT_STUB = b"\xfa\xf4\xeb\xfd"  # cli; hlt; jmp $-1
_JMP_BOOT = b"\xeb\x58\x90"  # jmp short 0x5A; nop


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class Fat32Geometry:
    """Sizes of the regions of a FAT32 volume of `total_sectors` sectors (fatgen103 §3.5)."""

    bytes_per_sector: int
    sectors_per_cluster: int
    reserved_sectors: int
    num_fats: int
    total_sectors: int
    fat_size: int
    """Sectors per FAT (BPB_FATSz32)."""

    @property
    def cluster_bytes(self) -> int:
        return self.bytes_per_sector * self.sectors_per_cluster

    @property
    def first_data_sector(self) -> int:
        return self.reserved_sectors + self.num_fats * self.fat_size

    @property
    def cluster_count(self) -> int:
        """CountofClusters: data clusters, numbered 2 .. cluster_count + 1."""
        return (self.total_sectors - self.first_data_sector) // self.sectors_per_cluster

    def fat_offset(self, fat_index: int) -> int:
        """Byte offset of FAT number `fat_index` from the start of the volume."""
        return (self.reserved_sectors + fat_index * self.fat_size) * self.bytes_per_sector

    def cluster_offset(self, cluster: int) -> int:
        """Byte offset of data cluster `cluster` (>= 2) from the start of the volume."""
        return (self.first_data_sector + (cluster - 2) * self.sectors_per_cluster) * self.bytes_per_sector


def _fatgen103_cluster_bytes(volume_bytes: int) -> int:
    """Cluster size from fatgen103's FAT32 table (DskTableFAT32), expressed in bytes."""
    sectors_512 = volume_bytes // 512
    if sectors_512 <= 532480:  # up to 260 MiB
        return 512
    if sectors_512 <= 16777216:  # up to 8 GiB
        return 4096
    if sectors_512 <= 33554432:  # up to 16 GiB
        return 8192
    if sectors_512 <= 67108864:  # up to 32 GiB
        return 16384
    return 32768


def _fat_size_for(total: int, reserved: int, num_fats: int, spc: int, bytes_per_sector: int) -> int:
    """The smallest FAT (in sectors) that maps every cluster of the volume (entries 0 and 1 included)."""
    entries_per_sector = bytes_per_sector // 4
    # Need fat_size * eps >= clusters + 2 with clusters <= (total - reserved - num_fats * fat_size) / spc.
    return max(1, _ceil_div(total - reserved + 2 * spc, entries_per_sector * spc + num_fats))


def min_fat32_volume_sectors(
    bytes_per_sector: int, sectors_per_cluster: int, reserved_sectors: int = 32, num_fats: int = 2
) -> int:
    """The fewest sectors a FAT32 volume with this layout needs to reach 65525 clusters."""
    fat_size = _ceil_div((FAT32_MIN_CLUSTERS + 2) * 4, bytes_per_sector)
    return reserved_sectors + num_fats * fat_size + FAT32_MIN_CLUSTERS * sectors_per_cluster


def plan_fat32(
    total_sectors: int,
    bytes_per_sector: int = 512,
    sectors_per_cluster: int | None = None,
    reserved_sectors: int = 32,
    num_fats: int = 2,
    min_clusters: int = FAT32_MIN_CLUSTERS,
) -> Fat32Geometry:
    """Lay out a FAT32 volume; `sectors_per_cluster=None` picks fatgen103's size for the volume.

    The automatic choice halves the cluster while the count stays under `min_clusters`. Raises
    ValueError when the volume cannot hold `min_clusters` clusters (pass `min_clusters=0` to build a
    deliberately undersized FAT32 volume).
    """
    if bytes_per_sector not in (512, 1024, 2048, 4096):
        raise ValueError(f"bytes per sector must be 512, 1024, 2048 or 4096, got {bytes_per_sector}")
    if reserved_sectors < 8:
        raise ValueError(
            f"FAT32 needs at least 8 reserved sectors (boot, FSInfo, backups), got {reserved_sectors}"
        )
    if num_fats < 1:
        raise ValueError(f"a FAT volume needs at least one FAT, got {num_fats}")
    if sectors_per_cluster is None:
        spc = max(1, _fatgen103_cluster_bytes(total_sectors * bytes_per_sector) // bytes_per_sector)
        while (
            spc > 1
            and _geometry(total_sectors, bytes_per_sector, spc, reserved_sectors, num_fats)[1] < min_clusters
        ):
            spc //= 2
    else:
        spc = sectors_per_cluster
    if spc < 1 or spc > 128 or spc & (spc - 1) or spc * bytes_per_sector > 32768:
        rule = "a power of two from 1 to 128, with clusters of at most 32 KiB"
        raise ValueError(f"sectors per cluster must be {rule}; got {spc}")
    geometry, clusters = _geometry(total_sectors, bytes_per_sector, spc, reserved_sectors, num_fats)
    if clusters < min_clusters:
        need = min_fat32_volume_sectors(bytes_per_sector, spc, reserved_sectors, num_fats)
        raise ValueError(
            f"a FAT32 volume of {total_sectors} sectors ({total_sectors * bytes_per_sector / 2**20:.1f} MiB) "
            f"with {spc * bytes_per_sector}-byte clusters has {max(clusters, 0)} clusters, fewer than the "
            f"{min_clusters} FAT32 requires (EDK2 rejects such a volume); make the volume at least "
            f"{_ceil_div(need * bytes_per_sector, 2**20)} MiB (enlarge the disk or the partition's size)"
            + (" or use smaller clusters" if spc > 1 else "")
        )
    if clusters > FAT32_MAX_CLUSTERS:
        raise ValueError(f"{clusters} clusters exceed the FAT32 maximum; use larger clusters")
    return geometry


def _geometry(
    total: int, bytes_per_sector: int, spc: int, reserved: int, num_fats: int
) -> tuple[Fat32Geometry, int]:
    fat_size = _fat_size_for(total, reserved, num_fats, spc, bytes_per_sector)
    geometry = Fat32Geometry(bytes_per_sector, spc, reserved, num_fats, total, fat_size)
    return geometry, geometry.cluster_count


# ---------------------------------------------------------------------------------------------------
# Boot sector, BPB, FSInfo


@dataclass(frozen=True)
class BiosParameterBlock:
    """The FAT32 BPB and extended boot record, bytes 0..89 of the boot sector (fatgen103 §3.1-§3.3)."""

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

    def to_bytes(self) -> bytes:
        return _BPB.pack(
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


# ---------------------------------------------------------------------------------------------------
# Directory entries and names


@dataclass(frozen=True)
class FatTimestamp:
    """A FAT date/time pair (fatgen103 §6.4): 2-second resolution, years 1980-2107."""

    date: int
    time: int
    tenths: int = 0
    """DIR_CrtTimeTenth: 0-199, in units of 10 ms past the even second in `time`."""

    @classmethod
    def from_datetime(cls, when: dt.datetime) -> FatTimestamp:
        if not 1980 <= when.year <= 2107:
            raise ValueError(f"FAT timestamps cover 1980-2107, got {when.year}")
        date = ((when.year - 1980) << 9) | (when.month << 5) | when.day
        time = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
        tenths = (when.second % 2) * 100 + when.microsecond // 10000
        return cls(date, time, tenths)

    @classmethod
    def from_seed(cls, seed: str) -> FatTimestamp:
        """A deterministic instant in 2000-2037 derived from `seed`."""
        digest = hashlib.sha256(f"{seed}\x00fat-timestamp".encode()).digest()
        start = dt.datetime(2000, 1, 1)
        span = int((dt.datetime(2038, 1, 1) - start).total_seconds())
        offset = int.from_bytes(digest[:8], "little") % span
        return cls.from_datetime(start + dt.timedelta(seconds=offset))


@dataclass(frozen=True)
class DirectoryEntry:
    """A 32-byte short directory entry (fatgen103 §6, DIR_Name .. DIR_FileSize)."""

    name: bytes
    attr: int
    first_cluster: int = 0
    file_size: int = 0
    created: FatTimestamp = field(default_factory=lambda: FatTimestamp(0x21, 0))
    written: FatTimestamp | None = None
    """None: same as `created`."""
    nt_res: int = 0

    def to_bytes(self) -> bytes:
        if len(self.name) != 11:
            raise ValueError(f"DIR_Name is 11 bytes, got {self.name!r}")
        written = self.created if self.written is None else self.written
        return _DIR_ENTRY.pack(
            self.name,
            self.attr,
            self.nt_res,
            self.created.tenths,
            self.created.time,
            self.created.date,
            written.date,  # DIR_LstAccDate
            self.first_cluster >> 16,
            written.time,
            written.date,
            self.first_cluster & 0xFFFF,
            self.file_size,
        )


def short_name(component: str) -> bytes:
    """The 11-byte DIR_Name for an upper-case 8.3 path component, e.g. "BOOTAA64.EFI" -> b"BOOTAA64EFI".

    Raises ValueError for anything that would need a long-file-name entry (lower case, long, odd chars).
    """
    base, dot, ext = component.partition(".")
    problem = None
    if component in ("", ".", ".."):
        problem = "is empty or a dot entry"
    elif not 1 <= len(base) <= 8 or len(ext) > 3 or (dot and not ext) or "." in ext:
        problem = "is not an 8.3 name (1-8 characters, optionally '.' and 1-3 characters)"
    else:
        bad = sorted(
            {c for c in base + ext if not (c.isascii() and (c.isupper() or c.isdigit()))}
            - _SHORT_NAME_SPECIALS
        )
        if bad:
            lower = any(c.islower() for c in bad)
            problem = f"has characters a short name cannot hold: {''.join(bad)!r}" + (
                " (lower case needs long-file-name entries, not supported yet; use upper case)"
                if lower
                else ""
            )
    if problem:
        raise ValueError(
            f"path component {component!r} {problem}; use upper-case 8.3 names of A-Z, 0-9 and "
            f"{''.join(sorted(_SHORT_NAME_SPECIALS))}"
        )
    return (base.ljust(8) + ext.ljust(3)).encode("ascii")


def volume_label_bytes(label: str) -> bytes:
    """The 11-byte space-padded label used in BS_VolLab and the root's ATTR_VOLUME_ID entry."""
    if not 1 <= len(label) <= 11 or label != label.rstrip() or label.startswith(" "):
        raise ValueError(f"volume label {label!r} must be 1-11 characters without leading or trailing spaces")
    bad = {
        c for c in label if not (c.isascii() and (c.isupper() or c.isdigit() or c == " "))
    } - _SHORT_NAME_SPECIALS
    if bad:
        raise ValueError(
            f"volume label {label!r} has characters {''.join(sorted(bad))!r}; use upper case A-Z, 0-9"
        )
    return label.ljust(11).encode("ascii")


# ---------------------------------------------------------------------------------------------------
# Volume contents


@dataclass(frozen=True)
class EspFile:
    """A file to place on the ESP (or any FAT volume): a path such as "EFI/BOOT/BOOTAA64.EFI" and its bytes.

    '/' and '\\' both separate components; a leading separator is ignored. Parent directories are
    created as needed.
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
    """How to format a FAT32 volume; the defaults give the reference ESP."""

    sectors_per_cluster: int | None = None
    """None: fatgen103's cluster size for the volume size (512 bytes up to 260 MiB)."""
    reserved_sectors: int = 32
    num_fats: int = 2
    volume_label: str = "VMCONFORM"
    oem_name: str = "MSWIN4.1"
    media: int = 0xF8


@dataclass(frozen=True)
class AllocatedFile:
    """Where a file or directory landed: its cluster chain is first_cluster .. first_cluster+clusters-1."""

    path: tuple[str, ...]
    is_directory: bool
    first_cluster: int
    clusters: int
    size: int


@dataclass(frozen=True)
class Fat32Volume:
    """A FAT32 volume as written: its geometry and where every directory and file went."""

    geometry: Fat32Geometry
    boot_sector: Fat32BootSector
    fs_info: FsInfo
    allocations: tuple[AllocatedFile, ...]
    next_free_cluster: int


class _Node:
    """A directory or file being laid out (internal, mutable while planning)."""

    def __init__(self, path: tuple[str, ...], data: bytes | None) -> None:
        self.path = path
        self.data = data  # None for a directory
        self.children: dict[str, _Node] = {}
        self.first_cluster = 0
        self.clusters = 0

    @property
    def is_directory(self) -> bool:
        return self.data is None


def _build_tree(files: Sequence[EspFile]) -> _Node:
    root = _Node((), None)
    for file in files:
        parts = file.components
        for part in parts:
            short_name(part)  # validate early, with the component in the message
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
    return root


def _name_records(node: _Node, timestamp: FatTimestamp) -> list[bytes]:
    """The directory records naming `node` in its parent: today one short entry.

    This is where long-file-name entries (and generated short names with NT case bits) will go: they
    precede the short entry, and the directory sizing below counts whatever this returns.
    """
    entry = DirectoryEntry(
        name=short_name(node.path[-1]),
        attr=ATTR_DIRECTORY if node.is_directory else ATTR_ARCHIVE,
        first_cluster=node.first_cluster,
        file_size=0 if node.data is None else len(node.data),
        created=timestamp,
    )
    return [entry.to_bytes()]


def _directory_records(
    node: _Node, parent: _Node | None, timestamp: FatTimestamp, label: bytes | None
) -> list[bytes]:
    records: list[bytes] = []
    if parent is None:
        if label is not None:
            records.append(DirectoryEntry(label, ATTR_VOLUME_ID, created=timestamp).to_bytes())
    else:
        dot_dot_cluster = 0 if parent.path == () else parent.first_cluster  # fatgen103 §6.7: root is 0
        records.append(
            DirectoryEntry(b".          ", ATTR_DIRECTORY, node.first_cluster, created=timestamp).to_bytes()
        )
        records.append(
            DirectoryEntry(b"..         ", ATTR_DIRECTORY, dot_dot_cluster, created=timestamp).to_bytes()
        )
    for child in node.children.values():
        records.extend(_name_records(child, timestamp))
    return records


def write_fat32(
    image: SparseImage,
    volume_offset: int,
    geometry: Fat32Geometry,
    files: Sequence[EspFile],
    *,
    spec: FatVolumeSpec,
    hidden_sectors: int,
    volume_id: int,
    timestamp: FatTimestamp,
) -> Fat32Volume:
    """Format a FAT32 volume at byte `volume_offset` of `image` and store `files` in it.

    Clusters are allocated contiguously from cluster 2 (the root directory), depth first in the
    order the files are given, so the layout is a pure function of the arguments.
    """
    if not 0 <= hidden_sectors <= 0xFFFFFFFF:
        raise ValueError(
            f"BPB_HiddSec is 32-bit; a volume starting at sector {hidden_sectors} cannot record it"
        )
    label = volume_label_bytes(spec.volume_label)
    root = _build_tree(files)
    cluster_bytes = geometry.cluster_bytes

    # Pass 1: allocate clusters. A directory's size depends only on how many records it holds.
    next_cluster = 2
    order: list[tuple[_Node, _Node | None]] = []

    def allocate(node: _Node, parent: _Node | None) -> None:
        nonlocal next_cluster
        if node.is_directory:
            n_records = len(_directory_records(node, parent, timestamp, label))
            node.clusters = max(1, _ceil_div(n_records * DIR_ENTRY_SIZE, cluster_bytes))
        else:
            assert node.data is not None
            node.clusters = _ceil_div(len(node.data), cluster_bytes)
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
            f"the files need {used} clusters of {cluster_bytes} bytes but the FAT32 volume has only "
            f"{geometry.cluster_count}; make the ESP (disk) larger or the files smaller"
        )

    # Pass 2: write directories and file data.
    for node, parent in order:
        if node.clusters == 0:
            continue
        offset = volume_offset + geometry.cluster_offset(node.first_cluster)
        if node.is_directory:
            image.write(offset, b"".join(_directory_records(node, parent, timestamp, label)))
        else:
            assert node.data is not None
            image.write(offset, node.data)

    # The FATs: entries 0 and 1, then one contiguous chain per allocation; the rest stay zero (free).
    fat = array(_U32, [0x0FFFFF00 | spec.media, FAT32_EOC])  # entry 1: EOC with clean-shutdown bits set
    fat.extend(range(3, next_cluster + 1))
    for node, _parent in order:
        if node.clusters:
            fat[node.first_cluster + node.clusters - 1] = FAT32_EOC
    if sys.byteorder != "little":
        fat.byteswap()
    fat_bytes = fat.tobytes()
    for index in range(geometry.num_fats):
        image.write(volume_offset + geometry.fat_offset(index), fat_bytes)

    bpb = BiosParameterBlock(
        bytes_per_sector=geometry.bytes_per_sector,
        sectors_per_cluster=geometry.sectors_per_cluster,
        reserved_sector_count=geometry.reserved_sectors,
        num_fats=geometry.num_fats,
        total_sectors_32=geometry.total_sectors,
        fat_size_32=geometry.fat_size,
        hidden_sectors=hidden_sectors,
        volume_id=volume_id,
        volume_label=label,
        oem_name=spec.oem_name.encode("ascii").ljust(8)[:8],
        media=spec.media,
    )
    boot = Fat32BootSector(bpb)
    free = geometry.cluster_count - used
    fs_info = FsInfo(free_count=free, next_free=next_cluster if free else 0xFFFFFFFF)
    sector = geometry.bytes_per_sector
    boot_bytes, fs_info_bytes = boot.to_bytes(), fs_info.to_bytes(sector)
    for base in (0, bpb.backup_boot_sector):
        image.write(volume_offset + base * sector, boot_bytes)
        image.write(volume_offset + (base + bpb.fs_info_sector) * sector, fs_info_bytes)

    allocations = tuple(
        AllocatedFile(
            node.path,
            node.is_directory,
            node.first_cluster,
            node.clusters,
            0 if node.data is None else len(node.data),
        )
        for node, _parent in order
    )
    return Fat32Volume(geometry, boot, fs_info, allocations, next_cluster)
