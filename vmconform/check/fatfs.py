"""A read-only FAT12/16/32 reader for `vmconform check` that terminates on any input (fatgen103 v1.03:
§3 BPB, §3.5 FAT type by cluster count, §4 FAT entries, §5 FSInfo, §6 directory entries, §7 long names).

Written separately from the generator (`vmconform.image.fat`) so that checking generated images is a
real test of both. Every loop is bounded: directories by 65,536 entries, and every read, FAT link and
parsed entry is charged to a `Budget` (budget.py) that stops the phase when the image asks for too much.
Long names are taken as EDK2's FAT driver takes them (FatPkg, FatLoadLongNameEntry): a name the firmware
would not see is not seen here either. The tree walk is in fatwalk.py.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass

from vmconform.check.bpb import Bpb
from vmconform.check.budget import Budget
from vmconform.check.source import Source

MAX_DIR_ENTRIES = 65536  # fatgen103 §6: a directory holds at most 65,536 32-byte entries
MAX_LFN_ENTRIES = 20  # 20 x 13 = 260 characters; EDK2 stops there too
LFN_LAST = 0x40
FAT32_BLOCK_ENTRIES = 16384  # FAT32 entries read and cached at a time (64 KiB)
ATTR_LONG_NAME = 0x0F
ATTR_DIRECTORY = 0x10
ATTR_VOLUME_ID = 0x08
FSINFO_SIGNATURES = (0x41615252, 0x61417272, 0xAA550000)

__all__ = ["Bpb", "DirEntry", "FatFs", "lfn_checksum", "long_name"]


@dataclass(frozen=True)
class DirEntry:
    name: str
    """The long name if a valid one precedes the entry, else the 8.3 name as displayed (NT case bits applied)."""
    short: str
    attr: int
    first_cluster: int
    size: int
    lfn_problem: str = ""
    """Why long-name entries just before this one were not taken as its name (empty: none, or none there)."""

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)

    def matches(self, name: str) -> bool:
        """Case-insensitive match against the long or the short name (UEFI §13.3.1.3)."""
        want = name.upper()
        return self.name.upper() == want or self.short.upper() == want


def lfn_checksum(short: bytes) -> int:
    """fatgen103 §7: the checksum of the 11-byte short name that each long-name entry carries."""
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def _short_display(raw: bytes, nt_res: int) -> str:
    base, ext = raw[:8].rstrip(b" "), raw[8:11].rstrip(b" ")
    if base[:1] == b"\x05":
        base = b"\xe5" + base[1:]
    text_base, text_ext = base.decode("latin-1"), ext.decode("latin-1")
    if nt_res & 0x08:
        text_base = text_base.lower()
    if nt_res & 0x10:
        text_ext = text_ext.lower()
    return f"{text_base}.{text_ext}" if text_ext else text_base


def long_name(raw: bytes | memoryview, pos: int, short: bytes) -> tuple[str | None, str]:
    """The long name of the short entry at byte `pos` of the directory `raw`, as EDK2 reads it: walking
    back from the entry, ordinal 1, 2, ... up to the one flagged last (0x40), each entry with attributes
    exactly 0x0F, first cluster 0, the short name's checksum, at most 20 entries; 13 UCS-2 characters each,
    the name ending at the first NUL. (None, why) when the entries before it are not such a sequence
    (why is empty when there are no long-name entries at all): the firmware then sees the short name."""
    want = lfn_checksum(short)
    chars: list[bytes] = []
    ordinal = 1
    at = pos - 32
    while True:
        if at < 0 or ordinal > MAX_LFN_ENTRIES:
            return None, "" if ordinal == 1 else f"the sequence has no entry flagged last within {ordinal - 1}"
        rec = bytes(raw[at : at + 32])
        if rec[11] != ATTR_LONG_NAME or (ordinal == 1 and rec[0] == 0xE5):
            if ordinal == 1:
                return None, ""
            return None, f"long-name entry {ordinal} is missing (found a non-long-name entry)"
        if rec[26:28] != b"\0\0":
            return None, f"long-name entry {ordinal} has a non-zero first-cluster field"
        if rec[13] != want:
            return None, f"long-name entry with checksum {rec[13]:#04x}, the short name's is {want:#04x}"
        if rec[0] & ~LFN_LAST & 0xFF != ordinal:
            return None, f"long-name entry ordinal {rec[0]:#04x} where ordinal {ordinal} belongs (out of order)"
        chars.append(rec[1:11] + rec[14:26] + rec[28:32])
        if rec[0] & LFN_LAST:
            break
        ordinal += 1
        at -= 32
    text = b"".join(chars).decode("utf-16-le", errors="replace").split("\0", 1)[0]
    return (text, "") if text else (None, "the long name is empty")


class FatFs:
    """A FAT volume at byte `offset` of `source`, described by `bpb` (whose `problems()` must be empty).

    Every read, FAT link and parsed entry is charged to `budget` (which raises BudgetExceeded when spent);
    `budget.where` is kept pointing at what is being read, for the evidence.
    """

    def __init__(self, source: Source, offset: int, bpb: Bpb, budget: Budget) -> None:
        self.src = source
        self.offset = offset
        self.bpb = bpb
        self.budget = budget
        self._fat_cache: dict[int, bytes] = {}
        self._fat32_blocks: dict[int, array[int]] = {}

    def read(self, offset: int, n: int) -> bytes:
        self.budget.read(n)
        return self.src.read(offset, n)

    # -- FAT

    def _fat_bytes(self, byte_offset: int, n: int) -> bytes:
        bps = self.bpb.bytes_per_sector
        sector, start = divmod(byte_offset, bps)
        block = self._fat_cache.get(sector)
        if block is None:
            base = self.offset + self.bpb.reserved_sectors * bps
            block = self.read(base + sector * bps, bps).ljust(bps, b"\0")
            if len(self._fat_cache) > 4096:
                self._fat_cache.clear()
            self._fat_cache[sector] = block
        if start + n <= bps:
            return block[start : start + n]
        return block[start:] + self._fat_bytes((sector + 1) * bps, start + n - bps)  # a FAT12 entry across sectors

    def next_cluster(self, cluster: int) -> int:
        """The FAT entry of `cluster` (charged to the FAT-link budget)."""
        self.budget.cluster()
        return self._entry(cluster)

    def _entry(self, cluster: int) -> int:
        bits = self.bpb.entry_bits
        if bits == 32:
            index, at = divmod(cluster, FAT32_BLOCK_ENTRIES)
            block = self._fat32_blocks.get(index)
            if block is None:
                block = self._fat32_block(index)
            return block[at] & 0x0FFFFFFF
        if bits == 16:
            return int.from_bytes(self._fat_bytes(cluster * 2, 2), "little")
        value = int.from_bytes(self._fat_bytes(cluster * 3 // 2, 2), "little")
        return value >> 4 if cluster & 1 else value & 0x0FFF

    def _fat32_block(self, index: int) -> array[int]:
        """FAT32 entries index * 16,384 .. (a 64 KiB block of the first FAT, cached; past the FAT: zeros)."""
        fat_bytes = self.bpb.fat_size * self.bpb.bytes_per_sector
        start = index * FAT32_BLOCK_ENTRIES * 4
        base = self.offset + self.bpb.reserved_sectors * self.bpb.bytes_per_sector
        want = max(0, min(FAT32_BLOCK_ENTRIES * 4, fat_bytes - start))
        raw = self.read(base + start, want).ljust(FAT32_BLOCK_ENTRIES * 4, b"\0")
        block = array("I", raw)
        if sys.byteorder == "big":
            block.byteswap()
        if len(self._fat32_blocks) >= 64:
            self._fat32_blocks.clear()
        self._fat32_blocks[index] = block
        return block

    def is_eoc(self, value: int) -> bool:
        return value >= {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[self.bpb.entry_bits]

    def in_range(self, cluster: int) -> bool:
        return 2 <= cluster <= self.bpb.cluster_count + 1

    def chain(
        self, first: int, limit: int, owner: dict[int, int] | None = None, me: int = -1
    ) -> tuple[list[int], str | None, int]:
        """The cluster chain from `first` (at most `limit` clusters), what is wrong with it, and with `owner`
        (cluster -> owner id, filled as clusters are claimed for `me`) the id of the owner it ran into
        (-1: none). The chain stops at a cluster already seen: in itself (a loop) or in another owner's
        chain (cross-linked), so a run shared by many files or directories is followed once."""
        if not self.in_range(first):
            return [], f"first cluster {first} outside 2..{self.bpb.cluster_count + 1}", -1
        out: list[int] = []
        try:
            return self._follow(first, limit, {} if owner is None else owner, me, out)
        finally:
            self.budget.cluster(len(out) % 4096)  # the rest was charged every 4,096 links on the way

    def _follow(
        self, first: int, limit: int, seen: dict[int, int], me: int, out: list[int]
    ) -> tuple[list[int], str | None, int]:
        cluster = first
        while True:
            other = seen.get(cluster)
            if other is not None:
                if other == me:
                    return out, f"loops back to cluster {cluster} after {len(out)} clusters", -1
                return out, f"cluster {cluster} also belongs to", other
            seen[cluster] = me
            out.append(cluster)
            if len(out) >= limit:
                return out, None, -1
            if len(out) % 4096 == 0:
                self.budget.cluster(4096)
            value = self._entry(cluster)
            if self.is_eoc(value):
                return out, None, -1
            if value == 0:
                return out, f"cluster {cluster} is marked free in the middle of the chain", -1
            if not self.in_range(value):
                return out, f"cluster {cluster} points to {value:#x}, outside the volume", -1
            cluster = value

    def cluster_offset(self, cluster: int) -> int:
        sector = self.bpb.first_data_sector + (cluster - 2) * self.bpb.sectors_per_cluster
        return self.offset + sector * self.bpb.bytes_per_sector

    def read_file(self, entry: DirEntry, limit: int) -> tuple[bytearray | None, str | None]:
        """The file's bytes (at most `limit`), following its chain only as far as its size needs; read into
        one buffer of the file's size (a 64 MiB file costs 64 MiB of memory, not three copies of it)."""
        size = min(entry.size, limit)
        if size == 0:
            return bytearray(), None
        step = self.bpb.cluster_bytes
        need = -(-size // step)
        clusters, problem, _other = self.chain(entry.first_cluster, need)
        if len(clusters) < need:
            return None, problem or f"the chain ends after {len(clusters)} of {need} clusters"
        data = bytearray(size)
        for i, c in enumerate(clusters):
            want = min(step, size - i * step)
            block = self.read(self.cluster_offset(c), want)
            if len(block) < want:
                return None, "the file's clusters lie past the end of the image"
            data[i * step : i * step + want] = block
        return data, None

    # -- directories

    def dir_raw(
        self, first_cluster: int | None, owner: dict[int, int] | None = None, me: int = -1
    ) -> tuple[bytes, str | None, int]:
        """The bytes of the root (None) or of the directory at `first_cluster` (at most 65,536 entries, and
        no cluster after the one with the end-of-directory mark), a chain problem if any, and the owner its
        chain ran into (see `chain`). The whole chain is followed (and claimed); only its data stops early."""
        bpb = self.bpb
        if first_cluster is None and bpb.structure != 32:
            start = self.offset + (bpb.reserved_sectors + bpb.num_fats * bpb.fat_size) * bpb.bytes_per_sector
            return self.read(start, min(bpb.root_entry_count, MAX_DIR_ENTRIES) * 32), None, -1
        first = bpb.root_cluster if first_cluster is None else first_cluster
        limit = max(1, MAX_DIR_ENTRIES * 32 // bpb.cluster_bytes)
        clusters, problem, other = self.chain(first, limit, owner, me)
        blocks = []
        for c in clusters:
            block = self.read(self.cluster_offset(c), bpb.cluster_bytes)
            blocks.append(block)
            if 0 in block[::32] or len(block) < bpb.cluster_bytes:  # the end mark, or the end of the image
                break
        return b"".join(blocks), problem, other

    def parse_dir(self, raw: bytes) -> list[DirEntry]:
        """The short entries of a directory's bytes (up to the end marker), with their names as EDK2 sees them.
        The entries up to the end marker are charged to the budget before any is parsed."""
        entries: list[DirEntry] = []
        end = min(len(raw) // 32, MAX_DIR_ENTRIES)
        marks = raw[0 : end * 32 : 32]
        stop = marks.find(0)
        count = end if stop < 0 else stop
        self.budget.entry(count)
        view = memoryview(raw)
        fat32 = self.bpb.structure == 32
        unpack = struct.unpack_from
        for pos in range(0, count * 32, 32):
            first, attr = raw[pos], raw[pos + 11]
            if first == 0xE5 or attr & ATTR_VOLUME_ID:  # deleted, a long-name entry or the volume label
                continue
            short_raw = raw[pos : pos + 11]
            short = _short_display(short_raw, raw[pos + 12])
            if pos >= 32 and raw[pos - 21] == ATTR_LONG_NAME and raw[pos - 32] != 0xE5:
                lfn, why = long_name(view, pos, short_raw)
            else:
                lfn, why = None, ""
            hi, lo, size = unpack("<H4xHI", raw, pos + 20)
            entries.append(DirEntry(lfn or short, short, attr, (hi << 16 | lo) if fat32 else lo, size, why))
        return entries

    def read_dir(self, first_cluster: int | None) -> tuple[list[DirEntry], str | None]:
        """Entries of the root (None) or of the directory at `first_cluster`, and a chain problem if any."""
        raw, problem, _other = self.dir_raw(first_cluster)
        return self.parse_dir(raw), problem

    def lookup(self, components: tuple[str, ...]) -> tuple[DirEntry | None, str]:
        """Find a path case-insensitively; (entry, the path as stored) or (None, how far it got)."""
        cluster: int | None = None
        stored = ""
        found: DirEntry | None = None
        for depth, name in enumerate(components):
            self.budget.where = stored or "\\"
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

    def near_misses(self, components: tuple[str, ...]) -> list[str]:
        """Long-name sequences in the last directory of `components` that EDK2 would not take: why each was
        refused, for the evidence of a file that is not found (its long name may be there, unusable)."""
        parent, _stored = self.lookup(components[:-1]) if len(components) > 1 else (None, "")
        if len(components) > 1 and (parent is None or not parent.is_dir):
            return []
        entries, _problem = self.read_dir(parent.first_cluster if parent else None)
        return [f"{e.short}: {e.lfn_problem}" for e in entries if e.lfn_problem][:3]

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
