"""FAT16 and FAT32 volumes: boot sector and BPB, FSInfo, the FATs, short and long directory entries
(Microsoft "FAT32 File System Specification", fatgen103 v1.03, 2000: §3 boot sector and BPB, §3.5
cluster count and FAT type, §4 FAT, §5 FSInfo, §6 directory entries, §7 long file names; as referenced
by UEFI 2.11 §13.3 "File System Format").

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
from typing import Literal

from vmconform.image.sparse import SparseImage

FAT32_MIN_CLUSTERS = 65525
"""fatgen103 §3.5: a volume with fewer clusters is FAT12/16 whatever its BPB says (EDK2 rejects it)."""
FAT16_MIN_CLUSTERS = 4085
"""fatgen103 §3.5: fewer clusters than this make a FAT12 volume."""
FAT32_MAX_CLUSTERS = 0x0FFFFFF5 - 2
DIR_ENTRY_SIZE = 32
FAT32_EOC = 0x0FFFFFFF
FAT16_EOC = 0xFFFF
FAT32_ENTRY_MASK = 0x0FFFFFFF
FAT32_CLN_SHUT_BIT = 0x08000000
FAT32_HRD_ERR_BIT = 0x04000000
MAX_FILE_SIZE = 0xFFFFFFFF
MAX_LONG_NAME = 255
LFN_CHARS_PER_ENTRY = 13

ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LONG_NAME = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID
LAST_LONG_ENTRY = 0x40

NT_LOWER_CASE_BASE = 0x08
"""DIR_NTRes bit Windows NT sets when an 8.3 name's base is all lower case (no long entries needed)."""
NT_LOWER_CASE_EXT = 0x10

FatType = Literal[16, 32]
LowerCaseStyle = Literal["lfn", "nt-case-bits"]

_BPB_COMMON = struct.Struct("<3s8sHBHBHHBHHHII")  # bytes 0..35, shared by FAT12/16 and FAT32
_BPB32_TAIL = struct.Struct("<IHHIHH12sBBBI11s8s")  # bytes 36..89
_BPB16_TAIL = struct.Struct("<BBBI11s8s")  # bytes 36..61
_FSINFO_LEAD_SIG = 0x41615252
_FSINFO_STRUC_SIG = 0x61417272
_FSINFO_TRAIL_SIG = 0xAA550000
_DIR_ENTRY = struct.Struct("<11sBBBHHHHHHHI")
_LFN_ENTRY = struct.Struct("<B10sBBB12sH4s")
_U32 = "I" if array("I").itemsize == 4 else "L"

# Characters allowed in a short name besides A-Z and 0-9 (fatgen103 §6.1).
_SHORT_NAME_SPECIALS = frozenset("$%'-_@~`!(){}^#&")
# Characters a long name may not hold (fatgen103 §7), besides control characters.
_LONG_NAME_FORBIDDEN = frozenset('"*/:<>?\\|')
# A tiny x86 stub after the BPB so a legacy BIOS that jumps here halts instead of running zeros.
_BOOT_STUB = b"\xfa\xf4\xeb\xfd"  # cli; hlt; jmp $-1
_JMP_BOOT = b"\xeb\x58\x90"  # jmp short 0x5A; nop
_JMP_BOOT_16 = b"\xeb\x3c\x90"  # jmp short 0x3E; nop (after the shorter FAT12/16 BPB)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------------------------------------------
# Geometry


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
        return _ceil_div(self.root_entry_count * DIR_ENTRY_SIZE, self.bytes_per_sector)

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


Fat32Geometry = FatGeometry
"""The name this class had while only FAT32 existed."""


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
    return max(1, _ceil_div(total - reserved - root_sectors + 2 * spc, entries_per_sector * spc + num_fats))


def min_fat32_volume_sectors(
    bytes_per_sector: int, sectors_per_cluster: int, reserved_sectors: int = 32, num_fats: int = 2
) -> int:
    """The fewest sectors a FAT32 volume with this layout needs to reach 65525 clusters."""
    fat_size = _ceil_div((FAT32_MIN_CLUSTERS + 2) * 4, bytes_per_sector)
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
        root_sectors = _ceil_div(root_entries * DIR_ENTRY_SIZE, bytes_per_sector)
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
                f"such a volume); make the volume at least {_ceil_div(need * bytes_per_sector, 2**20)} MiB "
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


