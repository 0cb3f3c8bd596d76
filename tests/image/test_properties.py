"""Property: any small set of 8.3 files reads back identical through mtools, and fsck.fat stays clean."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmconform.image import DiskSpec, EspFile

from ._oracles import assert_fsck_clean, extract_partition, mcopy_all, need, read_tree, sgdisk_partitions
from ._support import ESP_OFFSET, build_and_save

_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$%'-_@~`!(){}^#&"
_base = st.text(_CHARS, min_size=1, max_size=8)
_ext = st.text(_CHARS, min_size=0, max_size=3)
component = st.builds(lambda b, e: f"{b}.{e}" if e else b, _base, _ext)
path = st.lists(component, min_size=1, max_size=3).map("/".join)
size = st.one_of(
    st.integers(0, 1500),
    st.sampled_from([511, 512, 513, 1024, 4097, 20000, 100 * 1024]),
)


def _consistent(files: dict[str, int]) -> dict[str, int]:
    """Drop paths that would need a file and a directory under one name."""
    kept: dict[str, int] = {}
    dirs: set[str] = set()
    for p, n in files.items():
        parts = p.split("/")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if p in dirs or prefixes & kept.keys():
            continue
        kept[p] = n
        dirs |= prefixes
    return kept


@need("sgdisk", "mcopy", "fsck.fat", "dd")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.dictionaries(path, size, min_size=1, max_size=12), seed=st.integers(0, 2**32))
def test_every_file_reads_back_and_fsck_is_clean(files: dict[str, int], seed: int) -> None:
    rng = random.Random(seed)
    esp_files = tuple(EspFile(p, rng.randbytes(n)) for p, n in _consistent(files).items())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        built = build_and_save(DiskSpec(files=esp_files, seed=str(seed)), work / "disk.img")
        mcopy_all(built.path, ESP_OFFSET, work / "out")
        assert read_tree(work / "out") == {f.path: f.data for f in esp_files}
        (esp,) = sgdisk_partitions(built.path)
        assert_fsck_clean(extract_partition(built.path, esp.start, esp.end, work / "esp.img"))
