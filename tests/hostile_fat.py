"""Small GPT / FAT32 / PE builders for `vmconform check`'s hostile-input tests and its structure-aware
fuzzer, written here from the specifications (UEFI 2.11 §5, fatgen103, PE/COFF), independent of
vmconform's image writer (vmconform/image/) so that a bug shared by writer and checker cannot hide.

Every builder records the byte ranges of the fields it wrote (`Field`), so that a fuzzer can twist one
field or one link of a valid tree and know what it touched.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PAGE = 4096
ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
DATA_TYPE = uuid.UUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
EOC = 0x0FFFFFFF


class PagedImage:
    """A sparse in-memory disk (4 KiB pages) that is a `vmconform.check.Source`: size, read, data_extents,
    allocated. Unwritten pages read as zeros and are not allocated."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pages: dict[int, bytearray] = {}

    def write(self, offset: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            index, start = divmod(offset + pos, PAGE)
            page = self.pages.setdefault(index, bytearray(PAGE))
            n = min(PAGE - start, len(data) - pos)
            page[start : start + n] = data[pos : pos + n]
            pos += n

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        n = min(n, self.size - offset)
        out = bytearray()
        pos = offset
        while pos < offset + n:
            index, start = divmod(pos, PAGE)
            take = min(PAGE - start, offset + n - pos)
            page = self.pages.get(index)
            out += page[start : start + take] if page is not None else bytes(take)
            pos += take
        return bytes(out)

    def data_extents(self) -> Iterator[tuple[int, int]]:
        run: list[int] = []
        for index in sorted(self.pages):
            if run and index != run[-1] + 1:
                yield run[0] * PAGE, min(len(run) * PAGE, self.size - run[0] * PAGE)
                run = []
            run.append(index)
        if run:
            yield run[0] * PAGE, min(len(run) * PAGE, self.size - run[0] * PAGE)

    @property
    def allocated(self) -> int:
        return len(self.pages) * PAGE

    def copy(self) -> PagedImage:
        other = PagedImage(self.size)
        other.pages = {i: bytearray(p) for i, p in self.pages.items()}
        return other

    def save(self, path: Path) -> Path:
        with path.open("wb") as f:
            f.truncate(self.size)
            for index, page in sorted(self.pages.items()):
                f.seek(index * PAGE)
                f.write(page[: max(0, min(PAGE, self.size - index * PAGE))])
        return path


@dataclass(frozen=True)
class Field:
    """One field the builders wrote: where, how wide, what kind (for the fuzzer's choice of values)."""

    name: str
    offset: int
    size: int
    kind: str = "int"  # int | lba | cluster | link | size | ordinal | checksum | attr | bytes | crc


@dataclass
class Layout:
    """What was built where: the fields, the GPT headers (to fix CRCs), the FAT volume's geometry."""

    fields: list[Field] = field(default_factory=list)
    gpt_headers: list[int] = field(default_factory=list)
    sector_size: int = 512
    fat: Fat32 | None = None


# --- GPT ------------------------------------------------------------------------------------------------


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def write_gpt(
    img: PagedImage,
    layout: Layout,
    partitions: list[tuple[int, int, uuid.UUID, str]],
    entries: int = 128,
    ss: int = 512,
) -> None:
    """Protective MBR, primary and backup GPT with `partitions` (first LBA, last LBA, type, name) on
    `ss`-byte sectors; every CRC right."""
    last = img.size // ss - 1
    mbr = bytearray(512)
    struct.pack_into("<B3sB3sII", mbr, 446, 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1, min(last, 0xFFFFFFFF))
    mbr[510:512] = b"\x55\xaa"
    img.write(0, bytes(mbr))
    layout.fields += [Field("mbr.type", 450, 1, "int"), Field("mbr.start", 454, 4, "lba"), Field("mbr.size", 458, 4)]
    array = bytearray(entries * 128)
    for i, (first, lastp, kind, name) in enumerate(partitions):
        struct.pack_into("<16s16sQQQ", array, i * 128, kind.bytes_le, uuid.UUID(int=i + 1).bytes_le, first, lastp, 0)
        array[i * 128 + 56 : i * 128 + 56 + 2 * len(name)] = name.encode("utf-16-le")
    array_blocks = -(-len(array) // ss)
    disk_guid = uuid.UUID(int=0x1234).bytes_le
    for my, alt, array_lba in ((1, last, 2), (last, 1, last - array_blocks)):
        header = bytearray(ss)
        struct.pack_into(
            "<8sIIIIQQQQ16sQIII", header, 0, b"EFI PART", 0x10000, 92, 0, 0, my, alt, 2 + array_blocks,
            last - 1 - array_blocks, disk_guid, array_lba, entries, 128, _crc(bytes(array)),
        )  # fmt: skip
        struct.pack_into("<I", header, 16, _crc(bytes(header[:92])))
        img.write(my * ss, bytes(header))
        img.write(array_lba * ss, bytes(array))
        base = my * ss
        layout.gpt_headers.append(base)
        layout.sector_size = ss
        layout.fields += [
            Field(f"gpt@{my}.{n}", base + off, size, kind)
            for n, off, size, kind in (
                ("revision", 8, 4, "int"), ("header_size", 12, 4, "size"), ("crc", 16, 4, "crc"),
                ("my_lba", 24, 8, "lba"), ("alternate", 32, 8, "lba"), ("first_usable", 40, 8, "lba"),
                ("last_usable", 48, 8, "lba"), ("entry_lba", 72, 8, "lba"), ("n_entries", 80, 4, "size"),
                ("entry_size", 84, 4, "size"), ("array_crc", 88, 4, "crc"),
            )
        ]  # fmt: skip
        for i in range(min(len(partitions), 8)):  # the fields of the first few entries are enough to twist
            at = array_lba * ss + i * 128
            layout.fields += [
                Field(f"gpt@{my}.entry{i}.type", at, 16, "bytes"),
                Field(f"gpt@{my}.entry{i}.first", at + 32, 8, "lba"),
                Field(f"gpt@{my}.entry{i}.last", at + 40, 8, "lba"),
                Field(f"gpt@{my}.entry{i}.attrs", at + 48, 8, "int"),
            ]


def fix_gpt_crcs(img: PagedImage, layout: Layout) -> None:
    """Recompute array and header CRCs of both headers, as far as their (maybe twisted) fields allow."""
    ss = layout.sector_size
    for base in layout.gpt_headers:
        header = bytearray(img.read(base, ss))
        size = struct.unpack_from("<I", header, 12)[0]
        array_lba, count, entry = struct.unpack_from("<QII", header, 72)
        if 0 < count * entry <= 1 << 20 and array_lba * ss + count * entry <= img.size:
            struct.pack_into("<I", header, 88, _crc(img.read(array_lba * ss, count * entry)))
        if 92 <= size <= ss:
            struct.pack_into("<I", header, 16, 0)
            struct.pack_into("<I", header, 16, _crc(bytes(header[:size])))
        img.write(base, bytes(header))


# --- FAT32 ----------------------------------------------------------------------------------------------


def short_name(name: str) -> bytes:
    base, _, ext = name.upper().partition(".")
    return base[:8].ljust(8).encode("ascii") + ext[:3].ljust(3).encode("ascii")


def lfn_checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def lfn_entries(long: str, short: bytes) -> list[bytes]:
    """The long-name entries for `long`, in on-disk order (the one flagged last first, ordinal 1 last)."""
    units = long.encode("utf-16-le")
    chunks = [units[i : i + 26] for i in range(0, len(units), 26)]
    if len(chunks[-1]) < 26:
        chunks[-1] = (chunks[-1] + b"\0\0").ljust(26, b"\xff")
    out = []
    checksum = lfn_checksum(short)
    for ordinal, chunk in enumerate(chunks, 1):
        rec = bytearray(32)
        rec[0] = ordinal | (0x40 if ordinal == len(chunks) else 0)
        rec[1:11], rec[14:26], rec[28:32] = chunk[0:10], chunk[10:22], chunk[22:26]
        rec[11], rec[13] = 0x0F, checksum
        out.append(bytes(rec))
    return out[::-1]


def dir_entry(short: bytes, attr: int, cluster: int, size: int) -> bytes:
    rec = bytearray(32)
    rec[0:11] = short
    rec[11] = attr
    struct.pack_into("<H", rec, 20, cluster >> 16)
    struct.pack_into("<HI", rec, 26, cluster & 0xFFFF, size)
    return bytes(rec)


class Fat32:
    """A FAT32 volume in `img` at byte `offset`: `bps`-byte sectors, `spc` sectors per cluster, two FATs.
    Directories grow by whole clusters; files are written contiguously. Fields land in `layout`."""

    def __init__(
        self, img: PagedImage, layout: Layout, offset: int, sectors: int, spc: int = 1, bps: int = 512
    ) -> None:
        self.img, self.layout, self.offset, self.spc, self.bps = img, layout, offset, spc, bps
        self.reserved, self.nfats = 32, 2
        fat_sectors = 1
        while True:
            clusters = (sectors - self.reserved - self.nfats * fat_sectors) // spc
            if fat_sectors * bps // 4 >= clusters + 2:
                break
            fat_sectors += 1
        self.fat_sectors, self.clusters, self.sectors = fat_sectors, clusters, sectors
        self.cluster_bytes = bps * spc
        self.next_free = 3
        self.slots: dict[int, tuple[list[int], int]] = {}  # dir first cluster -> (chain, next free slot)
        boot = bytearray(512)
        boot[0:3] = b"\xeb\x58\x90"
        boot[3:11] = b"HOSTILE "
        struct.pack_into("<HBHBHHBHHHII", boot, 11, bps, spc, self.reserved, 2, 0, 0, 0xF8, 0, 63, 255, 0, sectors)
        struct.pack_into("<IHHIHH", boot, 36, fat_sectors, 0, 0, 2, 1, 6)
        boot[66] = 0x29
        boot[67:82] = b"\x78\x56\x34\x12NO NAME    "
        boot[82:90] = b"FAT32   "
        boot[510:512] = b"\x55\xaa"
        img.write(offset, bytes(boot))
        img.write(offset + 6 * bps, bytes(boot))
        fsinfo = bytearray(512)
        struct.pack_into("<I", fsinfo, 0, 0x41615252)
        struct.pack_into("<III", fsinfo, 484, 0x61417272, 0xFFFFFFFF, 0xFFFFFFFF)
        struct.pack_into("<I", fsinfo, 508, 0xAA550000)
        img.write(offset + bps, bytes(fsinfo))
        for n, off, size, kind in (
            ("bpb.bytes_per_sector", 11, 2, "size"), ("bpb.spc", 13, 1, "int"), ("bpb.reserved", 14, 2, "size"),
            ("bpb.nfats", 16, 1, "int"), ("bpb.root_entries", 17, 2, "size"), ("bpb.total16", 19, 2, "size"),
            ("bpb.fat16", 22, 2, "size"), ("bpb.total32", 32, 4, "size"), ("bpb.fat32", 36, 4, "size"),
            ("bpb.root_cluster", 44, 4, "cluster"), ("bpb.fsinfo", 48, 2, "int"),
        ):  # fmt: skip
            layout.fields.append(Field(n, offset + off, size, kind))
        layout.fat = self
        self.set_fat(0, 0x0FFFFFF8)
        self.set_fat(1, EOC)
        self.set_fat(2, EOC)
        self.slots[2] = ([2], 0)

    @property
    def root(self) -> int:
        return 2

    def fat_offset(self, cluster: int, copy: int = 0) -> int:
        return self.offset + (self.reserved + copy * self.fat_sectors) * self.bps + 4 * cluster

    def set_fat(self, cluster: int, value: int, record: bool = True) -> None:
        for copy in range(self.nfats):
            self.img.write(self.fat_offset(cluster, copy), struct.pack("<I", value))
        if record and cluster >= 2:
            self.layout.fields.append(Field(f"fat[{cluster}]", self.fat_offset(cluster), 4, "link"))

    def cluster_offset(self, cluster: int) -> int:
        first_data = self.reserved + self.nfats * self.fat_sectors
        return self.offset + (first_data + (cluster - 2) * self.spc) * self.bps

    def alloc(self, n: int = 1, last: int = EOC) -> int:
        """`n` contiguous free clusters linked into a chain ending in `last` (end of chain); the first."""
        first = self.next_free
        if first + n > self.clusters + 2:
            raise ValueError("volume full")
        self.next_free += n
        if n > 64:  # a long chain: written in one go, its links not recorded one by one
            links = struct.pack(f"<{n}I", *range(first + 1, first + n), last)
            for copy in range(self.nfats):
                self.img.write(self.fat_offset(first, copy), links)
            self.layout.fields.append(Field(f"fat[{first}]", self.fat_offset(first), 4, "link"))
            return first
        for c in range(first, first + n):
            self.set_fat(c, c + 1 if c < first + n - 1 else last)
        return first

    def add(self, parent: int, records: list[bytes], name: str, record: bool = True) -> None:
        """Append directory records to the directory at `parent`, growing its chain when full (with
        `record` False their fields are not recorded: for directories of tens of thousands of entries)."""
        chain, slot = self.slots[parent]
        per_cluster = self.cluster_bytes // 32
        if not record:  # in bulk: the rest of the last cluster, then new contiguous clusters in one write
            room = per_cluster * len(chain) - slot
            data = b"".join(records)
            self.img.write(self.cluster_offset(chain[-1]) + 32 * (slot % per_cluster), data[: 32 * room])
            extra = -(-(len(records) - room) // per_cluster) if len(records) > room else 0
            if extra:
                first = self.alloc(extra)
                self.set_fat(chain[-1], first, record=False)
                chain += list(range(first, first + extra))
                self.img.write(self.cluster_offset(first), data[32 * room :])
            self.slots[parent] = (chain, slot + len(records))
            return
        for rec in records:
            if slot >= per_cluster * len(chain):
                new = self.alloc()
                self.set_fat(chain[-1], new)
                chain.append(new)
            at = self.cluster_offset(chain[slot // per_cluster]) + 32 * (slot % per_cluster)
            self.img.write(at, rec)
            kind = "ordinal" if rec[11] == 0x0F else "entry"
            self.layout.fields.append(Field(f"dir[{name}].{kind}@{slot}", at, 32, "bytes"))
            if rec[11] == 0x0F:
                self.layout.fields += [
                    Field(f"lfn[{name}].ordinal", at, 1, "ordinal"),
                    Field(f"lfn[{name}].checksum", at + 13, 1, "checksum"),
                ]
            else:
                self.layout.fields += [
                    Field(f"dirent[{name}].attr", at + 11, 1, "attr"),
                    Field(f"dirent[{name}].cluster_hi", at + 20, 2, "cluster"),
                    Field(f"dirent[{name}].cluster_lo", at + 26, 2, "cluster"),
                    Field(f"dirent[{name}].size", at + 28, 4, "size"),
                ]
            slot += 1
        self.slots[parent] = (chain, slot)

    def mkdir(self, parent: int, name: str, long: str | None = None) -> int:
        cluster = self.alloc()
        self.img.write(self.cluster_offset(cluster), bytes(self.cluster_bytes))
        self.slots[cluster] = ([cluster], 0)
        self.add(cluster, [dir_entry(b".          ", 0x10, cluster, 0)], ".")
        self.add(cluster, [dir_entry(b"..         ", 0x10, 0 if parent == 2 else parent, 0)], "..")
        short = short_name(name)
        self.add(parent, [*(lfn_entries(long, short) if long else []), dir_entry(short, 0x10, cluster, 0)], name)
        return cluster

    def add_file(self, parent: int, name: str, data: bytes, long: str | None = None, short: bytes | None = None) -> int:
        n = max(1, -(-len(data) // self.cluster_bytes)) if data else 0
        first = self.alloc(n) if n else 0
        if n:
            self.img.write(self.cluster_offset(first), data)
            self.layout.fields.append(Field(f"file[{name}]", self.cluster_offset(first), min(len(data), 512), "bytes"))
        raw = short or short_name(name)
        self.add(parent, [*(lfn_entries(long, raw) if long else []), dir_entry(raw, 0x20, first, len(data))], name)
        return first


# --- PE -------------------------------------------------------------------------------------------------

PE_FIELDS = {
    # name: (offset from the start of the file, size); e_lfanew is 0x40, the optional header at 0x58
    "e_lfanew": (0x3C, 4),
    "machine": (0x44, 2),
    "n_sections": (0x46, 2),
    "opt_size": (0x54, 2),
    "magic": (0x58, 2),
    "size_of_image": (0x58 + 56, 4),
    "size_of_headers": (0x58 + 60, 4),
    "subsystem": (0x58 + 68, 2),
    "n_dirs": (0x58 + 108, 4),
    "security_va": (0x58 + 112 + 32, 4),
    "security_size": (0x58 + 112 + 36, 4),
    "section_raw_size": (0x58 + 240 + 16, 4),
    "section_raw_ptr": (0x58 + 240 + 20, 4),
}


def pe_image(machine: int = 0xAA64, subsystem: int = 10, code: bytes = b"\x00\x00\x00\x14" * 128) -> bytes:
    """A PE32+ EFI application: DOS header, PE header at 0x40, 16 data directories, one .text section."""
    out = bytearray(0x200 + len(code))
    out[0:2] = b"MZ"
    struct.pack_into("<I", out, 0x3C, 0x40)
    out[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", out, 0x44, machine, 1, 0, 0, 0, 240, 0x22)
    opt = 0x58
    struct.pack_into("<HBBIIIII", out, opt, 0x20B, 0, 0, len(code), 0, 0, 0x1000, 0x1000)
    struct.pack_into("<QII", out, opt + 24, 0, 0x1000, 0x200)
    struct.pack_into("<II", out, opt + 56, 0x1000 + (-(-len(code) // 0x1000)) * 0x1000, 0x200)
    struct.pack_into("<HH", out, opt + 68, subsystem, 0)
    struct.pack_into("<I", out, opt + 108, 16)
    sec = opt + 240
    struct.pack_into("<8sIIII", out, sec, b".text", len(code), 0x1000, len(code), 0x200)
    struct.pack_into("<I", out, sec + 36, 0x60000020)
    out[0x200:] = code
    return bytes(out)


# --- a whole disk ---------------------------------------------------------------------------------------


def esp_disk(
    size: int = 64 << 20, boot: bytes | None = None, spc: int = 1, extra_files: int = 2, ss: int = 512
) -> tuple[PagedImage, Layout]:
    """A valid disk of `ss`-byte sectors: GPT with one ESP from 1 MiB to the end, FAT32 with
    \\EFI\\BOOT\\BOOTAA64.EFI (a long name on a short one), a few more files. `vmconform check` passes
    every rule on it."""
    img = PagedImage(size)
    layout = Layout()
    last = size // ss - 1
    first, end = (1 << 20) // ss, last - 1 - 16384 // ss
    write_gpt(img, layout, [(first, end, ESP_TYPE, "EFI system partition")], ss=ss)
    fat = Fat32(img, layout, first * ss, end - first + 1, spc, bps=ss)
    efi = fat.mkdir(fat.root, "EFI")
    bootdir = fat.mkdir(efi, "BOOT")
    fat.add_file(bootdir, "BOOTAA64.EFI", boot if boot is not None else pe_image(), long="BootAA64.efi")
    for i in range(extra_files):
        fat.add_file(fat.root, f"FILE{i}.TXT", f"file {i}\n".encode() * (40 * (i + 1)), long=f"a file number {i}.txt")
    return img, layout