def plan_fat32(
    total_sectors: int,
    bytes_per_sector: int = 512,
    sectors_per_cluster: int | None = None,
    reserved_sectors: int = 32,
    num_fats: int = 2,
    min_clusters: int = FAT32_MIN_CLUSTERS,
) -> FatGeometry:
    """`plan_fat` for FAT32 (the signature this module had before FAT16)."""
    return plan_fat(
        total_sectors, bytes_per_sector, sectors_per_cluster, reserved_sectors, num_fats, min_clusters=min_clusters
    )


# ---------------------------------------------------------------------------------------------------
# Boot sector, BPB, FSInfo


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


FatBootSector = Fat32BootSector


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


def _short_name_problem(component: str) -> str | None:
    base, dot, ext = component.partition(".")
    if component in ("", ".", ".."):
        return "is empty or a dot entry"
    if not 1 <= len(base) <= 8 or len(ext) > 3 or (dot and not ext) or "." in ext:
        return "is not an 8.3 name (1-8 characters, optionally '.' and 1-3 characters)"
    bad = sorted({c for c in base + ext if not (c.isascii() and (c.isupper() or c.isdigit()))} - _SHORT_NAME_SPECIALS)
    if bad:
        return f"has characters a short name cannot hold: {''.join(bad)!r}"
    return None


def short_name(component: str) -> bytes:
    """The 11-byte DIR_Name for an upper-case 8.3 path component, e.g. "BOOTAA64.EFI" -> b"BOOTAA64EFI".

    Raises ValueError for anything that needs a long-file-name entry (lower case, long, odd chars).
    """
    problem = _short_name_problem(component)
    if problem:
        raise ValueError(
            f"path component {component!r} {problem}; use upper-case 8.3 names of A-Z, 0-9 and "
            f"{''.join(sorted(_SHORT_NAME_SPECIALS))}"
        )
    base, _dot, ext = component.partition(".")
    return (base.ljust(8) + ext.ljust(3)).encode("ascii")


def is_short_name(component: str) -> bool:
    """True when `component` is stored as a short entry alone (an upper-case 8.3 name)."""
    return _short_name_problem(component) is None


def validate_long_name(component: str) -> None:
    """ValueError (saying what to change) unless `component` can be stored as a FAT long file name."""
    problem = None
    if component in ("", ".", ".."):
        problem = "is empty or a dot entry"
    elif len(component) > MAX_LONG_NAME:
        problem = f"is {len(component)} characters; FAT long names hold at most {MAX_LONG_NAME}"
    elif component != component.rstrip(" ."):
        problem = "ends with a space or '.', which FAT long names cannot"
    else:
        bad = sorted({c for c in component if c in _LONG_NAME_FORBIDDEN or ord(c) < 0x20 or ord(c) > 0xFFFF})
        if bad:
            problem = f"has characters a FAT name cannot hold: {''.join(bad)!r}"
    if problem:
        raise ValueError(
            f"path component {component!r} {problem}; use a name of at most 255 characters without "
            '"*/:<>?\\| or control characters'
        )


def lfn_checksum(short: bytes) -> int:
    """fatgen103 §7: the checksum of the 11-byte short name that each long entry carries."""
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def long_name_entries(name: str, short: bytes) -> list[bytes]:
    """The long-name directory entries for `name`, in on-disk order (last part first, before the short entry)."""
    units = name.encode("utf-16-le")
    chars = [units[i : i + 2] for i in range(0, len(units), 2)]
    count = _ceil_div(len(chars), LFN_CHARS_PER_ENTRY)
    padded = chars + ([b"\x00\x00"] if len(chars) % LFN_CHARS_PER_ENTRY else [])
    padded += [b"\xff\xff"] * (count * LFN_CHARS_PER_ENTRY - len(padded))
    checksum = lfn_checksum(short)
    entries = []
    for ordinal in range(count, 0, -1):
        part = padded[(ordinal - 1) * LFN_CHARS_PER_ENTRY : ordinal * LFN_CHARS_PER_ENTRY]
        entries.append(
            _LFN_ENTRY.pack(
                ordinal | (LAST_LONG_ENTRY if ordinal == count else 0),
                b"".join(part[0:5]),
                ATTR_LONG_NAME,
                0,
                checksum,
                b"".join(part[5:11]),
                0,
                b"".join(part[11:13]),
            )
        )
    return entries


