"""Properties over random layouts: whatever `plan_disk` accepts is a valid GPT disk (sgdisk / fdisk say so),
its partitions are where the GPT says and do not overlap, and `vmconform check` finds nothing to fault."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmconform.check import PASS, MemorySource, check_source
from vmconform.image import DataPartition, DiskSpec, EspFile, EspPartition, FatVolumeSpec, plan_disk, render_disk
from vmconform.image.disk import BASIC_DATA_TYPE_GUID
from vmconform.probe import build_probe

from ._oracles import need, run, sgdisk_partitions

MiB = 1 << 20
BOOT = EspFile("EFI/BOOT/BOOTAA64.EFI", build_probe("aarch64", "layouts"))


@st.composite
def layouts(draw: st.DrawFn) -> DiskSpec:
    ss = draw(st.sampled_from([512, 4096]))
    parts: list[DataPartition | EspPartition] = []
    for _ in range(draw(st.integers(0, 3))):
        parts.append(DataPartition(size_bytes=draw(st.integers(1, 6)) * MiB))
    fat32_min = 34 if ss == 512 else 258
    esp_fat = draw(st.sampled_from([16, 32])) if ss == 512 else 32
    esp_size = (draw(st.integers(8, 20)) if esp_fat == 16 else fat32_min + draw(st.integers(0, 4))) * MiB
    esp = EspPartition(size_bytes=esp_size, fat=FatVolumeSpec(fat_type=esp_fat))
    parts.insert(draw(st.integers(0, len(parts))), esp)
    if draw(st.booleans()) and ss == 512:
        other = EspPartition(
            files=(),
            size_bytes=10 * MiB,
            fat=FatVolumeSpec(fat_type=16, volume_label="DATA"),
            partition_type_guid=BASIC_DATA_TYPE_GUID,
            name="data",
        )
        parts.insert(draw(st.integers(0, len(parts))), other)
    total = sum(p.size_bytes or 0 for p in parts) + (2 + len(parts)) * MiB
    entries = draw(st.sampled_from([128, 256, 512]))
    return DiskSpec(
        files=(BOOT,),
        seed=str(draw(st.integers(0, 999))),
        size_bytes=total,
        sector_size=ss,
        partitions=tuple(parts),
        number_of_partition_entries=entries,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=layouts())
def test_layouts_are_consistent_and_check_clean(spec: DiskSpec) -> None:
    built = render_disk(plan_disk(spec))
    gpt = built.layout.gpt
    assert gpt is not None
    spans = sorted((p.start_lba, p.end_lba) for p in built.layout.partitions)
    assert all(gpt.first_usable_lba <= a <= b <= gpt.last_usable_lba for a, b in spans)
    assert all(b1 < a2 for (_a1, b1), (a2, _b2) in zip(spans, spans[1:], strict=False))
    assert gpt.first_usable_lba * spec.sector_size >= 2 * spec.sector_size + 16384
    report = check_source(MemorySource(built.image), "random", sector_size=None)
    esp = next(p for p in built.layout.partitions if p.entry.partition_type_guid.hex.startswith("c12a7328"))
    is_fat32 = esp.fat_geometry is not None and esp.fat_geometry.fat_type == 32
    fat16_only = () if is_fat32 else ("esp.fat.type", "esp.fat.fsinfo")  # FAT16 fails IMG-3, has no FSInfo
    problems = [(r.id, r.evidence) for r in report.rows if r.verdict != PASS and r.id not in fat16_only]
    assert not problems, problems
    assert (report.verdict("esp.fat.type") == PASS) == is_fat32


@need("sgdisk", "fdisk")
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=layouts())
def test_partitioning_tools_accept_random_layouts(spec: DiskSpec) -> None:
    built = render_disk(plan_disk(spec))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "disk.img"
        built.image.save(path)
        if spec.sector_size == 4096:
            out = run("fdisk", "-l", "-b", "4096", path).stdout
            assert "Disklabel type: gpt" in out and "corrupt" not in out
            assert out.count("EFI System") == 1
            return
        assert "No problems found" in run("sgdisk", "-v", path).stdout
        rows = sgdisk_partitions(path)
        want = [(p.number, p.start_lba, p.end_lba) for p in built.layout.partitions]
        assert [(r.number, r.start, r.end) for r in rows] == want
