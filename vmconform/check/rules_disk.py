"""The disk-level rules of `vmconform check`: the protective MBR (UEFI 2.11 §5.2.3) and both GPT headers
and entry arrays (§5.3), and `RowSink`, which collects the rows every rule writes.
"""

from __future__ import annotations

import struct
import zlib

from vmconform.check.gpt import GptEntry, GptHeader, entries_of
from vmconform.check.rows import FAIL, PASS, SKIP, Row
from vmconform.check.source import Source

MAX_EVIDENCE = 1000


class RowSink:
    """Where rules write their rows: the first verdict written for a row stands."""

    src: Source
    ss: int
    last_lba: int
    rows: dict[str, Row]

    def put(self, check_id: str, verdict: str, evidence: str) -> None:
        if len(evidence) > MAX_EVIDENCE:  # a GPT of 131,072 entries must not make a megabyte of evidence
            evidence = evidence[: MAX_EVIDENCE - 3] + "..."
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


class DiskRules(RowSink):
    """MBR and GPT rules; `_gpt` gives the partition table to use (header, entries, which copy) or None."""

    mbr_records: list[tuple[int, int, int, int]]

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
            return primary, entries_of(p_array, primary.entry_size), "primary"
        if b_usable and backup is not None and b_array is not None:
            return backup, entries_of(b_array, backup.entry_size), "backup"
        return None
