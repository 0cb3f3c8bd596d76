"""The image rules `vmconform check` applies, one row each (VM spec v1.0 "Image Format" and "Virtual
Firmware" as catalogued in shared/spec/clauses.md §1.2: IMG-1..IMG-5, FW-6, FW-8; UEFI 2.11 §5.2.3
protective MBR, §5.3 GPT, §13.3 FAT, §3.5.1.1 removable-media boot file; PE/COFF headers).

Every read is bounded and every parse tolerates short or inconsistent data, so any input yields rows.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from vmconform.check.fatfs import Bpb, DirEntry, FatFs
from vmconform.check.source import Source

PASS, FAIL, SKIP = "pass", "fail", "skip"

ESP_GUID = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
NV_DATA_FV_GUID = uuid.UUID("FFF12B8D-7696-4C8B-A985-2747075B4F50")
VARIABLE_STORE_GUIDS = (
    uuid.UUID("AAF32C78-947B-439A-A180-2E144EC37792"),  # gEfiAuthenticatedVariableGuid
    uuid.UUID("DDCF3616-3275-4164-98B6-FE85707FFE7D"),  # gEfiVariableGuid
)
UBOOT_VAR_MAGIC = b"UbEfiVa\x01"  # U-Boot's ubootefi.var file (EFI_VAR_FILE_MAGIC, little-endian)
BOOT_FILES = {"BOOTAA64.EFI": (0xAA64, 0x20B, "aarch64"), "BOOTARM.EFI": (0x01C2, 0x10B, "arm")}
MAX_ARRAY_BYTES = 16 << 20
MAX_BOOT_FILE = 64 << 20
MAX_SCAN_BYTES = 1 << 30
_SCAN_CHUNK = 4 << 20


@dataclass(frozen=True)
class CheckDef:
    id: str
    clause: str
    title: str


CHECK_DEFS: tuple[CheckDef, ...] = (
    CheckDef("mbr.signature", "IMG-1", "LBA 0 ends with the 55 AA signature"),
    CheckDef("mbr.protective", "IMG-1", "protective MBR: one 0xEE record from LBA 1, the others zero"),
    CheckDef("mbr.size", "IMG-1", "the 0xEE record covers the disk (SizeInLBA last LBA, or 0xFFFFFFFF)"),
    CheckDef("gpt.primary", "IMG-1", "primary header at LBA 1: signature, revision 1.0, HeaderSize, CRC32, MyLBA 1"),
    CheckDef("gpt.primary.lbas", "IMG-1", "primary AlternateLBA is the last LBA"),
    CheckDef("gpt.primary.layout", "IMG-1", "entry size and count, entry array and usable LBAs consistent"),
    CheckDef("gpt.primary.array", "IMG-1", "primary entry array CRC32"),
    CheckDef("gpt.backup", "IMG-1", "backup header at the last LBA: valid, MyLBA last, AlternateLBA 1"),
    CheckDef("gpt.backup.mirror", "IMG-1", "backup header mirrors the primary"),
    CheckDef("gpt.backup.array", "IMG-1", "backup entry array CRC32 and same entries as the primary"),
    CheckDef("gpt.partitions.range", "IMG-1", "partitions lie within FirstUsableLBA..LastUsableLBA"),
    CheckDef("gpt.partitions.overlap", "IMG-1", "partitions do not overlap"),
    CheckDef("esp.count", "IMG-2", "exactly one partition has the ESP type GUID"),
    CheckDef("esp.blockio", "IMG-2", "the ESP does not have attribute bit 1 (No Block IO Protocol)"),
    CheckDef("esp.fat.boot_sector", "IMG-3", "the ESP's boot sector and BPB are consistent"),
    CheckDef("esp.fat.type", "IMG-3", "the ESP is FAT32: FATSz16 0, FATSz32 set, >= 65525 clusters"),
    CheckDef("esp.fat.fsinfo", "IMG-3", "the FAT32 FSInfo sector is present"),
    CheckDef("esp.fat.tree", "IMG-3", "the directory tree is a tree (no loops)"),
    CheckDef("esp.fat.chains", "IMG-3", "cluster chains end, fit their files and are not shared"),
    CheckDef("boot_file.present", "IMG-4", "\\EFI\\BOOT\\BOOTAA64.EFI or BOOTARM.EFI (any case)"),
    CheckDef("boot_file.pe", "IMG-5", "the boot file is a PE/COFF image (MZ, PE signature, headers in the file)"),
    CheckDef("boot_file.machine", "IMG-5", "machine and optional-header magic match the file name"),
    CheckDef("boot_file.subsystem", "IMG-5", "Subsystem 10 (EFI application)"),
    CheckDef("boot_file.sections", "IMG-5", "every section's raw data lies inside the file"),
    CheckDef("image.vars_store", "FW-6", "no UEFI variable store inside the image"),
    CheckDef("image.firmware", "FW-8", "no firmware volume (_FVH) inside the image"),
)
CHECKS: dict[str, CheckDef] = {c.id: c for c in CHECK_DEFS}


@dataclass(frozen=True)
class Row:
    id: str
    verdict: str
    evidence: str

    @property
    def clause(self) -> str:
        return CHECKS[self.id].clause


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _guid(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes_le=raw[:16].ljust(16, b"\0"))


@dataclass(frozen=True)
class GptHeader:
    lba: int
    signature: bytes
    revision: int
    header_size: int
    header_crc: int
    crc_ok: bool
    reserved: int
    my_lba: int
    alternate_lba: int
    first_usable: int
    last_usable: int
    disk_guid: uuid.UUID
    entry_lba: int
    n_entries: int
    entry_size: int
    array_crc: int

    @classmethod
    def read(cls, src: Source, lba: int, ss: int) -> GptHeader | None:
        block = src.read(lba * ss, ss)
        if len(block) < 92:
            return None
        fields = struct.unpack_from("<8sIIII QQQQ 16s QIII", block)
        size = fields[2]
        crc_ok = (
            92 <= size <= len(block)
            and (zlib.crc32(block[:16] + b"\0\0\0\0" + block[20:size]) & 0xFFFFFFFF) == fields[3]
        )
        return cls(
            lba,
            fields[0],
            fields[1],
            size,
            fields[3],
            crc_ok,
            fields[4],
            fields[5],
            fields[6],
            fields[7],
            fields[8],
            _guid(fields[9]),
            fields[10],
            fields[11],
            fields[12],
            fields[13],
        )

    def problems(self, ss: int, my_lba: int) -> list[str]:
        if self.signature != b"EFI PART":
            return [f"no 'EFI PART' signature (found {self.signature!r})"]
        out = []
        if self.revision != 0x00010000:
            out.append(f"Revision {self.revision:#010x} (want 0x00010000)")
        if not 92 <= self.header_size <= ss:
            out.append(f"HeaderSize {self.header_size} outside 92..{ss}")
        elif not self.crc_ok:
            out.append(f"HeaderCRC32 {self.header_crc:#010x} does not match the header")
        if self.reserved:
            out.append(f"Reserved field {self.reserved:#x} (must be 0)")
        if self.my_lba != my_lba:
            out.append(f"MyLBA {self.my_lba} (want {my_lba})")
        return out

    @property
    def array_bytes(self) -> int:
        return self.n_entries * self.entry_size

    def array_problems(self) -> list[str]:
        """What keeps the entry array from being read at all."""
        out = []
        size = self.entry_size
        if size < 128 or size % 128 or (size // 128) & (size // 128 - 1):
            out.append(f"SizeOfPartitionEntry {size} is not 128 * 2^n")
        if self.n_entries == 0:
            out.append("NumberOfPartitionEntries is 0")
        if self.array_bytes > MAX_ARRAY_BYTES:
            out.append(f"an entry array of {self.array_bytes} bytes (over {MAX_ARRAY_BYTES >> 20} MiB) is not read")
        return out

    def layout_problems(self, ss: int, last_lba: int, primary: bool) -> list[str]:
        out = self.array_problems()
        blocks = -(-max(self.array_bytes, 1) // ss)
        reserve = -(-16384 // ss)
        if not self.first_usable <= self.last_usable < last_lba:
            out.append(
                f"usable LBAs {self.first_usable}..{self.last_usable} invalid on a disk whose last LBA is {last_lba}"
            )
        if primary:
            if not 2 <= self.entry_lba or self.entry_lba + blocks > self.first_usable:
                out.append(
                    f"entry array at LBA {self.entry_lba} ({blocks} blocks) not between LBA 2 and "
                    f"FirstUsableLBA {self.first_usable}"
                )
            if self.first_usable < 2 + reserve:
                out.append(f"FirstUsableLBA {self.first_usable} leaves less than 16 KiB for the entry array")
        else:
            if self.entry_lba <= self.last_usable or self.entry_lba + blocks > self.my_lba:
                out.append(
                    f"entry array at LBA {self.entry_lba} ({blocks} blocks) not between LastUsableLBA "
                    f"{self.last_usable} and the header"
                )
            if self.my_lba - self.last_usable - 1 < reserve:
                out.append(f"LastUsableLBA {self.last_usable} leaves less than 16 KiB for the backup entry array")
        return out

    def read_array(self, src: Source, ss: int) -> bytes | None:
        if self.array_problems():
            return None
        data = src.read(self.entry_lba * ss, self.array_bytes)
        return data if len(data) == self.array_bytes else None

    def array_ok(self, array: bytes | None) -> bool:
        return array is not None and zlib.crc32(array) & 0xFFFFFFFF == self.array_crc


@dataclass(frozen=True)
class GptEntry:
    index: int
    type_guid: uuid.UUID
    first: int
    last: int
    attributes: int
    name: str


def _entries(array: bytes, size: int) -> list[GptEntry]:
    out: list[GptEntry] = []
    if size < 128:
        return out
    for i in range(len(array) // size):
        raw = array[i * size : i * size + 128]
        type_guid = _guid(raw[:16])
        if type_guid.int == 0:
            continue
        first, last, attrs = struct.unpack_from("<QQQ", raw, 32)
        name = raw[56:128].decode("utf-16-le", errors="replace").split("\0", 1)[0]
        out.append(GptEntry(i + 1, type_guid, first, last, attrs, name))
    return out


@dataclass(frozen=True)
class Volume:
    """A FAT volume candidate: where it starts and ends, and what it is."""

    label: str
    first_lba: int
    last_lba: int
    is_esp: bool


@dataclass(frozen=True)
class CheckResult:
    rows: tuple[Row, ...]
    sector_size: int
    sector_size_note: str


def detect_sector_size(src: Source) -> tuple[int, str]:
    for ss in (512, 4096, 1024, 2048):
        if src.read(ss, 8) == b"EFI PART":
            return ss, f"GPT header at byte {ss}"
    for ss in (512, 4096, 1024, 2048):
        if src.size >= 2 * ss and src.read((src.size // ss - 1) * ss, 8) == b"EFI PART":
            return ss, f"backup GPT header in the last {ss}-byte block"
    bps = struct.unpack("<H", src.read(11, 2).ljust(2, b"\0"))[0]
    if src.read(510, 2) == b"\x55\xaa" and bps in (1024, 2048, 4096) and src.read(0, 1) in (b"\xeb", b"\xe9"):
        return bps, "BytsPerSec of the FAT boot sector at LBA 0"
    return 512, "no GPT found; assumed"


class Checker:
    def __init__(self, src: Source, arch: str | None = None, sector_size: int | None = None) -> None:
        self.src = src
        self.arch = arch
        if sector_size is None:
            self.ss, self.ss_note = detect_sector_size(src)
        else:
            self.ss, self.ss_note = sector_size, "given"
        self.last_lba = max(src.size // self.ss - 1, 0)
        self.rows: dict[str, Row] = {}

    def put(self, check_id: str, verdict: str, evidence: str) -> None:
        self.rows.setdefault(check_id, Row(check_id, verdict, evidence))

    def rule(self, check_id: str, problems: list[str], ok: str) -> bool:
        if problems:
            self.put(check_id, FAIL, "; ".join(problems))
            return False
        self.put(check_id, PASS, ok)
        return True

    def skip(self, ids: tuple[str, ...], why: str) -> None:
        for check_id in ids:
            self.put(check_id, SKIP, why)

    def run(self) -> CheckResult:
        self._mbr()
        table = self._gpt()
        volume = self._esp(table)
        self._filesystem(volume)
        self._scan()
        rows = tuple(self.rows.get(c.id, Row(c.id, SKIP, "not reached")) for c in CHECK_DEFS)
        return CheckResult(rows, self.ss, self.ss_note)

    # -- MBR --------------------------------------------------------------------------------------

    def _mbr(self) -> None:
        lba0 = self.src.read(0, 512).ljust(512, b"\0")
        sig = lba0[510:512]
        self.rule("mbr.signature", [] if sig == b"\x55\xaa" else [f"bytes 510-511 are {sig.hex(' ')}"], "55 AA")
        records = [struct.unpack_from("<B3sB3sII", lba0, 446 + 16 * i) for i in range(4)]
        used = [(i, r) for i, r in enumerate(records) if lba0[446 + 16 * i : 462 + 16 * i] != bytes(16)]
        protective = [(i, r) for i, r in used if r[2] == 0xEE and r[4] == 1]
        self.mbr_records = [(i, r[2], r[4], r[5]) for i, r in used if r[2] != 0xEE]
        if len(protective) == 1 and len(used) == 1:
            i, r = protective[0]
            note = f" (BootIndicator {r[0]:#04x}, ignored by UEFI)" if r[0] else ""
            self.put("mbr.protective", PASS, f"record {i + 1}: OSType 0xEE, StartingLBA 1{note}")
            want = min(self.last_lba, 0xFFFFFFFF)
            self.rule(
                "mbr.size",
                [] if r[5] == want else [f"SizeInLBA {r[5]} (want {want}: the last LBA, capped at 0xFFFFFFFF)"],
                f"SizeInLBA {r[5]:#x}",
            )
            return
        if not used:
            why = "no partition records"
        elif protective:
            others = ", ".join(f"{r[2]:#04x}" for _i, r in used if r[2] != 0xEE)
            why = f"hybrid MBR: the 0xEE record shares LBA 0 with records of type {others}"
        else:
            why = "no 0xEE record with StartingLBA 1; records: " + ", ".join(
                f"{r[2]:#04x} at LBA {r[4]}" for _i, r in used
            )
        self.put("mbr.protective", FAIL, why)
        self.skip(("mbr.size",), "no protective MBR")

    # -- GPT --------------------------------------------------------------------------------------

    def _gpt(self) -> tuple[GptHeader, list[GptEntry], str] | None:
        ss, last = self.ss, self.last_lba
        primary = GptHeader.read(self.src, 1, ss)
        p_ok = primary is not None and self.rule(
            "gpt.primary", primary.problems(ss, 1), f"EFI PART rev 1.0, HeaderSize {primary.header_size}, CRC ok"
        )
        if primary is None:
            self.put("gpt.primary", FAIL, "the image ends before LBA 1")
        p_array: bytes | None = None
        p_usable = False
        if p_ok and primary is not None:
            self.rule(
                "gpt.primary.lbas",
                [] if primary.alternate_lba == last else [f"AlternateLBA {primary.alternate_lba}, last LBA {last}"],
                f"AlternateLBA {last}",
            )
            self.rule(
                "gpt.primary.layout",
                primary.layout_problems(ss, last, primary=True),
                f"{primary.n_entries} entries of {primary.entry_size} bytes at LBA {primary.entry_lba}; "
                f"usable LBAs {primary.first_usable}..{primary.last_usable}",
            )
            readable = not primary.array_problems()
            p_array = primary.read_array(self.src, ss) if readable else None
            if p_array is None and readable:
                self.put("gpt.primary.array", FAIL, "the entry array lies past the end of the image")
            elif p_array is not None:
                p_usable = self.rule(
                    "gpt.primary.array",
                    []
                    if primary.array_ok(p_array)
                    else [
                        f"PartitionEntryArrayCRC32 {primary.array_crc:#010x}, computed "
                        f"{zlib.crc32(p_array) & 0xFFFFFFFF:#010x}"
                    ],
                    f"CRC32 {primary.array_crc:#010x}",
                )
            else:
                self.skip(("gpt.primary.array",), "the primary entry array cannot be located")
        else:
            self.skip(("gpt.primary.lbas", "gpt.primary.layout", "gpt.primary.array"), "no valid primary header")

        backup = GptHeader.read(self.src, last, ss) if last >= 1 else None
        b_problems = ["the image has no block after LBA 0"] if backup is None else backup.problems(ss, last)
        if backup is not None and not b_problems:
            if backup.alternate_lba != 1:
                b_problems.append(f"AlternateLBA {backup.alternate_lba} (want 1)")
            b_problems += backup.layout_problems(ss, last, primary=False)
        if backup is not None and backup.signature != b"EFI PART" and p_ok and primary is not None:
            if primary.alternate_lba != last:
                b_problems = [f"no header at the last LBA {last} (the primary names LBA {primary.alternate_lba})"]
        b_ok = self.rule("gpt.backup", b_problems, f"at LBA {last}, AlternateLBA 1, CRC ok")
        b_array: bytes | None = None
        b_usable = False
        if b_ok and backup is not None:
            if p_ok and primary is not None:
                diffs = [
                    f"{name} {a} vs {b}"
                    for name, a, b in (
                        ("DiskGUID", primary.disk_guid, backup.disk_guid),
                        ("FirstUsableLBA", primary.first_usable, backup.first_usable),
                        ("LastUsableLBA", primary.last_usable, backup.last_usable),
                        ("NumberOfPartitionEntries", primary.n_entries, backup.n_entries),
                        ("SizeOfPartitionEntry", primary.entry_size, backup.entry_size),
                        ("PartitionEntryArrayCRC32", f"{primary.array_crc:#010x}", f"{backup.array_crc:#010x}"),
                    )
                    if a != b
                ]
                self.rule(
                    "gpt.backup.mirror",
                    ["primary/backup differ: " + ", ".join(diffs)] if diffs else [],
                    "same DiskGUID, usable LBAs, entries and array CRC",
                )
            else:
                self.skip(("gpt.backup.mirror",), "no valid primary header to compare with")
            b_array = backup.read_array(self.src, ss)
            problems = []
            if b_array is None:
                problems.append("the backup entry array lies past the end of the image")
            elif not backup.array_ok(b_array):
                problems.append(
                    f"PartitionEntryArrayCRC32 {backup.array_crc:#010x}, computed "
                    f"{zlib.crc32(b_array) & 0xFFFFFFFF:#010x}"
                )
            elif p_usable and p_array is not None and p_array != b_array:
                problems.append("the backup entries differ from the primary's")
            b_usable = self.rule("gpt.backup.array", problems, f"CRC32 {backup.array_crc:#010x}, same entries")
        else:
            self.skip(("gpt.backup.mirror", "gpt.backup.array"), "no valid backup header")

        if p_usable and primary is not None and p_array is not None:
            return primary, _entries(p_array, primary.entry_size), "primary"
        if b_usable and backup is not None and b_array is not None:
            return backup, _entries(b_array, backup.entry_size), "backup"
        return None

    # -- partitions and the ESP ---------------------------------------------------------------------

    def _esp(self, table: tuple[GptHeader, list[GptEntry], str] | None) -> Volume | None:
        candidates: list[Volume] = []
        if table is None:
            self.skip(("gpt.partitions.range", "gpt.partitions.overlap"), "no valid GPT")
            self.skip(("esp.blockio",), "no GPT")
            for i, os_type, start, size in getattr(self, "mbr_records", []):
                if size:
                    candidates.append(
                        Volume(f"MBR partition {i + 1} (type {os_type:#04x})", start, start + size - 1, os_type == 0xEF)
                    )
            candidates.append(Volume("the whole disk (no partition table)", 0, self.last_lba, False))
            volume = self._pick(candidates)
            where = f"; the FAT volume checked is {volume.label}" if volume else ""
            self.put("esp.count", FAIL, f"no valid GPT, so no partition with the ESP type GUID{where}")
            return volume
        header, entries, which = table
        bad_range = [
            f"#{e.index} LBA {e.first}..{e.last}"
            for e in entries
            if not header.first_usable <= e.first <= e.last <= header.last_usable
        ]
        self.rule(
            "gpt.partitions.range",
            [f"outside usable LBAs {header.first_usable}..{header.last_usable}: " + ", ".join(bad_range)]
            if bad_range
            else [],
            f"{_n(len(entries), 'partition')} inside {header.first_usable}..{header.last_usable}",
        )
        ordered = sorted(entries, key=lambda e: (e.first, e.last))
        overlaps = [
            f"#{a.index} ({a.first}..{a.last}) and #{b.index} ({b.first}..{b.last})"
            for a, b in zip(ordered, ordered[1:], strict=False)
            if b.first <= a.last
        ][:5]
        self.rule(
            "gpt.partitions.overlap",
            ["overlapping: " + ", ".join(overlaps)] if overlaps else [],
            "no overlaps" + (f" (using the {which} GPT)" if which == "backup" else ""),
        )
        esps = [e for e in entries if e.type_guid == ESP_GUID]
        for e in esps:
            candidates.append(Volume(f"partition {e.index} ({e.name or 'ESP'})", e.first, e.last, True))
        for e in entries:
            if e.type_guid != ESP_GUID:
                candidates.append(
                    Volume(f"partition {e.index} ({e.name or e.type_guid}, not an ESP)", e.first, e.last, False)
                )
        volume = self._pick(candidates)
        if len(esps) == 1:
            self.put("esp.count", PASS, f"partition {esps[0].index}, LBA {esps[0].first}..{esps[0].last}")
        elif not esps:
            where = f"; the FAT volume checked is {volume.label}" if volume else ""
            self.put("esp.count", FAIL, f"no partition has the ESP type GUID{where}")
        else:
            self.put("esp.count", FAIL, "ESP type GUID on partitions " + ", ".join(str(e.index) for e in esps))
        if esps:
            esp = esps[0]
            self.rule(
                "esp.blockio",
                [
                    f"partition {esp.index} attributes {esp.attributes:#x}: bit 1 set, firmware "
                    "must not produce Block I/O for it"
                ]
                if esp.attributes & 2
                else [],
                f"attributes {esp.attributes:#x}",
            )
        else:
            self.skip(("esp.blockio",), "no ESP")
        return volume

    def _bpb_at(self, volume: Volume) -> Bpb | None:
        return Bpb.parse(self.src.read(volume.first_lba * self.ss, 512))

    def _pick(self, candidates: list[Volume]) -> Volume | None:
        """The first FAT volume holding a boot file; else the first ESP; else the first valid FAT volume."""
        usable = []
        for vol in candidates[:64]:
            bpb = self._bpb_at(vol)
            if bpb is not None and not bpb.problems():
                usable.append((vol, bpb))
        for vol, bpb in usable:
            fs = FatFs(self.src, vol.first_lba * self.ss, bpb)
            if any(fs.lookup(("EFI", "BOOT", name))[0] is not None for name in self._boot_names()):
                return vol
        esp = next((v for v in candidates if v.is_esp), None)
        if esp is not None:
            return esp
        return usable[0][0] if usable else None

    def _boot_names(self) -> list[str]:
        return [n for n, (_m, _mg, arch) in BOOT_FILES.items() if self.arch in (None, arch)]

    # -- the file system and the boot file -----------------------------------------------------------

    _FS_ROWS = ("esp.fat.type", "esp.fat.fsinfo", "esp.fat.tree", "esp.fat.chains", "boot_file.present")
    _PE_ROWS = ("boot_file.pe", "boot_file.machine", "boot_file.subsystem", "boot_file.sections")

    def _filesystem(self, volume: Volume | None) -> None:
        if volume is None:
            self.skip(("esp.fat.boot_sector",) + self._FS_ROWS + self._PE_ROWS, "no ESP or other FAT volume found")
            return
        bpb = self._bpb_at(volume)
        problems = ["the volume's first sector lies past the end of the image"] if bpb is None else bpb.problems()
        if bpb is not None and not problems:
            part_sectors = (volume.last_lba - volume.first_lba + 1) * self.ss // bpb.bytes_per_sector
            if bpb.total_sectors > part_sectors:
                problems.append(f"TotSec {bpb.total_sectors} exceeds the {part_sectors} sectors of {volume.label}")
        if not self.rule(
            "esp.fat.boot_sector",
            [f"{volume.label}: " + "; ".join(problems)] if problems else [],
            f"{volume.label}: {bpb.bytes_per_sector if bpb else 0}-byte sectors, "
            f"{bpb.cluster_bytes if bpb else 0}-byte clusters",
        ):
            self.skip(self._FS_ROWS + self._PE_ROWS, "the boot sector is unusable")
            return
        assert bpb is not None
        count = bpb.cluster_count
        type_problems = []
        if bpb.fat_size_16:
            type_problems.append(f"FATSz16 {bpb.fat_size_16} (a FAT12/16 BPB)")
        if count < 65525:
            type_problems.append(f"{count} clusters make it FAT{bpb.fat_type} (FAT32 needs >= 65525)")
        self.rule("esp.fat.type", type_problems, f"FAT32, {count} clusters")
        fs = FatFs(self.src, volume.first_lba * self.ss, bpb)
        if bpb.structure == 32:
            ok, why = fs.fs_info()
            self.rule("esp.fat.fsinfo", [] if ok else [why], why)
        else:
            self.put("esp.fat.fsinfo", SKIP, f"FAT{bpb.structure} has no FSInfo")
        walk = fs.walk()
        more = " (stopped at the walk's limits)" if walk.truncated else ""
        self.rule(
            "esp.fat.tree",
            walk.tree_problems[:3],
            f"{_n(len(walk.directories), 'directory', 'directories')}, {_n(len(walk.files), 'file')}{more}",
        )
        self.rule(
            "esp.fat.chains",
            walk.chain_problems[:3],
            f"the chains of {_n(len(walk.files), 'file')} end where they should",
        )
        self._boot_file(fs)

    def _boot_file(self, fs: FatFs) -> None:
        found: list[tuple[str, str, DirEntry]] = []
        for name in self._boot_names():
            entry, stored = fs.lookup(("EFI", "BOOT", name))
            if entry is not None and not entry.is_dir:
                found.append((name, stored, entry))
        if not found:
            want = " or ".join(f"\\EFI\\BOOT\\{n}" for n in self._boot_names())
            self.put("boot_file.present", FAIL, f"no {want} (in any case)")
            self.skip(self._PE_ROWS, "no boot file")
            return
        self.put("boot_file.present", PASS, ", ".join(f"{stored} ({e.size} bytes)" for _n, stored, e in found))
        results: dict[str, list[str]] = {k: [] for k in self._PE_ROWS}
        notes: dict[str, list[str]] = {k: [] for k in self._PE_ROWS}
        for name, stored, entry in found:
            data, problem = fs.read_file(entry, MAX_BOOT_FILE)
            if data is None:
                for k in self._PE_ROWS:
                    results[k].append(f"{stored}: unreadable ({problem})")
                continue
            _pe_rows(name, stored, data, results, notes)
        for k in self._PE_ROWS:
            if results[k]:
                self.put(k, FAIL, "; ".join(results[k]))
            elif notes[k]:
                self.put(k, PASS, "; ".join(notes[k]))
            else:
                self.put(k, SKIP, "not a PE image")

    # -- firmware volumes and variable stores ---------------------------------------------------------

    def _scan(self) -> None:
        fv: list[str] = []
        stores: list[str] = []
        scanned = 0
        capped = False
        for start, length in self.src.data_extents():
            pos, end = start, start + length
            while pos < end:
                if scanned >= MAX_SCAN_BYTES:
                    capped = True
                    break
                n = min(_SCAN_CHUNK, end - pos)
                chunk = self.src.read(pos, n + 64)
                if not chunk:
                    break
                scanned += n
                _find_stores(self.src, pos, chunk[: n + 64], fv, stores)
                pos += n
            if capped or len(fv) + len(stores) > 16:
                break
        cap = f" (stopped after {MAX_SCAN_BYTES >> 20} MiB of data)" if capped else ""
        amount = f"{scanned / 2**20:.1f} MiB" if scanned >= 1 << 20 else f"{-(-scanned // 1024)} KiB"
        scanned_note = f"scanned {amount} of allocated data{cap}"
        self.rule("image.vars_store", sorted(set(stores))[:3], f"no variable store; {scanned_note}")
        self.rule("image.firmware", sorted(set(fv))[:3], f"no firmware volume; {scanned_note}")


def _find_stores(src: Source, base: int, chunk: bytes, fv: list[str], stores: list[str]) -> None:
    def each(needle: bytes, found: Callable[[int], None]) -> None:
        pos = chunk.find(needle)
        hits = 0
        while pos >= 0 and hits < 64:
            found(base + pos)
            hits += 1
            pos = chunk.find(needle, pos + 1)

    def fvh(at: int) -> None:
        start = at - 40
        header = src.read(start, 56)
        if start < 0 or len(header) < 56:
            return
        length = struct.unpack_from("<H", header, 48)[0]
        if not 56 <= length <= 4096 or length % 2:
            return
        full = src.read(start, length)
        if len(full) < length or sum(struct.unpack(f"<{length // 2}H", full)) & 0xFFFF:
            return
        guid = _guid(header[16:32])
        if guid == NV_DATA_FV_GUID:
            stores.append(f"UEFI variable store firmware volume at byte {start}")
        else:
            fv.append(f"firmware volume (file system {guid}) at byte {start}")

    def var_header(at: int) -> None:
        rest = src.read(at + 16, 6)
        if len(rest) == 6 and rest[4] == 0x5A and rest[5] == 0xFE:
            stores.append(f"variable store header at byte {at}")

    def uboot(at: int) -> None:
        stores.append(f"U-Boot variable file (ubootefi.var) at byte {at - 8}")

    each(b"_FVH", fvh)
    for guid in VARIABLE_STORE_GUIDS:
        each(guid.bytes_le, var_header)
    each(UBOOT_VAR_MAGIC, uboot)


def _pe_rows(name: str, stored: str, data: bytes, results: dict[str, list[str]], notes: dict[str, list[str]]) -> None:
    want_machine, want_magic, _arch = BOOT_FILES[name]
    pe = results["boot_file.pe"]
    if len(data) == 0:
        pe.append(f"{stored} is empty")
        return
    if len(data) < 64 or data[:2] != b"MZ":
        pe.append(f"{stored}: no MZ header (starts {data[:4].hex(' ')})")
        return
    (lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if lfanew + 24 > len(data) or data[lfanew : lfanew + 4] != b"PE\0\0":
        pe.append(f"{stored}: no PE signature at e_lfanew {lfanew:#x}")
        return
    machine, n_sections = struct.unpack_from("<HH", data, lfanew + 4)
    (opt_size,) = struct.unpack_from("<H", data, lfanew + 20)
    opt = lfanew + 24
    if opt_size < 70 or opt + opt_size > len(data):
        pe.append(f"{stored}: optional header ({opt_size} bytes) missing or past the end of the file")
        return
    (magic,) = struct.unpack_from("<H", data, opt)
    (subsystem,) = struct.unpack_from("<H", data, opt + 68)
    notes["boot_file.pe"].append(f"{stored}: PE at {lfanew:#x}")
    if (machine, magic) == (want_machine, want_magic):
        notes["boot_file.machine"].append(f"{stored}: machine {machine:#06x}, magic {magic:#x}")
    else:
        results["boot_file.machine"].append(
            f"{stored}: machine {machine:#06x} magic {magic:#x} (want {want_machine:#06x} {want_magic:#x})"
        )
    if subsystem == 10:
        notes["boot_file.subsystem"].append(f"{stored}: subsystem 10")
    else:
        results["boot_file.subsystem"].append(f"{stored}: subsystem {subsystem} (want 10)")
    table = opt + opt_size
    if n_sections > 96 or table + 40 * n_sections > len(data):
        results["boot_file.sections"].append(f"{stored}: the section table ({n_sections} sections) is past the end")
        return
    bad = []
    for i in range(n_sections):
        raw_size, raw_ptr = struct.unpack_from("<II", data, table + 40 * i + 16)
        if raw_size and raw_ptr + raw_size > len(data):
            sec = data[table + 40 * i : table + 40 * i + 8].rstrip(b"\0").decode("latin-1")
            bad.append(f"{sec or i} needs bytes {raw_ptr:#x}..{raw_ptr + raw_size:#x}, the file has {len(data):#x}")
    if bad:
        results["boot_file.sections"].append(f"{stored}: " + "; ".join(bad))
    else:
        notes["boot_file.sections"].append(f"{stored}: {_n(n_sections, 'section')} inside the file")
