"""`vmconform check` on hostile file systems and boot files, built by tests/hostile_fat.py (not by
vmconform's writer): cost bounded by the budgets, long names and PE headers judged as EDK2 judges them,
names from the image escaped on the terminal.

Memory is measured in a subprocess (the peak resident size, VmHWM, of a fresh interpreter checking the
image saved as a sparse file) and bounded by the issue's limit, 256 MiB per 64 MiB allocated; time is never
asserted here (bench/fuzz_check.py prints it).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import hostile_fat as hf
import pefile
import pytest
from host_tools import requires

from vmconform import cli
from vmconform.check import ERROR, FAIL, PASS, check_image, check_source
from vmconform.check.budget import UNIT_BYTES

TESTS = Path(__file__).resolve().parent
MEMORY_PER_UNIT = 256 << 20


def fat_disk(size: int, spc: int = 1) -> tuple[hf.PagedImage, hf.Layout, hf.Fat32]:
    """A GPT disk with one ESP over all of it and an empty FAT32 volume."""
    img, layout = hf.PagedImage(size), hf.Layout()
    last = size // 512 - 1
    hf.write_gpt(img, layout, [(2048, last - 33, hf.ESP_TYPE, "ESP")])
    fat = hf.Fat32(img, layout, 2048 * 512, last - 33 - 2048 + 1, spc)
    return img, layout, fat


# --- the hostile trees of the issue -----------------------------------------------------------------------


def nested_directories(n: int = 10_000, name_len: int = 150) -> hf.PagedImage:
    """`n` directories, each inside the last, each with a long name of `name_len` characters: 5 MB
    allocated. Before: out of memory (a full path string kept per directory: quadratic in the depth)."""
    img, _layout, fat = fat_disk(40 << 20)
    parent = fat.root
    long = "D" * name_len
    for _ in range(n):
        parent = fat.mkdir(parent, "D", long=long)
    return img


def shared_looping_run(dirs: int = 2000, run: int = 4000) -> hf.PagedImage:
    """`dirs` directories whose chains all continue into one run of `run` clusters that loops back into
    itself. Before: every directory read the whole run again (2 MiB each, 4 GB in all)."""
    img, _layout, fat = fat_disk(40 << 20)
    shared = fat.alloc(run)
    fat.set_fat(shared + run - 1, shared, record=False)  # the run's end points back at its start
    for i in range(dirs):
        d = fat.mkdir(fat.root, f"D{i}")
        fat.set_fat(d, shared, record=False)
    return img


def files_sharing_a_chain(files: int = 5000, run: int = 100_000) -> hf.PagedImage:
    """`files` files of `run` clusters each, all starting on one chain of `run` clusters. Before: every
    file's chain was followed in full (seconds each)."""
    img, _layout, fat = fat_disk(128 << 20)
    shared = fat.alloc(run)
    fat.add(
        fat.root,
        [hf.dir_entry(hf.short_name(f"F{i}.BIN"), 0x20, shared, run * 512) for i in range(files)],
        "files",
    )
    return img


def one_endless_chain(links: int = 600_000) -> hf.PagedImage:
    """One file whose chain is longer than the FAT-link budget of its 64 MiB unit (no loop, no sharing)."""
    img, _layout, fat = fat_disk(320 << 20)
    boot = fat.mkdir(fat.mkdir(fat.root, "EFI"), "BOOT")
    fat.add_file(boot, "BOOTAA64.EFI", hf.pe_image())
    first = fat.alloc(links)
    fat.add(fat.root, [hf.dir_entry(hf.short_name("BIG.BIN"), 0x20, first, 0xFFFFFFFF)], "big")
    return img


def many_partitions(n: int = 131_072) -> hf.PagedImage:
    """A GPT of `n` entries (a 16 MiB array, the most check reads), every one an ESP over the same LBAs
    and half of them outside the usable range."""
    img, layout = hf.PagedImage(64 << 20), hf.Layout()
    last = img.size // 512 - 1
    parts = [(2048, last - 33 + (i % 2) * 100, hf.ESP_TYPE, "ESP") for i in range(n)]
    hf.write_gpt(img, layout, parts, entries=n)
    return img


