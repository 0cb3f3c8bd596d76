"""The image rules `vmconform check` applies, one row each (VM spec v1.0 "Image Format" and "Virtual
Firmware" as catalogued in shared/spec/clauses.md §1.2: IMG-1..IMG-5, FW-6, FW-8; UEFI 2.11 §5.2.3
protective MBR, §5.3 GPT, §13.3 FAT, §3.5.1.1 removable-media boot file; PE/COFF headers). The MBR and
GPT rules are in rules_disk.py, the PE checks in pe.py, the FW-6/FW-8 scan in scan.py.

Every read is bounded and every parse tolerates short or inconsistent data, so any input yields rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from vmconform.check.budget import Budget, BudgetExceeded, Limits
from vmconform.check.fatfs import Bpb, DirEntry, FatFs
from vmconform.check.fatwalk import walk
from vmconform.check.gpt import GptEntry, GptHeader, detect_sector_size
from vmconform.check.pe import BOOT_FILES, pe_rows
from vmconform.check.rows import CHECK_DEFS, CHECKS, ERROR, FAIL, PASS, SKIP, CheckDef, Row
from vmconform.check.rows import n as _n
from vmconform.check.rules_disk import DiskRules
from vmconform.check.scan import scan, scan_limit
from vmconform.check.source import Source

__all__ = ["CHECKS", "CHECK_DEFS", "ERROR", "FAIL", "PASS", "SKIP", "CheckDef", "Checker", "Row"]

ESP_GUID = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
MAX_BOOT_FILE = 64 << 20
MAX_CANDIDATES = 64
"""Partitions of each kind (ESP, other) looked at for a FAT volume: a GPT may list 131,072."""


def _few(items: list[str], n: int = 8) -> str:
    """The first `n` items, and how many more."""
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


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


class Checker(DiskRules):
    """Applies every rule to one image; `run()` gives a row per rule, whatever the image holds."""

    def __init__(self, src: Source, arch: str | None = None, sector_size: int | None = None) -> None:
        self.src = src
        self.arch = arch
        self.limits = Limits.for_allocated(src.allocated)
        if sector_size is None:
            self.ss, self.ss_note = detect_sector_size(src)
        else:
            self.ss, self.ss_note = sector_size, "given"
        self.last_lba = max(src.size // self.ss - 1, 0)
        self.rows = {}
        self.mbr_records = []

    def run(self) -> CheckResult:
        self._mbr()
        table = self._gpt()
        volume = self._esp(table)
        self._filesystem(volume)
        self._scan()
        rows = tuple(self.rows.get(c.id, Row(c.id, SKIP, "not reached")) for c in CHECK_DEFS)
        return CheckResult(rows, self.ss, self.ss_note)

    # -- partitions and the ESP ---------------------------------------------------------------------

    def _esp(self, table: tuple[GptHeader, list[GptEntry], str] | None) -> Volume | None:
        candidates: list[Volume] = []
        if table is None:
            self.skip(("gpt.partitions.range", "gpt.partitions.overlap"), "no valid GPT")
            self.skip(("esp.blockio",), "no GPT")
            for i, os_type, start, size in self.mbr_records:
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
            [f"outside usable LBAs {header.first_usable}..{header.last_usable}: " + _few(bad_range)]
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
        esp_raw = ESP_GUID.bytes_le
        esps = [e for e in entries if e.type_raw == esp_raw]
        for e in esps[:MAX_CANDIDATES]:
            candidates.append(Volume(f"partition {e.index} ({e.name or 'ESP'})", e.first, e.last, True))
        others = (e for e in entries if e.type_raw != esp_raw)
        for e, _ in zip(others, range(MAX_CANDIDATES), strict=False):
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
            self.put("esp.count", FAIL, "ESP type GUID on partitions " + _few([str(e.index) for e in esps]))
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
        for vol in candidates[:MAX_CANDIDATES]:
            bpb = self._bpb_at(vol)
            if bpb is not None and not bpb.problems():
                usable.append((vol, bpb))
        budget = Budget(self.limits)
        try:
            for vol, bpb in usable:
                fs = FatFs(self.src, vol.first_lba * self.ss, bpb, budget)
                if any(fs.lookup(("EFI", "BOOT", name))[0] is not None for name in self._boot_names()):
                    return vol
        except BudgetExceeded:
            pass  # the volumes' search stops here; the chosen volume's own walk reports its budget
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
        offset = volume.first_lba * self.ss
        fs = FatFs(self.src, offset, bpb, Budget(self.limits))
        if bpb.structure == 32:
            ok, why = fs.fs_info()
            self.rule("esp.fat.fsinfo", [] if ok else [why], why)
        else:
            self.put("esp.fat.fsinfo", SKIP, f"FAT{bpb.structure} has no FSInfo")
        tree = walk(fs)
        counts = f"{_n(tree.directories, 'directory', 'directories')}, {_n(tree.files, 'file')}"
        chains_ok = f"the chains of {_n(tree.files, 'file')} end where they should"
        for row, found, holds in (
            ("esp.fat.tree", tree.tree_problems, counts),
            ("esp.fat.chains", tree.chain_problems, chains_ok),
        ):
            if found:
                more = f" (and more; {tree.stopped})" if tree.stopped else ""
                self.put(row, FAIL, "; ".join(found[:3]) + more)
            elif tree.stopped:
                self.put(row, ERROR, f"{tree.stopped} (after {counts})")
            else:
                self.put(row, PASS, holds)
        try:
            self._boot_file(FatFs(self.src, offset, bpb, Budget(self.limits)))
        except BudgetExceeded as e:
            self.put("boot_file.present", ERROR, e.evidence)
            self.skip(self._PE_ROWS, "the boot file was not found within the budget")

    def _boot_file(self, fs: FatFs) -> None:
        found: list[tuple[str, str, DirEntry]] = []
        for name in self._boot_names():
            entry, stored = fs.lookup(("EFI", "BOOT", name))
            if entry is not None and not entry.is_dir:
                found.append((name, stored, entry))
        if not found:
            want = " or ".join(f"\\EFI\\BOOT\\{n}" for n in self._boot_names())
            misses = fs.near_misses(("EFI", "BOOT", "-"))
            why = (
                "; long names EDK2 does not take, so it sees only the short name: " + "; ".join(misses)
                if misses
                else ""
            )
            self.put("boot_file.present", FAIL, f"no {want} (in any case){why}")
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
            pe_rows(name, stored, data, results, notes)
        for k in self._PE_ROWS:
            if results[k]:
                self.put(k, FAIL, "; ".join(results[k]))
            elif notes[k]:
                self.put(k, PASS, "; ".join(notes[k]))
            else:
                self.put(k, SKIP, "not a PE image")

    # -- firmware volumes and variable stores ---------------------------------------------------------

    def _scan(self) -> None:
        limit = scan_limit(self.src.allocated)
        fv, stores, scanned, capped = scan(self.src, limit)
        amount = f"{scanned / 2**20:.1f} MiB" if scanned >= 1 << 20 else f"{-(-scanned // 1024)} KiB"
        note = f"scanned {amount} of allocated data"
        for row, found, what in (
            ("image.vars_store", stores, "variable store"),
            ("image.firmware", fv, "firmware volume"),
        ):
            if found:
                self.put(row, FAIL, "; ".join(sorted(set(found))[:3]))
            elif capped:
                self.put(row, ERROR, f"stopped by the scan budget ({limit >> 20} MiB of data); not decided")
            else:
                self.put(row, PASS, f"no {what}; {note}")