def _basis_name(name: str) -> tuple[str, str, bool]:
    """fatgen103 §7 "basis-name generation": (primary <= 8 chars, extension <= 3 chars, lossy)."""
    lossy = False
    converted = []
    for char in name.upper():
        if char == " " or char == ".":
            converted.append(char)
        elif char.isascii() and (char.isupper() or char.isdigit() or char in _SHORT_NAME_SPECIALS):
            converted.append(char)
        else:
            converted.append("_")
            lossy = True
    text = "".join(converted).replace(" ", "").lstrip(".")
    last_dot = text.rfind(".")
    primary_src = text if last_dot < 0 else text[:last_dot]
    primary = primary_src.split(".")[0][:8] if primary_src else ""
    ext = text[last_dot + 1 :][:3] if last_dot >= 0 else ""
    if not primary:
        primary, lossy = "_", True
    return primary, ext, lossy


@dataclass(frozen=True)
class NameRecords:
    """How one directory entry is named on disk: the 8.3 short name, NT case bits, and a long name or None."""

    short: bytes
    nt_res: int = 0
    long_name: str | None = None


def name_records(name: str, taken: set[bytes], style: LowerCaseStyle = "lfn") -> NameRecords:
    """Choose the on-disk names for `name` in a directory whose short names are `taken` (updated).

    Upper-case 8.3 names are stored as a short entry alone. With `style="nt-case-bits"`, an 8.3 name
    whose base and extension are each entirely lower case is stored as its upper-case short entry with
    the Windows NT case bits (no long entries). Anything else gets long-name entries and a generated short
    name (fatgen103 §7: basis name, plus a numeric tail "~n" when lossy, too long, or taken).
    """
    if is_short_name(name):
        short = short_name(name)
        if short in taken:
            raise ValueError(f"two entries named {name!r} in one directory; give each file a distinct path")
        taken.add(short)
        return NameRecords(short)
    validate_long_name(name)
    upper = name.upper()
    fits = is_short_name(upper)
    if style == "nt-case-bits" and fits:
        base, _dot, ext = name.partition(".")
        base_lower, ext_lower = base != base.upper(), ext != ext.upper()
        if (not base_lower or base == base.lower()) and (not ext_lower or ext == ext.lower()):
            short = short_name(upper)
            if short not in taken:
                taken.add(short)
                return NameRecords(
                    short, (NT_LOWER_CASE_BASE if base_lower else 0) | (NT_LOWER_CASE_EXT if ext_lower else 0)
                )
    primary, ext, lossy = _basis_name(name)
    basis = (primary.ljust(8) + ext.ljust(3)).encode("ascii")
    if fits and not lossy and basis not in taken:
        taken.add(basis)
        return NameRecords(basis, 0, name)
    for n in range(1, 1_000_000):
        tail = f"~{n}"
        short = ((primary[: 8 - len(tail)] + tail).ljust(8) + ext.ljust(3)).encode("ascii")
        if short not in taken:
            taken.add(short)
            return NameRecords(short, 0, name)
    raise ValueError(f"no free short name for {name!r}; put fewer similar names in one directory")


def volume_label_bytes(label: str) -> bytes:
    """The 11-byte space-padded label used in BS_VolLab and the root's ATTR_VOLUME_ID entry."""
    if not 1 <= len(label) <= 11 or label != label.rstrip() or label.startswith(" "):
        raise ValueError(f"volume label {label!r} must be 1-11 characters without leading or trailing spaces")
    bad = {c for c in label if not (c.isascii() and (c.isupper() or c.isdigit() or c == " "))} - _SHORT_NAME_SPECIALS
    if bad:
        raise ValueError(f"volume label {label!r} has characters {''.join(sorted(bad))!r}; use upper case A-Z, 0-9")
    return label.ljust(11).encode("ascii")


# ---------------------------------------------------------------------------------------------------
# Volume contents


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
    if fat32:
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
            oem_name=oem,
            media=spec.media,
        )
    else:
        small = geometry.total_sectors < 0x10000
        bpb = BiosParameterBlock(
            bytes_per_sector=geometry.bytes_per_sector,
            sectors_per_cluster=geometry.sectors_per_cluster,
            reserved_sector_count=geometry.reserved_sectors,
            num_fats=geometry.num_fats,
            total_sectors_32=0 if small else geometry.total_sectors,
            total_sectors_16=geometry.total_sectors if small else 0,
            fat_size_32=0,
            fat_size_16=geometry.fat_size,
            root_entry_count=geometry.root_entry_count,
            hidden_sectors=hidden_sectors,
            volume_id=volume_id,
            volume_label=label,
            oem_name=oem,
            media=spec.media,
            fs_type=b"FAT16   ",
            jmp_boot=_JMP_BOOT_16,
            fat_type=16,
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


write_fat32 = write_fat
