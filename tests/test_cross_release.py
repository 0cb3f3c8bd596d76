"""A real cross-release comparison: the aarch64 reference and must-boot cases on EDK2 2022.11 (Debian bookworm) and
2026.08 (sid, which has no ARM32 build), then `vmconform compare`; and the reference case on QEMU 10.0.2.

The releases come from scripts/fetch-releases (run by scripts/setup.sh test; a no-op when the cache is current).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from run_records import read_results

from vmconform import releases

REPO = Path(__file__).resolve().parent.parent
NAMES = ("edk2-2022.11", "edk2-2026.08", "qemu-10.0")
MUST_BOOT = 11  # the aarch64 reference and its 10 other layouts that must boot


@pytest.fixture(scope="module")
def fetched() -> None:
    done = subprocess.run([str(REPO / "scripts" / "fetch-releases"), *NAMES], capture_output=True, text=True,
                          timeout=1800, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert all(releases.is_current(releases.BY_NAME[n]) for n in NAMES)


def suite(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_boot.py", f"--reports-dir={reports}"]
    return subprocess.run([*argv, *args], cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmconform.cli", "compare", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


@pytest.mark.boot
def test_edk2_2022_11_against_2026_08(fetched, tmp_path):
    old = suite(tmp_path / "old", "--arch", "aarch64", "--firmware", "edk2-2022.11")
    assert old.returncode == 0, old.stdout[-3000:]
    assert f"{MUST_BOOT} passed" in old.stdout.splitlines()[-1]
    # no --arch: both are configured, but sid's EDK2 has no arm build, so only its aarch64 cases are collected
    new = suite(tmp_path / "new", "--firmware", "edk2-2026.08")
    assert new.returncode == 0, new.stdout[-3000:]
    assert f"{MUST_BOOT} passed" in new.stdout.splitlines()[-1]
    note = "firmware edk2-2026.08 has no arm build"
    assert sum(1 for line in new.stdout.splitlines() if note in line) == 1
    doc = read_results(tmp_path / "new")
    assert len(doc["notes"]) == 1 and doc["notes"][0].startswith(note)
    assert doc["firmwares"]["edk2-2026.08/aarch64"]["identity"].startswith("Debian distribution of EDK II, ")
    assert doc["hypervisor_version"].startswith("QEMU emulator version ")

    a, b = tmp_path / "old" / "latest", tmp_path / "new" / "latest"

    def sha(run: str, firmware: str) -> str:
        return str(read_results(tmp_path / run)["firmwares"][f"{firmware}/aarch64"]["sha256"]["code"][:16])

    p = compare(str(a), str(b))
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"A: {a} (hypervisor qemu: QEMU emulator version ")
    assert lines[2:] == [
        "set-up:",
        "  firmware aarch64: edk2-2022.11 -> edk2-2026.08",
        "  firmware aarch64 identity: EDK II, firmware revision 0x00010000, UEFI revision 0x00020046 -> Debian "
        "distribution of EDK II, firmware revision 0x00010000, UEFI revision 0x00020046",
        f"  firmware aarch64 code sha256: {sha('old', 'edk2-2022.11')} -> {sha('new', 'edk2-2026.08')}",
        f"cases: {MUST_BOOT} paired; 0 regressed, 0 fixed, 0 flaky, 0 new, 0 removed, 0 otherwise changed",
        "clauses (spec 2.0): 0 regressed, 0 fixed, 0 flaky, 0 otherwise changed",
        "verdict: no regression",
    ]

    # the same reference case on QEMU 10.0.2 (bookworm-backports, run from the cache with -L)
    q10 = suite(tmp_path / "q10", "--hypervisor", "qemu-10.0", "--firmware", "edk2-2022.11", "--case",
                "aarch64-reference", "-k", "removable")  # fmt: skip
    assert q10.returncode == 0, q10.stdout[-3000:]
    p = compare(str(a), str(tmp_path / "q10" / "latest"))
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[3] == "  hypervisor: qemu -> qemu-10.0"
    assert lines[4].startswith("  hypervisor version: QEMU emulator version ")
    assert lines[4].endswith(" -> QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)")
    assert lines[5] == "cases: 1 paired; 0 regressed, 0 fixed, 0 flaky, 0 new, 10 removed, 0 otherwise changed"
