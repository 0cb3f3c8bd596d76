"""Clause verdicts from boot results: levels per spec version, MUST fails the test, SHOULD warns."""

from pathlib import Path

import pytest

from vmconform import clauses, verdicts
from vmconform.console import Stop
from vmconform.probe import parse_line
from vmconform.runner import BootResult, CaseFailure
from vmconform.verdicts import boot as vboot

FW_270 = (
    "VMCONFORM n1 FW st_sig=5453595320494249 uefi_rev=00020046 fw_rev=00010000 rt_sig=56524553544E5552 vendor=EDK II"
)


def result(*lines: str, stop: Stop | None = None, exit_status: int | None = 0, tail: str = "x") -> BootResult:
    parsed = tuple(p for p in (parse_line(ln) for ln in lines) if p is not None)
    return BootResult(
        nonce="n1",
        stop=stop or Stop("matched", "the probe reported END", lines[-1] if lines else ""),
        exit_status=exit_status,
        lines=parsed,
        foreign=(),
        workdir=Path("/nonexistent"),
        transcript=Path("/nonexistent/console.log"),
        command=("qemu",),
        tail=tail,
        elapsed=1.0,
        facts={p.key: p for p in parsed},
    )


def by_clause(vs):
    return {v.clause: v for v in vs}


def test_a_good_boot_passes_every_clause_it_evidences():
    r = result("VMCONFORM n1 BOOT aarch64", FW_270, "VMCONFORM n1 END shutdown")
    vs = by_clause(vboot.removable_media_boot(r, "aarch64", "2.0", "flash", "aarch64-reference"))
    assert set(vs) == {"IMG-1", "IMG-2", "IMG-3", "IMG-4", "IMG-5", "IMG-6", "FW-7", "FW-1", "FW-2", "FW-3"}
    assert {v.status for v in vs.values()} == {"pass"}
    assert vs["FW-3"].evidence.startswith("UEFI 2.7 (need 2.6)")
    verdicts.enforce(list(vs.values()), "2.0")  # nothing raised


def test_old_uefi_revision_is_a_should_warning_for_spec_2_only():
    fw24 = FW_270.replace("uefi_rev=00020046", "uefi_rev=00020028")
    r = result("VMCONFORM n1 BOOT aarch64", fw24, "VMCONFORM n1 END shutdown")
    v1 = by_clause(vboot.removable_media_boot(r, "aarch64", "1.0", "flash"))
    v2 = by_clause(vboot.removable_media_boot(r, "aarch64", "2.0", "flash"))
    assert v1["FW-3"].status == "pass" and v2["FW-3"].status == "fail"
    with pytest.warns(verdicts.ClauseWarning, match=r"FW-3 \(SHOULD\) fail: UEFI 2.4 \(need 2.6\)"):
        verdicts.enforce(list(v2.values()), "2.0")


def test_a_dead_end_fails_the_must_clauses_with_the_console_line():
    stop = Stop(
        "dead-end", "the firmware fell back to the UEFI Shell", 'BdsDxe: starting Boot0001 "EFI Internal Shell"'
    )
    r = result(stop=stop, exit_status=None)
    image = {c: ("pass", "vmconform check: the image holds every rule") for c in vboot.IMAGE_CLAUSES}
    vs = vboot.removable_media_boot(r, "aarch64", "2.0", "flash", "aarch64-reference", image, "esp-second")
    by = by_clause(vs)
    # the image conforms (vmconform check), so the firmware's dead end is the VM's failure, never an image clause
    assert {by[c].status for c in vboot.IMAGE_CLAUSES} == {"pass"}
    assert by["FW-1"].status == by["FW-7"].status == "fail" and "esp-second layout" in by["FW-1"].evidence
    with pytest.raises(
        CaseFailure,
        match=r"FW-1 \(MUST\) fail: the firmware must boot the esp-second layout .*"
        r"the firmware fell back to the UEFI Shell at",
    ):
        verdicts.enforce(vs, "2.0")


def test_silence_until_the_timeout_is_an_error_not_a_fail():
    r = result(stop=Stop("timeout", "no decision within 60 s"), exit_status=None, tail="")
    assert {v.status for v in vboot.removable_media_boot(r, "aarch64", "2.0", "flash")} == {"error"}


def test_wrong_signature_fails_fw1():
    bad = FW_270.replace("st_sig=5453595320494249", "st_sig=0000000000000000")
    r = result("VMCONFORM n1 BOOT aarch64", bad, "VMCONFORM n1 END shutdown")
    assert by_clause(vboot.removable_media_boot(r, "aarch64", "2.0", "flash"))["FW-1"].status == "fail"


def test_roll_up_takes_the_worst_status_and_lists_untested_clauses():
    vs = [
        {"clause": "IMG-1", "status": "pass", "evidence": "a", "case": "c1"},
        {"clause": "IMG-1", "status": "fail", "evidence": "b", "case": "c2"},
        {"clause": "FW-2", "status": "pass", "evidence": "c", "case": "c1"},
    ]
    rows = {r["clause"]: r for r in verdicts.roll_up(vs, "1.0")}
    assert rows["IMG-1"]["status"] == "fail" and rows["IMG-1"]["evidence"] == ["c2: b"]
    assert rows["FW-2"]["status"] == "pass" and rows["HW-2"]["status"] == "not-tested"
    assert "V2-5" not in rows and "V2-5" in {r["clause"] for r in verdicts.roll_up(vs, "2.0")}


def test_clause_levels_follow_the_spec_version():
    assert clauses.get("PLAT-5").level("1.0") == "SHOULD" and clauses.get("PLAT-5").level("2.0") == "MUST"
    assert clauses.get("HW-2").level("2.0") is None and clauses.get("V2-5").level("1.0") is None
    with pytest.raises(KeyError, match="unknown clause 'NOPE-1'"):
        clauses.get("NOPE-1")
