"""The structure-aware fuzzer of `vmconform check`: build a valid GPT/FAT32/PE tree (tests/hostile_fat.py),
twist one field or one link of it (a header field, a CRC, an entry's LBA, a FAT link into a loop or past
the end, a directory entry's size or cluster, a long-name ordinal or checksum, a PE header field), and
judge it. Shared by tests/test_check_structure_fuzz.py (a few hundred cases in CI) and
bench/fuzz_check.py (minutes, with throughput and verdict counts).

`run_case` checks what must hold for any input: check never raises, gives one row per rule with a known
verdict, exit status 0 or 1, renders as text and JSON, and reads no more than its budgets allow.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import hostile_fat as hf

from vmconform.check import CHECKS, ERROR, FAIL, PASS, SKIP, Report, check_source
from vmconform.check.budget import Limits
from vmconform.check.scan import scan_limit


def _deep_tree() -> tuple[hf.PagedImage, hf.Layout]:
    img, layout = hf.esp_disk(extra_files=0)
    fat = layout.fat
    assert fat is not None
    parent = fat.root
    for depth in range(6):
        parent = fat.mkdir(parent, f"L{depth}", long=f"level {depth} with a long name")
        fat.add_file(parent, f"F{depth}.BIN", bytes(range(256)) * (depth + 1) * 3, long=f"file at depth {depth}.bin")
    return img, layout


def _big_clusters() -> tuple[hf.PagedImage, hf.Layout]:
    return hf.esp_disk(size=300 << 20, spc=4, extra_files=3)


def _random_tree(seed: int) -> tuple[hf.PagedImage, hf.Layout]:
    """A valid tree of random shape: cluster size, directories, files of random sizes, long names of
    1 to 60 characters (up to 5 long-name entries each)."""
    rng = random.Random(seed)
    spc = rng.choice((1, 2, 4))
    img, layout = hf.esp_disk(size=rng.choice((64, 160, 300)) * spc << 20, spc=spc, extra_files=0)
    fat = layout.fat
    assert fat is not None
    dirs = [fat.root]
    for i in range(rng.randint(2, 12)):
        long = "".join(rng.choice("abcdefghij KLMNOP.-_0123456789") for _ in range(rng.randint(1, 60))).strip()
        if rng.random() < 0.3:
            dirs.append(fat.mkdir(rng.choice(dirs), f"D{i}", long=long or None))
        else:
            data = bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 1, 511, 512, 513, 3000))))
            fat.add_file(rng.choice(dirs), f"F{i}.BIN", data, long=long or None)
    return img, layout


def _sector_4k() -> tuple[hf.PagedImage, hf.Layout]:
    return hf.esp_disk(size=600 << 20, ss=4096, extra_files=3)


BASES: dict[str, Callable[[], tuple[hf.PagedImage, hf.Layout]]] = {
    "esp": hf.esp_disk,
    "sector-4k": _sector_4k,
    "deep": _deep_tree,
    "clusters-2k": _big_clusters,
    **{f"random-{seed}": (lambda seed=seed: _random_tree(seed)) for seed in range(6)},
}

_cache: dict[str, tuple[hf.PagedImage, hf.Layout]] = {}


def base(name: str) -> tuple[hf.PagedImage, hf.Layout]:
    """A fresh copy of the named valid image (built once), with its layout."""
    if name not in _cache:
        _cache[name] = BASES[name]()
    img, layout = _cache[name]
    return img.copy(), layout


def _values(kind: str, old: int, size: int, img: hf.PagedImage, layout: hf.Layout) -> list[int]:
    top = (1 << (8 * size)) - 1
    fat = layout.fat
    clusters = fat.clusters if fat else 0
    last = img.size // 512 - 1
    common = [0, 1, top, old ^ 1, old + 1, old - 1, top >> 1]
    by_kind = {
        "lba": [2, 33, 34, last, last + 1, last - 33, img.size // 512 * 2, 1 << 32, 1 << 40, (1 << 63) - 1],
        "cluster": [2, 3, clusters + 1, clusters + 2, clusters * 2, 0x0FFFFFF7, 0x0FFFFFF8, 0x0FFFFFFF],
        "link": [2, 3, clusters + 1, clusters + 2, 0x0FFFFFF7, 0x0FFFFFF8, 0x10000000 | old, 4, 5, 6],
        "size": [2, 92, 93, 127, 128, 129, 256, 4096, 0x7FFFFFFF, old * 2, old // 2, 65536],
        "ordinal": [0x40, 0x41, 0x42, 0x43, 0x54, 0x55, 0x5F, 0x80, 0xE5, 0x02, 0x14, 0x15],
        "checksum": [old + 1, 0xFF],
        "attr": [0x0F, 0x10, 0x08, 0x20, 0x3F, 0xFF, 0x1F, 0x30],
        "crc": [old + 1],
        "int": [2, 0xEE, 0xEF, 0x80, 0xFF, 0x55AA],
        "bytes": [],
    }
    return [v & top for v in common + by_kind.get(kind, [])]


@dataclass(frozen=True)
class Twist:
    """One twist: which field (an index into the layout's fields, or a PE field), which value, and
    whether the GPT CRCs are fixed afterwards (so that the twisted field reaches the code behind them)."""

    field: int
    value: int
    fix: bool
    pe: bool = False


def apply(img: hf.PagedImage, layout: hf.Layout, twist: Twist) -> str:
    """Twist `img` in place; a description of what was done."""
    if twist.pe:
        boot = next((f for f in layout.fields if f.name.startswith("file[BOOTAA64")), None)
        if boot is None:
            return "no boot file"
        name = sorted(hf.PE_FIELDS)[twist.field % len(hf.PE_FIELDS)]
        offset, size = hf.PE_FIELDS[name]
        old = int.from_bytes(img.read(boot.offset + offset, size), "little")
        values = _values("size", old, size, img, layout) + [0x200, 0x1000, 0x10000, 0xFFFFFFF0]
        value = values[twist.value % len(values)] & ((1 << (8 * size)) - 1)
        img.write(boot.offset + offset, value.to_bytes(size, "little"))
        return f"pe.{name} {old:#x} -> {value:#x}"
    field = layout.fields[twist.field % len(layout.fields)]
    raw = img.read(field.offset, field.size)
    if field.kind == "bytes":
        data = bytearray(raw)
        rng = random.Random(twist.value)
        how = twist.value % 4
        if how == 0:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif how == 1:
            data[:] = bytes(len(data))
        elif how == 2:
            data[:] = b"\xff" * len(data)
        else:
            data[0] = 0xE5
        img.write(field.offset, bytes(data))
        desc = f"{field.name} bytes twist {how}"
    else:
        old = int.from_bytes(raw, "little")
        values = _values(field.kind, old, field.size, img, layout)
        if field.kind == "link":  # a link to itself: the shortest loop
            values.append(int(field.name[4:-1]))
        value = values[twist.value % len(values)]
        img.write(field.offset, value.to_bytes(field.size, "little"))
        desc = f"{field.name} {old:#x} -> {value:#x}"
        if field.kind == "link" and layout.fat is not None:  # keep the second FAT in step (or not)
            if twist.value % 2:
                img.write(field.offset + layout.fat.fat_sectors * 512, value.to_bytes(4, "little"))
    if twist.fix:
        hf.fix_gpt_crcs(img, layout)
        desc += " (GPT CRCs fixed)"
    return desc


class CountingSource:
    """A Source that counts what check reads through it (bytes, calls)."""

    def __init__(self, inner: hf.PagedImage) -> None:
        self.inner = inner
        self.bytes = 0
        self.calls = 0

    @property
    def size(self) -> int:
        return self.inner.size

    @property
    def allocated(self) -> int:
        return self.inner.allocated

    def read(self, offset: int, n: int) -> bytes:
        self.calls += 1
        data = self.inner.read(offset, n)
        self.bytes += len(data)
        return data

    def data_extents(self) -> Iterator[tuple[int, int]]:
        return self.inner.data_extents()


PHASES = 3
"""Phases that each get a budget: choosing the volume, walking its tree, finding and reading the boot file."""
FIXED_READS = 64 << 20
"""Reads outside the budgeted phases: MBR, GPT headers and two entry arrays of at most 16 MiB, BPBs."""


def read_bound(allocated: int) -> int:
    """The most bytes a check of an image with `allocated` bytes may read."""
    return PHASES * Limits.for_allocated(allocated).bytes + scan_limit(allocated) + FIXED_READS


def run_case(img: hf.PagedImage, what: str) -> Report:
    """Check `img`, asserting what must hold for any input; the report."""
    source = CountingSource(img)
    try:
        report = check_source(source, "fuzz")
    except Exception as e:  # noqa: BLE001 - exactly what the fuzzer looks for
        raise AssertionError(f"check raised {type(e).__name__}: {e} on: {what}") from e
    assert [r.id for r in report.rows] == list(CHECKS), what
    assert all(r.verdict in (PASS, FAIL, SKIP, ERROR) and isinstance(r.evidence, str) for r in report.rows), what
    assert report.exit_status in (0, 1), what
    assert source.bytes <= read_bound(img.allocated), f"read {source.bytes} bytes on: {what}"
    report.table()
    report.to_json()
    return report


def random_twists(rng: random.Random) -> tuple[str, list[Twist]]:
    """A base name and one or two twists (mostly one), from `rng`."""
    name = rng.choice(sorted(BASES))
    n = 1 if rng.random() < 0.8 else 2
    return name, [
        Twist(rng.randrange(1 << 16), rng.randrange(1 << 16), rng.random() < 0.5, rng.random() < 0.2) for _ in range(n)
    ]


def twisted(name: str, twists: list[Twist]) -> tuple[hf.PagedImage, str]:
    img, layout = base(name)
    desc = "; ".join(apply(img, layout, t) for t in twists)
    return img, f"{name}: {desc}"


def struct_sanity() -> None:
    """The PE field table matches the builder's layout (a guard for the fuzzer's own correctness)."""
    pe = hf.pe_image()
    for name, (offset, size) in hf.PE_FIELDS.items():
        assert offset + size <= 0x200, name
    assert struct.unpack_from("<H", pe, hf.PE_FIELDS["magic"][0])[0] == 0x20B
    assert struct.unpack_from("<I", pe, hf.PE_FIELDS["size_of_headers"][0])[0] == 0x200
