"""The case catalogue as data, `vmconform gen` over it, and the disk hooks the boots use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from host_tools import AAVMF_CODE, require

from vmconform import case_catalogue, cases, cli, config, outcomes
from vmconform.check import CHECKS
from vmconform.hypervisors import BootRequest, Disk, backend_for
from vmconform.image.defects import DEFECTS
from vmconform.image.layouts import LAYOUTS
from vmconform.outcomes import BOOTS, EITHER, FALLS_THROUGH, OUTCOMES, RECOVERS

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = cases.catalogue()


def test_catalogue_covers_every_layout_and_defect_for_both_arches() -> None:
    names = [c.name for c in CATALOGUE]
    assert len(names) == len(set(names))
    for arch in cases.ARCH_NAMES:
        mine = [c for c in CATALOGUE if c.arch == arch]
        assert {c.layout for c in mine} == set(LAYOUTS)
        assert {c.defect for c in mine} == set(DEFECTS)
    assert len([c for c in CATALOGUE if c.defect != "none"]) >= 2 * 20


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda c: c.name)
def test_each_case_is_complete_data(entry: cases.Case) -> None:
    assert entry.expect in OUTCOMES and entry.edk2 in (BOOTS, RECOVERS, FALLS_THROUGH)
    assert set(entry.fails) <= set(CHECKS)
    assert entry.clauses and entry.summary and entry.rationale and entry.edk2_evidence
    assert entry.sector_size == LAYOUTS[entry.layout].sector_size
    if entry.defect == "none":
        assert entry.fails == () and entry.expect == BOOTS
    assert entry.edk2_evidence == case_catalogue.EDK2_OBSERVED_BY_ARCH[entry.arch]  # test_matrix_boot.py boots each one
    assert outcomes.conforms(entry, entry.edk2) or entry.defect == "gpt-primary-crc-ro"


def test_expectations_follow_the_spec_where_it_is_explicit() -> None:
    by = {(c.layout, c.defect): c for c in CATALOGUE if c.arch == "aarch64"}
    assert all(by[(layout, "none")].expect == BOOTS for layout in LAYOUTS)
    for defect in ("gpt-both-crc", "esp-no-blockio", "missing-boot-file", "pe-x64", "pe-other-arm", "pe-garbage"):
        assert by[("reference", defect)].expect == FALLS_THROUGH
    for defect in ("gpt-primary-crc", "gpt-backup-crc", "gpt-array-crc"):
        assert by[("reference", defect)].expect == RECOVERS and by[("reference", defect)].writes_disk
    assert by[("reference", "fat-chain-loop")].expect == EITHER
    ro = by[("reference", "gpt-primary-crc-ro")]
    assert ro.read_only and ro.expect == BOOTS and ro.edk2 == FALLS_THROUGH and not outcomes.conforms(ro, ro.edk2)


def test_an_arch_without_a_probe_has_cases_that_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cases, "PROBE_ARCHES", ("aarch64",))
    arm = cases.find("arm", "lfn")
    with pytest.raises(ValueError, match=r"case arm-lfn: no probe for arm yet \(have: aarch64\)"):
        cases.build_image(arm, "n")


def test_same_case_same_bytes_other_nonce_other_bytes() -> None:
    case = cases.find("aarch64", "over-2tib")
    a, b, c = (cases.build_image(case, n).fingerprint() for n in ("n1", "n1", "n2"))
    assert a == b != c


def test_write_disks_pairs_a_fallback_and_sets_block_size_and_read_only(tmp_path: Path) -> None:
    (four_k,) = cases.write_disks(cases.find("aarch64", "sector-4k"), "n", tmp_path)
    assert four_k.logical_block_size == 4096 and not four_k.read_only
    bad, fallback = cases.write_disks(cases.find("aarch64", "reference", "gpt-both-crc"), "n", tmp_path, "fb")
    assert fallback.path.read_bytes() == _saved(cases.build_image(cases.find("aarch64"), "fb"), tmp_path)
    assert fallback.path.stat().st_size == 64 << 20 and fallback.logical_block_size == 512
    assert b"VMCONFORM" not in bad.path.read_bytes()[:512]
    ro, _fb = cases.write_disks(cases.find("aarch64", "reference", "gpt-primary-crc-ro"), "n", tmp_path)
    assert ro.read_only


def test_gpt_changes_names_what_the_firmware_rewrote(tmp_path: Path) -> None:
    case = cases.find("aarch64", "reference", "gpt-primary-crc")
    image = cases.build_image(case, "n")
    path = cases.write_image(case, "n", tmp_path / "d.img")
    assert outcomes.gpt_changes(image, path) == ()
    repaired = cases.build_image(cases.find("aarch64"), "n").read(512, 512)  # what a repair writes: a valid header
    with path.open("r+b") as f:
        f.seek(512)
        f.write(repaired)
    assert outcomes.gpt_changes(image, path) == ("primary header",)


def test_observed_outcomes() -> None:
    seen = outcomes.observed_outcome
    assert seen("a", "b", ("a",), ()) == BOOTS and seen("a", "b", ("a",), ("primary header",)) == RECOVERS
    assert seen("a", "b", ("b",), ()) == FALLS_THROUGH and seen("a", None, (), ()) == "no-probe"
    assert seen("a", "b", ("c",), ()) == "wrong-probe"
    either = cases.find("aarch64", "reference", "fat-chain-loop")
    assert all(outcomes.conforms(either, o) for o in (BOOTS, RECOVERS, FALLS_THROUGH))
    assert not outcomes.conforms(either, "no-probe")
    assert not outcomes.conforms(cases.find("aarch64"), RECOVERS)  # a valid image must not be rewritten


def test_qemu_command_carries_block_size_and_read_only(tmp_path: Path) -> None:
    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    try:
        fw = config.resolve_firmware(entry, "edk2", "aarch64")
    except config.ConfigError as e:
        require("qemu-system-aarch64", AAVMF_CODE)
        pytest.fail(str(e), pytrace=False)
    disks = (Disk(tmp_path / "a.img", 4096), Disk(tmp_path / "b.img", read_only=True), tmp_path / "c.img")
    argv = backend_for(entry).command(BootRequest("aarch64", disks, fw, tmp_path, None))
    drives = [a for a in argv if a.startswith("if=none")]
    devices = [a for a in argv if a.startswith("virtio-blk-pci")]
    assert drives == [
        f"if=none,id=disk0,format=raw,file={tmp_path / 'a.img'}",
        f"if=none,id=disk1,format=raw,file={tmp_path / 'b.img'},readonly=on",
        f"if=none,id=disk2,format=raw,file={tmp_path / 'c.img'}",
    ]
    assert devices == [
        "virtio-blk-pci,drive=disk0,logical_block_size=4096,physical_block_size=4096",
        "virtio-blk-pci,drive=disk1",
        "virtio-blk-pci,drive=disk2",
    ]


# --- vmconform gen ------------------------------------------------------------------------------------


def test_gen_list_names_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gen", "--list"]) == 0
    out = capsys.readouterr().out
    for case in CATALOGUE:
        assert f"\n{case.name} " in out
    assert "aarch64-reference-gpt-both-crc" in out and "falls-through" in out
    assert cli.main(["gen", "--list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in doc] == [c.name for c in CATALOGUE]
    row = next(d for d in doc if d["name"] == "aarch64-reference-esp-fat16")
    assert row["violates"] == ["IMG-3"] and row["check_fails"] == ["esp.fat.type"] and row["expect"] == BOOTS


def test_gen_one_defect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.img"
    assert cli.main(["gen", "--layout", "reference", "--defect", "pe-x64", "--nonce", "abc", "-o", str(out)]) == 0
    assert out.read_bytes() == _saved(cases.build_image(cases.find("aarch64", "reference", "pe-x64"), "abc"), tmp_path)
    assert "fallback" in capsys.readouterr().err


def _saved(image: object, tmp_path: Path) -> bytes:
    path = tmp_path / "expected.img"
    image.save(path)  # type: ignore[attr-defined]
    return path.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gen", "--defect", "nope", "-o", "x.img"], "no case aarch64-reference-nope; known: layouts "),
        (["gen", "--arch", "arm", "-o", "x.img"], "case arm-reference: no probe for arm yet"),
        (["gen"], "gen needs -o FILE"),
        (["gen", "--json", "-o", "x.img"], "--json goes with --list"),
    ],
)
def test_gen_errors_are_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cases, "PROBE_ARCHES", ("aarch64",))  # as before the arm probe landed
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vmconform: error: ") and message in err[0], err


def test_gen_all_writes_the_matrix_sparse_with_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    assert cli.main(["gen", "--all", "-o", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    with_probe = [c for c in CATALOGUE if cases.has_probe(c.arch)]
    assert [m["name"] for m in manifest] == [c.name for c in with_probe]
    for record in manifest:
        path = out / record["file"]
        assert path.stat().st_blocks * 512 < 1 << 20, f"{path.name} occupies {path.stat().st_blocks * 512} bytes"
        if record["needs_fallback"]:
            assert (out / record["fallback_file"]).exists() and record["fallback_nonce"] != record["nonce"]
    sizes = {m["name"]: (out / m["file"]).stat().st_size for m in manifest}
    assert sizes["aarch64-over-2tib"] == 3 << 40 and sizes["aarch64-sector-4k"] % 4096 == 0
