"""The run record: typed, frozen, round-trips through JSON, matches the schema; hostile results files are refused
in one line (exit 2 from the CLI), never a traceback, never a hang, never read silently."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_files import fifo_error, oversized
from run_records import validate

from vmconform import report
from vmconform.records import (
    MAX_RESULTS_BYTES,
    SCHEMA_VERSION,
    CaseRecord,
    ClauseRecord,
    FirmwareRecord,
    RecordError,
    RunRecord,
    VerdictRecord,
    load_run,
)


def record(transcript: str = "cases/t/console.log") -> RunRecord:
    case = CaseRecord(
        test="suite/test_boot.py::test_removable_media_boot[qemu-edk2-aarch64-reference]",
        outcome="passed",
        when="call",
        duration=0.8,
        message="",
        case="aarch64-reference",
        arch="aarch64",
        firmware="edk2",
        nonce="abc",
        stop="matched",
        exit_status=0,
        probe=("VMCONFORM abc FW st_sig=1 uefi_rev=00020046 fw_rev=00010000 rt_sig=2 vendor=EDK II",),
        transcript=transcript,
        verdicts=(VerdictRecord("FW-1", "pass", "ok", "qemu-edk2-aarch64-reference"),),
        extra={"probe_mode": "warm", "nvram_passed": True},
    )
    clause = ClauseRecord("FW-1", "boots", "MUST", "pass", 1, 1, ("c: ok",), "how")
    fw = FirmwareRecord({"code": "/fw/C.fd", "vars_template": "/fw/V.fd"}, "flash", "60-edk2.json", {"code": "a" * 64})
    return RunRecord("qemu", "qemu", "tcg", "hypervisors.yaml", ("aarch64",), {"edk2/aarch64": fw}, 0, "2.0",
                     (clause,), (case,), started="2026-12-04T10:00:00Z")  # fmt: skip


def test_a_record_round_trips_and_matches_the_schema():
    run = record()
    doc = json.loads(run.dumps())
    validate(doc)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["results"][0]["probe_mode"] == "warm"  # extra facts sit beside the named fields
    again = RunRecord.from_json(doc)
    assert again == run and again.results[0].extra["nvram_passed"] is True


def test_a_record_is_frozen():
    with pytest.raises(AttributeError):
        record().spec = "1.0"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "newer than this vmconform reads"),
        (lambda d: d.update(results="nope"), "results: expected list"),
        (lambda d: d["results"][0].update(outcome=3), "outcome: expected str"),
        (lambda d: d["clauses"][0].pop("level"), "missing key 'level'"),
        (lambda d: d.update(firmwares=[]), "firmwares: expected dict"),
    ],
)
def test_a_record_of_the_wrong_shape_is_one_line(tmp_path, edit, message):
    doc = record().to_json()
    edit(doc)
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(RecordError, match=message):
        load_run(tmp_path)
    p = subprocess.run([sys.executable, "-m", "vmconform.cli", "compare", str(tmp_path), str(tmp_path)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr


def test_hostile_results_files_are_refused_without_hanging(tmp_path):
    assert "not a regular file" in fifo_error(tmp_path / "fifo.json", _error)
    assert "not a regular file" in _error(Path("/dev/zero"))
    assert "more than a results.json may be" in _error(oversized(tmp_path / "big.json", MAX_RESULTS_BYTES + 1))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert "not a readable results.json" in _error(deep)


def _error(path: Path) -> str:
    try:
        load_run(path)
    except RecordError as e:
        return str(e)
    return "no error"


def test_transcript_links_stay_inside_the_run_folder(tmp_path):
    for bad in ("javascript:alert(1)", "/etc/passwd", "../../etc/passwd", "https://example.invalid/x"):
        html = report.render_html(record(transcript=bad), tmp_path)
        assert f'href="{bad}' not in html
        assert report.transcript_link(bad, tmp_path) == ""
    assert report.transcript_link("cases/t/console.log", tmp_path) == "cases/t/console.log"
    assert report.transcript_link(str(tmp_path / "cases" / "x.log"), tmp_path) == "cases/x.log"
    assert 'href="cases/t/console.log"' in report.render_html(record(), tmp_path)
