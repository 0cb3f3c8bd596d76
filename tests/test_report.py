"""Reports from results.json: the overall verdict, the HTML certificate, comparing two runs."""

import copy
import json

import pytest

from vmconform import report
from vmconform.records import RunRecord


def doc(**clause_status):
    clauses = [
        {
            "clause": c,
            "title": c.lower(),
            "level": lvl,
            "status": st,
            "cases": 1,
            "deciding_cases": 1,
            "evidence": [f"x: {c}"],
            "how": "",
        }
        for c, (lvl, st) in clause_status.items()
    ]
    return {
        "hypervisor": "qemu",
        "backend": "qemu",
        "accel": "tcg",
        "hypervisors_file": "hypervisors.yaml",
        "arches": ["aarch64"],
        "spec": "2.0",
        "exit_status": 0,
        "firmwares": {
            "edk2/aarch64": {
                "code": "/fw/CODE.fd",
                "mapping": "flash",
                "source": "d.json",
                "sha256": {"code": "a" * 64},
            }
        },
        "clauses": clauses,
        "results": [
            {
                "test": "suite/test_boot.py::test_removable_media_boot[qemu-aarch64-reference]",
                "outcome": "passed",
                "when": "call",
                "duration": 1.0,
                "message": "",
                "firmware": "edk2",
                "arch": "aarch64",
                "probe": ["VMCONFORM n FW st_sig=1 uefi_rev=00020046 fw_rev=00010000 rt_sig=2 vendor=EDK II"],
            }
        ],
    }


def rec(d):
    return RunRecord.from_json(d)


def test_overall_verdict():
    assert report.overall(rec(doc(A=("MUST", "pass"), B=("SHOULD", "fail"))))[0] == report.CONFORMS
    assert report.overall(rec(doc(A=("MUST", "pass"), B=("MUST", "not-tested"))))[0] == report.INCOMPLETE
    v, why = report.overall(rec(doc(A=("MUST", "fail"), B=("MUST", "error"))))
    assert v == report.DOES_NOT_CONFORM and why == "MUST clauses failing: A; undecided: B"


def test_a_harness_error_never_makes_the_run_not_conform():
    v, why = report.overall(rec(doc(A=("MUST", "error"), B=("MUST", "not-tested"))))
    assert v == report.INCOMPLETE and "could not decide MUST clauses A" in why


def test_html_names_the_verdict_the_firmware_and_escapes_evidence():
    d = doc(A=("MUST", "fail"))
    d["clauses"][0]["evidence"] = ["case: <script>alert(1)</script>"]
    html = report.render_html(rec(d))
    assert "DOES NOT CONFORM" in html and "EDK II, firmware revision 0x00010000" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_compare_reports_regressions_case_changes_and_firmware_change():
    from vmconform.compare import CaseChange, ClauseChange, compare, side

    a = doc(A=("MUST", "pass"), B=("SHOULD", "fail"))
    b = copy.deepcopy(a)
    b["clauses"][0]["status"] = "fail"
    b["clauses"][1]["status"] = "pass"
    b["results"][0]["outcome"] = "failed"
    b["firmwares"]["edk2/aarch64"]["sha256"]["code"] = "b" * 64
    cmp = compare(side("rel-A", rec(a)), side("rel-B", rec(b)))
    assert cmp.clauses == (
        ClauseChange("regression", "A", "MUST", "pass", "fail", "x: A"),
        ClauseChange("fix", "B", "SHOULD", "fail", "pass"),
    )
    key = ("test_removable_media_boot", "aarch64", "aarch64-reference")  # read from the old-style test ID
    assert cmp.cases == (CaseChange("regression", key, "passed", "failed"),)
    assert cmp.setup == (("firmware aarch64 code sha256", "a" * 16, "b" * 16),) and cmp.exit_status == 1
    text = cmp.text()
    assert "  REGRESSION A (MUST): pass -> fail (x: A)\n  FIX        B (SHOULD): fail -> pass\n" in text
    same = compare(side("A", rec(a)), side("B", rec(copy.deepcopy(a))))
    assert "set-up: unchanged\n" in same.text() and same.text().endswith("verdict: no regression\n")
    assert same.exit_status == 0


def test_load_results_errors_are_one_line(tmp_path):
    with pytest.raises(report.ReportError, match="not found; give a run folder"):
        report.load_results(tmp_path)
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(report.ReportError, match="not a vmconform results.json"):
        report.load_results(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps(doc()))
    assert report.load_results(tmp_path).hypervisor == "qemu"
