"""AArch32 on the xen entry: there is no AArch32 domU firmware here, so a run on Xen says once, in its notes
(terminal summary, report.html, results.json), that arm guests are not run and why; ``--arch arm`` stops before
the first boot with the same reason. No domU is booted: the run selects no test (the note is made when the run
opens, before collection)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.run_records import read_results
from vmconform.session import open_run

REPO = Path(__file__).resolve().parent.parent
WHY = "there is no AArch32 domU firmware to boot them"
NOTE = f"arm guests are not run on hypervisor xen: {WHY}"


def suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_boot.py", "--hypervisor=xen",
         f"--reports-dir={tmp_path}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip


def test_a_default_run_on_xen_says_once_that_arm_guests_are_not_run(tmp_path: Path) -> None:
    p = suite(tmp_path, "-k", "no_such_test")
    notes = [n for n in read_results(tmp_path)["notes"] if "arm guests" in n]
    assert len(notes) == 1 and notes[0].startswith(NOTE), notes
    assert "Xen on Arm does run AArch32 guests in principle" in notes[0]
    assert p.stdout.count(f"note: {NOTE}") == 1, p.stdout[-3000:]
    assert NOTE in (tmp_path / "latest" / "report.html").read_text()


def test_arch_arm_on_xen_stops_before_any_boot_with_the_reason(tmp_path: Path) -> None:
    p = suite(tmp_path, "--arch", "arm")
    assert p.returncode == 4, p.stdout[-2000:] + p.stderr[-2000:]
    assert f"--arch arm: hypervisor xen does not run arm guests: {WHY}" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_qemu_runs_both_arches_and_notes_nothing_of_the_kind() -> None:
    setup = open_run(REPO / "hypervisors.yaml", "qemu")
    assert setup.arches == ("aarch64", "arm")
    assert not [n for n in setup.notes if "guests are not run" in n]
