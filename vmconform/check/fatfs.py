"""A read-only FAT12/16/32 reader for `vmconform check` that terminates on any input (fatgen103 v1.03:
§3 BPB, §3.5 FAT type by cluster count, §4 FAT entries, §5 FSInfo, §6 directory entries, §7 long names).

Written separately from the generator (`vmconform.image.fat`) so that checking generated images is a
real test of both. Every loop is bounded: cluster chains by a visited set and the volume's cluster
count, directories by 65,536 entries, the tree by a directory budget.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from vmconform.check.source import Source

MAX_DIR_ENTRIES = 65536  # fatgen103 §6: a directory holds at most 65,536 32-byte entries
MAX_DIRECTORIES = 4096
MAX_FILES = 65536
MAX_CHAIN = 1 << 22
ATTR_LONG_NAME = 0x0F
ATTR_DIRECTORY = 0x10
ATTR_VOLUME_ID = 0x08
FSINFO_SIGNATURES = (0x41615252, 0x61417272, 0xAA550000)


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


@dataclass(frozen=True)
class DirEntry:
    name: str
    """The long name if a valid one precedes the entry, else the 8.3 name as displayed (NT case bits applied)."""
    short: str
    attr: int
    first_cluster: int
    size: int

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)

    def matches(self, name: str) -> bool:
        """Case-insensitive match against the long or the short name (UEFI §13.3.1.3)."""
        want = name.upper()
        return self.name.upper() == want or self.short.upper() == want


@dataclass
class FileRecord:
    path: str
    entry: DirEntry


@dataclass
class TreeWalk:
    files: list[FileRecord] = field(default_factory=list)
    directories: list[FileRecord] = field(default_factory=list)
    tree_problems: list[str] = field(default_factory=list)
    chain_problems: list[str] = field(default_factory=list)
    truncated: bool = False


def _lfn_checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def _short_display(raw: bytes, nt_res: int) -> str:
    name = bytearray(raw)
    if name[0] == 0x05:
        name[0] = 0xE5
    base = name[:8].decode("latin-1").rstrip(" ")
    ext = name[8:11].decode("latin-1").rstrip(" ")
    if nt_res & 0x08:
        base = base.lower()
    if nt_res & 0x10:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


class FatFs:
    """A FAT volume at byte `offset` of `source`, described by `bpb` (whose `problems()` must be empty)."""

    def __init__(self, source: Source, offset: int, bpb: Bpb) -> None:
        self.src = source
        self.offset = offset
        self.bpb = bpb
        self._fat_cache: dict[int, bytes] = {}

    # -- FAT

    def _fat_bytes(self, byte_offset: int, n: int) -> bytes:
        bps = self.bpb.bytes_per_sector
        out = b""
        while len(out) < n:
            sector = (byte_offset + len(out)) // bps
            block = self._fat_cache.get(sector)
            if block is None:
                base = self.offset + self.bpb.reserved_sectors * bps
                block = self.src.read(base + sector * bps, bps).ljust(bps, b"\0")
                if len(self._fat_cache) > 4096:
                    self._fat_cache.clear()
                self._fat_cache[sector] = block
            start = (byte_offset + len(out)) % bps
            out += block[start : start + n - len(out)]
        return out

    def next_cluster(self, cluster: int) -> int:
        bits = self.bpb.entry_bits
        if bits == 32:
            return int.from_bytes(self._fat_bytes(cluster * 4, 4), "little") & 0x0FFFFFFF
        if bits == 16:
            return int.from_bytes(self._fat_bytes(cluster * 2, 2), "little")
        value = int.from_bytes(self._fat_bytes(cluster * 3 // 2, 2), "little")
        return value >> 4 if cluster & 1 else value & 0x0FFF

    def is_eoc(self, value: int) -> bool:
        return value >= {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[self.bpb.entry_bits]

    def in_range(self, cluster: int) -> bool:
        return 2 <= cluster <= self.bpb.cluster_count + 1

    def chain(self, first: int, limit: int = MAX_CHAIN) -> tuple[list[int], str | None]:
        """The cluster chain from `first` (at most `limit` clusters) and what is wrong with it, if anything."""
        if not self.in_range(first):
            return [], f"first cluster {first} outside 2..{self.bpb.cluster_count + 1}"
        seen: set[int] = set()
        out: list[int] = []
        cluster = first
        while True:
            if cluster in seen:
                return out, f"loops back to cluster {cluster} after {len(out)} clusters"
            seen.add(cluster)
            out.append(cluster)
            if len(out) >= limit:
                return out, None
            value = self.next_cluster(cluster)
            if self.is_eoc(value):
                return out, None
            if value == 0:
                return out, f"cluster {cluster} is marked free in the middle of the chain"
            if not self.in_range(value):
                return out, f"cluster {cluster} points to {value:#x}, outside the volume"
            cluster = value

    def cluster_offset(self, cluster: int) -> int:
        sector = self.bpb.first_data_sector + (cluster - 2) * self.bpb.sectors_per_cluster
        return self.offset + sector * self.bpb.bytes_per_sector

    def read_file(self, entry: DirEntry, limit: int) -> tuple[bytes | None, str | None]:
        """The file's bytes (at most `limit`), following its chain only as far as its size needs."""
        size = min(entry.size, limit)
        if size == 0:
            return b"", None
        need = -(-size // self.bpb.cluster_bytes)
        clusters, problem = self.chain(entry.first_cluster, need)
        if len(clusters) < need:
            return None, problem or f"the chain ends after {len(clusters)} of {need} clusters"
        data = b"".join(self.src.read(self.cluster_offset(c), self.bpb.cluster_bytes) for c in clusters)
        if len(data) < size:
            return None, "the file's clusters lie past the end of the image"
        return data[:size], None

    # -- directories

    def _root_raw(self) -> tuple[bytes, str | None]:
        bpb = self.bpb
        if bpb.structure == 32:
            return self._chain_raw(bpb.root_cluster)
        start = self.offset + (bpb.reserved_sectors + bpb.num_fats * bpb.fat_size) * bpb.bytes_per_sector
        return self.src.read(start, min(bpb.root_entry_count, MAX_DIR_ENTRIES) * 32), None

    def _chain_raw(self, first: int) -> tuple[bytes, str | None]:
        limit = max(1, MAX_DIR_ENTRIES * 32 // self.bpb.cluster_bytes)
        clusters, problem = self.chain(first, limit)
        data = b"".join(self.src.read(self.cluster_offset(c), self.bpb.cluster_bytes) for c in clusters)
        return data, problem

    def read_dir(self, first_cluster: int | None) -> tuple[list[DirEntry], str | None]:
        """Entries of the root (None) or of the directory at `first_cluster`, and a chain problem if any."""
        raw, problem = self._root_raw() if first_cluster is None else self._chain_raw(first_cluster)
        entries: list[DirEntry] = []
        lfn: dict[int, bytes] = {}
        lfn_sum = -1
        for pos in range(0, min(len(raw), MAX_DIR_ENTRIES * 32) - 31, 32):
            rec = raw[pos : pos + 32]
            first = rec[0]
            if first == 0x00:
                break
            if first == 0xE5:
                lfn.clear()
                continue
            attr = rec[11]
            if attr & 0x3F == ATTR_LONG_NAME:
                ordinal = first & 0x1F
                if first & 0x40:
                    lfn = {}
                    lfn_sum = rec[13]
                if rec[13] == lfn_sum and 1 <= ordinal <= 20:
                    lfn[ordinal] = rec[1:11] + rec[14:26] + rec[28:32]
                continue
            if attr & ATTR_VOLUME_ID:
                lfn.clear()
                continue
            short = _short_display(rec[0:11], rec[12])
            name = short
            if lfn and lfn_sum == _lfn_checksum(rec[0:11]) and sorted(lfn) == list(range(1, len(lfn) + 1)):
                units = b"".join(lfn[i] for i in sorted(lfn))
                text = units.decode("utf-16-le", errors="replace")
                name = text.split("\0", 1)[0]
            lfn.clear()
            hi, lo = struct.unpack_from("<H", rec, 20)[0], struct.unpack_from("<H", rec, 26)[0]
            cluster = (hi << 16 | lo) if self.bpb.structure == 32 else lo
            (size,) = struct.unpack_from("<I", rec, 28)
            entries.append(DirEntry(name, short, attr, cluster, size))
        return entries, problem

    def walk(self, max_files: int = MAX_FILES) -> TreeWalk:
        """Every file and directory below the root, with tree (loop) and chain problems; always terminates."""
        walk = TreeWalk()
        root_key = self.bpb.root_cluster if self.bpb.structure == 32 else 0
        visited: dict[int, str] = {root_key: "\\"}
        queue: list[tuple[str, int | None]] = [("", None)]
        owner: dict[int, str] = {}
        while queue:
            if len(walk.directories) >= MAX_DIRECTORIES or len(walk.files) >= max_files:
                walk.truncated = True
                break
            path, cluster = queue.pop(0)
            entries, problem = self.read_dir(cluster)
            if problem:
                where = path or "\\"
                walk.chain_problems.append(f"directory {where}: {problem}")
            if cluster is not None:
                self._claim(cluster, path, owner, walk)
            for entry in entries:
                if entry.short in (".", ".."):
                    continue
                child = f"{path}\\{entry.name}"
                if entry.is_dir:
                    key = entry.first_cluster
                    if key == 0 or key in visited:
                        target = visited.get(key, "\\")
                        walk.tree_problems.append(f"{child} points at cluster {key}, already {target}: a loop")
                        continue
                    if not self.in_range(key):
                        walk.chain_problems.append(f"directory {child}: first cluster {key} outside the volume")
                        continue
                    visited[key] = child
                    walk.directories.append(FileRecord(child, entry))
                    queue.append((child, key))
                else:
                    walk.files.append(FileRecord(child, entry))
                    self._check_file_chain(child, entry, owner, walk)
        return walk

    def _claim(self, first: int, path: str, owner: dict[int, str], walk: TreeWalk) -> None:
        clusters, _problem = self.chain(first, MAX_DIR_ENTRIES)
        for c in clusters:
            other = owner.setdefault(c, path)
            if other != path:
                walk.chain_problems.append(f"{path}: cluster {c} also belongs to {other} (cross-linked)")
                return

    def _check_file_chain(self, path: str, entry: DirEntry, owner: dict[int, str], walk: TreeWalk) -> None:
        need = -(-entry.size // self.bpb.cluster_bytes) if self.bpb.cluster_bytes else 0
        if need == 0:
            if entry.first_cluster not in (0,) and not self.in_range(entry.first_cluster):
                walk.chain_problems.append(f"{path}: empty file with first cluster {entry.first_cluster}")
            return
        clusters, problem = self.chain(entry.first_cluster, need + 1)
        if problem:
            walk.chain_problems.append(f"{path}: chain {problem}")
        elif len(clusters) < need:
            walk.chain_problems.append(
                f"{path}: {entry.size} bytes need {need} clusters, the chain has {len(clusters)}"
            )
        elif len(clusters) > need:
            walk.chain_problems.append(f"{path}: the chain is longer than the {need} clusters {entry.size} bytes need")
        for c in clusters:
            other = owner.setdefault(c, path)
            if other != path:
                walk.chain_problems.append(f"{path}: cluster {c} also belongs to {other} (cross-linked)")
                break

    def lookup(self, components: tuple[str, ...]) -> tuple[DirEntry | None, str]:
        """Find a path case-insensitively; (entry, the path as stored) or (None, how far it got)."""
        cluster: int | None = None
        stored = ""
        found: DirEntry | None = None
        for depth, name in enumerate(components):
            entries, _problem = self.read_dir(cluster)
            found = next((e for e in entries if e.matches(name) and e.short not in (".", "..")), None)
            if found is None:
                return None, stored or "\\"
            stored += "\\" + found.name
            last = depth == len(components) - 1
            if not last:
                if not found.is_dir or not self.in_range(found.first_cluster):
                    return None, stored
                cluster = found.first_cluster
        return found, stored

    def fs_info(self) -> tuple[bool, str]:
        """Whether the FSInfo sector has its three signatures (FAT32 structure only)."""
        bpb = self.bpb
        if bpb.fs_info_sector in (0, 0xFFFF) or bpb.fs_info_sector >= bpb.reserved_sectors:
            return False, f"BPB_FSInfo is {bpb.fs_info_sector} (not a reserved sector)"
        sector = self.src.read(self.offset + bpb.fs_info_sector * bpb.bytes_per_sector, 512)
        if len(sector) < 512:
            return False, "the FSInfo sector lies past the end of the image"
        lead, struc, trail = (
            struct.unpack_from("<I", sector, 0)[0],
            struct.unpack_from("<I", sector, 484)[0],
            struct.unpack_from("<I", sector, 508)[0],
        )
        if (lead, struc, trail) != FSINFO_SIGNATURES:
            return (
                False,
                f"FSInfo signatures {lead:#010x} {struc:#010x} {trail:#010x} (want 41615252 61417272 AA550000)",
            )
        return True, f"FSInfo at sector {bpb.fs_info_sector}"
