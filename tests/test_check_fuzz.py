"""`vmconform check` on mutated images: a verdict for every row, never an exception, never a hang.

Mutations land where the parsers look (MBR, both GPTs, boot sectors, FATs, directories, the PE),
sometimes with the GPT CRCs recomputed afterwards so that absurd header fields (huge entry counts,
far-away LBAs) reach the code behind the CRC checks. bench/bench_images.py runs 10,000 of these.
"""

from __future__ import annotations

import struct
import zlib
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmconform import cases
from vmconform.check import CHECKS, ERROR, FAIL, PASS, SKIP, MemorySource, check_source
from vmconform.image import SparseImage

BASES = ("reference", "esp-fat16", "mbr-only", "superfloppy", "lfn", "sector-4k", "fat-dir-loop", "gpt-256-entries")
EXTREMES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 32, 1 << 40, (1 << 63) - 1, (1 << 64) - 1)


@cache
def base_image(name: str) -> SparseImage:
    case = next(
        c
        for c in cases.catalogue()
        if c.arch == "aarch64" and name in (c.layout, c.defect) and (c.defect == "none" or c.layout == "reference")
    )
    return cases.build_image(case, "fuzz")


def hot_regions(image: SparseImage) -> list[tuple[int, int]]:
    """(offset, length) of the structures the checker parses, found from the image's own bytes."""
    ss = 4096 if image.read(4096, 8) == b"EFI PART" else 512
    last = image.size // ss - 1
    regions = [(0, 512), (ss, 92), (2 * ss, 4 * 128), (last * ss, 92), ((last - 32) * ss, 512)]
    for esp in (2048 * 512 // ss, 256, 0):
        base = esp * ss
        if image.read(base + 510, 2) == b"\x55\xaa" and image.read(base + 11, 2) in (b"\x00\x02", b"\x00\x10"):
            regions += [(base, 512), (base + ss, 512), (base + 32 * ss, 1024), (base + 1 * ss, 1024)]
            data = [(off, chunk) for off, chunk in image.extents() if off > base + 64 * ss][:8]
            regions += [(off, 256) for off, _chunk in data]
            regions += [(off + chunk.find(b"MZ"), 512) for off, chunk in data if b"MZ" in chunk][:1]
            break
    return regions


def fix_gpt_crcs(image: SparseImage) -> None:
    """Recompute both headers' array and header CRCs (independently of vmconform.image)."""
    for ss in (512, 4096):
        for lba in (1, image.size // ss - 1):
            block = bytearray(image.read(lba * ss, ss))
            if block[:8] != b"EFI PART":
                continue
            size, (array_lba, count, entry) = (
                struct.unpack_from("<I", block, 12)[0],
                struct.unpack_from("<QII", block, 72),
            )
            if count * entry <= 1 << 20 and 0 <= array_lba * ss and array_lba * ss + count * entry <= image.size:
                struct.pack_into("<I", block, 88, zlib.crc32(image.read(array_lba * ss, count * entry)) & 0xFFFFFFFF)
            if 92 <= size <= ss:
                struct.pack_into("<I", block, 16, 0)
                struct.pack_into("<I", block, 16, zlib.crc32(bytes(block[:size])) & 0xFFFFFFFF)
            image.write(lba * ss, bytes(block))


mutation = st.tuples(
    st.integers(0, 10_000),  # which hot region (modulo)
    st.integers(0, 1 << 20),  # where in it (modulo its length)
    st.one_of(
        st.binary(min_size=1, max_size=8),
        st.sampled_from(EXTREMES).map(lambda v: v.to_bytes(8, "little")),
        st.sampled_from(EXTREMES).map(lambda v: (v & 0xFFFFFFFF).to_bytes(4, "little")),
    ),
)


def mutate(base: SparseImage, edits: list[tuple[int, int, bytes]], fix: bool, cut: int | None) -> MemorySource:
    image = base.resized(base.size)
    regions = hot_regions(base)
    for which, where, data in edits:
        offset, length = regions[which % len(regions)]
        pos = min(offset + where % length, image.size - len(data))
        image.write(pos, data)
    if fix:
        fix_gpt_crcs(image)
    return MemorySource(image, limit=cut)


def assert_sane(source: MemorySource) -> None:
    report = check_source(source, "fuzz")  # its cost is bounded by budgets (tested apart), its speed in bench/
    assert [r.id for r in report.rows] == list(CHECKS)
    assert all(r.verdict in (PASS, FAIL, SKIP, ERROR) and isinstance(r.evidence, str) for r in report.rows)
    assert report.exit_status in (0, 1)
    report.table()
    report.to_json()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASES),
    edits=st.lists(mutation, min_size=1, max_size=6),
    fix=st.booleans(),
    cut=st.one_of(st.none(), st.integers(512, 4 << 20)),
)
def test_mutated_images_always_get_a_verdict(
    base: str, edits: list[tuple[int, int, bytes]], fix: bool, cut: int | None
) -> None:
    assert_sane(mutate(base_image(base), edits, fix, cut))


def test_known_nasty_inputs() -> None:
    """Hand-picked worst cases: absurd GPT sizes with valid CRCs, a FAT whose every entry points at itself."""
    ref = base_image("reference")
    huge = ref.resized(ref.size)
    huge.write(512 + 80, struct.pack("<II", 0xFFFFFFFF, 0x80000000))  # NumberOfPartitionEntries, SizeOfPartitionEntry
    fix_gpt_crcs(huge)
    assert_sane(MemorySource(huge))
    far = ref.resized(ref.size)
    far.write(512 + 72, struct.pack("<Q", (1 << 64) - 1))  # PartitionEntryLBA
    far.write(512 + 32, struct.pack("<Q", (1 << 63)))  # AlternateLBA
    fix_gpt_crcs(far)
    assert_sane(MemorySource(far))
    selfloop = ref.resized(ref.size)
    fat = 2048 * 512 + 32 * 512
    selfloop.write(fat, b"".join(struct.pack("<I", i) for i in range(4096)))  # entry n -> n: every chain loops
    report = check_source(MemorySource(selfloop))
    assert report.verdict("esp.fat.chains") == FAIL or report.verdict("esp.fat.tree") == FAIL
    bpb = ref.resized(ref.size)
    bpb.write(2048 * 512 + 11, struct.pack("<HBH", 512, 1, 0xFFFF))  # reserved sectors past the partition
    bpb.write(2048 * 512 + 32, struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF))  # TotSec32, FATSz32
    assert_sane(MemorySource(bpb))