def sparse_boot_file(size: int = (64 << 20) - 1) -> hf.PagedImage:
    """A boot file of 64 MiB (the most check reads) whose clusters are holes but its first: under 2 MiB
    allocated. Before: three copies of it in memory at once."""
    img, _layout, fat = fat_disk(320 << 20, spc=8)
    boot = fat.mkdir(fat.mkdir(fat.root, "EFI"), "BOOT")
    first = fat.alloc(-(-size // fat.cluster_bytes))
    img.write(fat.cluster_offset(first), hf.pe_image())
    fat.add(boot, [hf.dir_entry(hf.short_name("BOOTAA64.EFI"), 0x20, first, size)], "boot")
    return img


def full_directories(entries: int = 65_530) -> hf.PagedImage:
    """\\, \\EFI and \\EFI\\BOOT each holding `entries` files (2 MiB of directory apiece): every phase of
    the check must parse them to find the boot file, past the entry budget of one 64 MiB unit."""
    img, _layout, fat = fat_disk(64 << 20)
    efi = fat.mkdir(fat.root, "EFI")
    boot = fat.mkdir(efi, "BOOT")
    for d in (fat.root, efi, boot):
        fat.add(d, [hf.dir_entry(f"F{i:07d}BIN".encode(), 0x20, 0, 0) for i in range(entries)], "full", record=False)
    return img


CASES: dict[str, Callable[[], hf.PagedImage]] = {
    "nested": nested_directories,
    "shared-loop": shared_looping_run,
    "shared-chain": files_sharing_a_chain,
    "endless-chain": one_endless_chain,
    "many-partitions": many_partitions,
    "sparse-boot-file": sparse_boot_file,
    "full-directories": full_directories,
}


MEASURE = """
import json, resource, sys
from pathlib import Path
from vmconform.check import check_image
report = check_image(Path(sys.argv[1]))
rows = {r.id: [r.verdict, r.evidence] for r in report.rows}
try:  # this process's own high-water mark (ru_maxrss keeps the parent's across vfork and exec)
    status = Path("/proc/self/status").read_text()
    peak = int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM:")).split()[1]) * 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak, "rows": rows, "exit": report.exit_status}))
"""


def measure(case: str) -> dict[str, object]:
    """Check the `case` image, saved as a sparse file, in a fresh interpreter: its verdicts, and the peak
    resident memory of that whole process (interpreter and imports included)."""
    with tempfile.TemporaryDirectory(prefix="vmconform-hostile-") as tmp:
        img = CASES[case]()
        path = img.save(Path(tmp) / f"{case}.img")
        proc = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=600)
        allocated = path.stat().st_blocks * 512
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    result["allocated"] = allocated
    return result


def assert_within_memory(result: dict[str, object]) -> None:
    allocated = result["allocated"]
    assert isinstance(allocated, int)
    units = max(1, -(-allocated // UNIT_BYTES))
    peak = result["peak"]
    assert isinstance(peak, int) and peak < MEMORY_PER_UNIT * units, f"{peak >> 20} MiB for {units} unit(s)"


def test_nested_directories_stop_at_the_depth_budget() -> None:
    result = measure("nested")
    assert_within_memory(result)
    rows = result["rows"]
    assert isinstance(rows, dict)
    assert rows["esp.fat.tree"][0] == ERROR and "directory depth budget (128 levels)" in rows["esp.fat.tree"][1]
    assert "\\" + "D" * 150 + "\\" in rows["esp.fat.tree"][1]
    assert result["exit"] == 1


def test_directories_sharing_a_looping_run_are_cross_linked_not_reread() -> None:
    result = measure("shared-loop")
    assert_within_memory(result)
    rows = result["rows"]
    assert isinstance(rows, dict)
    assert rows["esp.fat.chains"][0] == FAIL and "cross-linked" in rows["esp.fat.chains"][1]
    assert "loops back" in rows["esp.fat.chains"][1] or "cross-linked" in rows["esp.fat.chains"][1]


def test_files_sharing_one_long_chain_are_cross_linked() -> None:
    result = measure("shared-chain")
    assert_within_memory(result)
    rows = result["rows"]
    assert isinstance(rows, dict)
    evidence = rows["esp.fat.chains"][1]
    assert rows["esp.fat.chains"][0] == FAIL and "also belongs to \\F0.BIN (cross-linked)" in evidence


def test_a_chain_longer_than_the_link_budget_is_an_error_naming_it() -> None:
    result = measure("endless-chain")
    assert_within_memory(result)
    rows = result["rows"]
    assert isinstance(rows, dict)
    verdict, evidence = rows["esp.fat.chains"]
    assert verdict == ERROR and "FAT links followed budget (262,144 for 64 MiB allocated)" in evidence
    assert "not decided" in evidence and result["exit"] == 1


def test_a_gpt_of_131072_esps_gives_short_evidence() -> None:
    result = measure("many-partitions")
    assert_within_memory(result)
    rows = result["rows"]
    assert isinstance(rows, dict)
    assert all(len(evidence) <= 1000 for _verdict, evidence in rows.values())
    assert rows["esp.count"][0] == FAIL and "and 131064 more" in rows["esp.count"][1]
    assert rows["gpt.partitions.range"][0] == FAIL and rows["gpt.partitions.overlap"][0] == FAIL


def test_directories_are_not_read_past_their_end_mark() -> None:
    """200 directories of 4,096 clusters each (holes: 2 MiB of zeros apiece, 400 MiB in all, in a file of
    3 MiB): their chains are followed, their data is read only to the end mark."""
    img, _layout, fat = fat_disk(900 << 20)
    for i in range(200):
        d = fat.mkdir(fat.root, f"D{i}")
        fat.set_fat(d, fat.alloc(4095), record=False)
    counting = CountingReads(img)
    report = check_source(counting, "holes")
    assert report.verdict("esp.fat.tree") == PASS and report.verdict("esp.fat.chains") == PASS, report.table()
    assert counting.bytes < 32 << 20, counting.bytes


class CountingReads:
    """The image as a Source that counts the bytes check reads."""

    def __init__(self, img: hf.PagedImage) -> None:
        self.img = img
        self.size = img.size
        self.allocated = img.allocated
        self.bytes = 0

    def read(self, offset: int, n: int) -> bytes:
        data = self.img.read(offset, n)
        self.bytes += len(data)
        return data

    def data_extents(self):  # type: ignore[no-untyped-def]
        return self.img.data_extents()


def test_directories_past_the_entry_budget_are_an_error_naming_it() -> None:
    result = measure("full-directories")
    assert_within_memory(result)
    rows = result["rows"]
    assert isinstance(rows, dict)
    for row in ("esp.fat.tree", "boot_file.present"):
        verdict, evidence = rows[row]
        assert verdict == ERROR and "directory entries budget (131,072 for 64 MiB allocated)" in evidence
        assert "at \\EFI\\BOOT" in evidence


def test_a_64_mib_boot_file_of_holes_is_read_once_within_memory() -> None:
    result = measure("sparse-boot-file")
    assert_within_memory(result)
    rows = result["rows"]
    assert isinstance(rows, dict)
    assert rows["boot_file.present"][0] == PASS and rows["boot_file.sections"][0] == PASS, rows


def test_budget_error_reads_as_incomplete_on_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = one_endless_chain().save(tmp_path / "endless.img")
    assert cli.main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ERROR   esp.fat.chains" in out and "result: INCOMPLETE" in out


# --- the builders make what other tools accept ---------------------------------------------------------


@requires("fsck.fat", "sgdisk")
def test_builder_disk_passes_fsck_fat_and_sgdisk(tmp_path: Path) -> None:
    img, _layout = hf.esp_disk()
    path = img.save(tmp_path / "built.img")
    sg = subprocess.run(["sgdisk", "-v", str(path)], capture_output=True, text=True, timeout=60)
    assert "No problems found" in sg.stdout, sg.stdout
    raw = tmp_path / "esp.img"
    raw.write_bytes(path.read_bytes()[2048 * 512 : (img.size // 512 - 33) * 512])
    fsck = subprocess.run(["fsck.fat", "-n", "-v", str(raw)], capture_output=True, text=True, timeout=60)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert check_image(path).exit_status == 0


# --- long names as EDK2 reads them (FatPkg FatLoadLongNameEntry) ---------------------------------------


def boot_dir_disk(records: list[bytes]) -> hf.PagedImage:
    """\\EFI\\BOOT holding exactly `records` (a boot file's entries, as hostile as needed)."""
    img, _layout, fat = fat_disk(64 << 20)
    boot = fat.mkdir(fat.mkdir(fat.root, "EFI"), "BOOT")
    data = hf.pe_image()
    first = fat.alloc(-(-len(data) // 512))
    img.write(fat.cluster_offset(first), data)
    fat.add(boot, [r if r[11] == 0x0F else hf.dir_entry(r[:11], 0x20, first, len(data)) for r in records], "boot")
    return img


SHORT = b"BOOTAA~1EFI"


def two_entry_name(name: str = "BOOTAA64.EFI", order: tuple[int, ...] = (0x42, 0x01)) -> list[bytes]:
    """`name` spread over long-name entries (ordinal 1 holds it all, NUL-ended; the others are padding),
    in the on-disk `order` of ordinals (0x40: flagged last); in order: [0x42, 0x01]."""
    units = (name.encode("utf-16-le") + b"\0\0").ljust(26 * len(order), b"\xff")
    out = []
    for ordinal in order:
        index = (ordinal & 0x1F) - 1
        chunk = units[26 * index : 26 * index + 26]
        rec = bytearray(32)
        rec[0], rec[11], rec[13] = ordinal, 0x0F, hf.lfn_checksum(SHORT)
        rec[1:11], rec[14:26], rec[28:32] = chunk[0:10], chunk[10:22], chunk[22:26]
        out.append(bytes(rec))
    return out


def test_long_name_in_order_is_the_boot_file() -> None:
    report = check_source(boot_dir_disk([*two_entry_name(), SHORT + bytes(21)]))
    assert report.verdict("boot_file.present") == PASS, report.table()


@pytest.mark.parametrize(
    ("order", "found"),
    [((0x43, 0x01, 0x02), "0x02 where ordinal 1"), ((0x01, 0x42), "0x42 where ordinal 1")],
    ids=["last-1-2", "1-last"],
)
def test_long_name_in_the_wrong_order_is_not_the_boot_file(order: tuple[int, ...], found: str) -> None:
    """Before: entries after the one flagged last were collected and sorted by ordinal, so [0x43, 1, 2]
    named BOOTAA64.EFI and IMG-4 passed. EDK2 walks back from the short entry expecting ordinal 1, 2, ...
    in turn; it finds 0x02, drops the long name and sees only BOOTAA~1.EFI."""
    report = check_source(boot_dir_disk([*two_entry_name(order=order), SHORT + bytes(21)]))
    assert report.verdict("boot_file.present") == FAIL
    evidence = next(r.evidence for r in report.rows if r.id == "boot_file.present")
    assert f"BOOTAA~1.EFI: long-name entry ordinal {found} belongs" in evidence


@pytest.mark.parametrize(
    ("twist", "why"),
    [
        (lambda recs: [recs[0][:13] + b"\x00" + recs[0][14:], recs[1]], "checksum"),
        (lambda recs: [b"\x43" + recs[0][1:], recs[1]], "ordinal 0x43"),
        (lambda recs: [recs[0], recs[1][:26] + b"\x05\x00" + recs[1][28:]], "first-cluster"),
        (lambda recs: [recs[0], recs[1][:11] + b"\x1f" + recs[1][12:]], ""),
        (lambda recs: [b"\x02" + recs[0][1:], recs[1]], "long-name entry 3 is missing"),
    ],
    ids=["checksum", "ordinal", "cluster-field", "attributes", "no-last-flag"],
)
def test_broken_long_name_sequences_leave_only_the_short_name(twist, why: str) -> None:  # type: ignore[no-untyped-def]
    report = check_source(boot_dir_disk([*twist(two_entry_name()), SHORT + bytes(21)]))
    assert report.verdict("boot_file.present") == FAIL, report.table()
    assert why in next(r.evidence for r in report.rows if r.id == "boot_file.present")


# --- PE headers as EDK2's PeCoffLoaderGetPeHeader checks them -----------------------------------------


def pe_with(**fields: int) -> bytes:
    data = bytearray(hf.pe_image())
    for name, value in fields.items():
        offset, size = hf.PE_FIELDS[name]
        data[offset : offset + size] = value.to_bytes(size, "little")
    return bytes(data)


@pytest.mark.parametrize(
    ("fields", "row", "says"),
    [
        ({"size_of_headers": 0x10000}, "boot_file.pe", "SizeOfHeaders 0x10000 lies past the end of the file"),
        ({"n_dirs": 17}, "boot_file.pe", "NumberOfRvaAndSizes 17"),
        ({"n_dirs": 6}, "boot_file.pe", "SizeOfOptionalHeader 240, but 6 data directories make it 160"),
        ({"size_of_image": 0x100}, "boot_file.pe", "SizeOfImage 0x100 leaves no room"),
        ({"size_of_headers": 0x100}, "boot_file.pe", "does not cover the 1 section headers"),
        ({"n_sections": 40}, "boot_file.pe", "does not cover the 40 section headers"),
        ({"security_va": 0x300, "security_size": 0x1000}, "boot_file.pe", "security directory"),
        ({"section_raw_ptr": 0xFFFFFF00}, "boot_file.sections", "needs bytes 0xffffff00"),
        ({"magic": 0x10C}, "boot_file.pe", "neither PE32"),
        ({"e_lfanew": 0x380}, "boot_file.pe", "no PE signature"),
    ],
    ids=lambda v: str(v)[:30] if isinstance(v, dict) else None,
)
def test_pe_headers_edk2_rejects_fail_img5(fields: dict[str, int], row: str, says: str) -> None:
    """Before: a PE whose SizeOfHeaders lay past its end (and each of these) passed IMG-5."""
    img, _layout = hf.esp_disk(boot=pe_with(**fields))
    report = check_source(img)
    assert report.verdict(row) == FAIL, report.table()
    assert says in next(r.evidence for r in report.rows if r.id == row)
    assert report.clause_verdict("IMG-5") == FAIL and report.exit_status == 1


def test_the_builders_pe_passes_and_pefile_agrees() -> None:
    pe = pefile.PE(data=hf.pe_image())
    assert pe.OPTIONAL_HEADER.Subsystem == 10 and pe.FILE_HEADER.Machine == 0xAA64
    img, _layout = hf.esp_disk()
    assert all(r.verdict == PASS for r in check_source(img).rows)


# --- names from the image reach the terminal escaped ---------------------------------------------------


def test_control_characters_from_the_image_are_escaped_in_text_not_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a partition or file name with ESC [ ... recoloured the terminal (or set its title)."""
    name = "\x1b]0;owned\x07\x1b[2J"
    img, layout = hf.PagedImage(64 << 20), hf.Layout()
    last = img.size // 512 - 1
    hf.write_gpt(img, layout, [(2048, last - 33, hf.ESP_TYPE, name)])
    fat = hf.Fat32(img, layout, 2048 * 512, last - 33 - 2048 + 1)
    shared = fat.alloc(2)
    for i, long in enumerate((f"a{name}.txt", f"b\u202e{name}.txt")):
        short = hf.short_name(f"F{i}.TXT")
        fat.add(fat.root, [*hf.lfn_entries(long, short), hf.dir_entry(short, 0x20, shared, 1024)], long)
    path = img.save(tmp_path / "esc.img")
    assert cli.main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;owned\\x07\\x1b[2J" in out and "\\u202e" in out
    assert cli.main(["check", "--json", str(path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    evidence = " ".join(r["evidence"] for r in doc["rows"])
    assert name in evidence and "\u202e" in evidence  # JSON keeps the exact text (escaped by json itself)


def test_struct_layout_of_the_builders_short_entry() -> None:
    rec = hf.dir_entry(b"BOOTAA64EFI", 0x20, 0x12345, 99)
    assert struct.unpack_from("<H", rec, 20)[0] == 1 and struct.unpack_from("<HI", rec, 26) == (0x2345, 99)


def test_a_scan_stopped_by_its_budget_is_an_error_not_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """FW-6 and FW-8 are decided only when every byte of data was scanned (the limit is the image's own
    allocated size, at least 1 GiB, so only extents that claim more data than the file holds reach it)."""
    import vmconform.check.rules as rules

    monkeypatch.setattr(rules, "scan_limit", lambda allocated: 16 << 10)
    img, _layout = hf.esp_disk()
    report = check_source(img)
    assert report.verdict("image.vars_store") == ERROR and report.verdict("image.firmware") == ERROR
    assert "stopped by the scan budget" in next(r.evidence for r in report.rows if r.id == "image.vars_store")
    assert report.exit_status == 1 and "result: INCOMPLETE" in report.table()
