"""The conformance suite as a user runs it: pytest in a subprocess, reports, IDs and one-line errors."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from run_records import read_results

from vmconform import cases, config
from vmconform.outcomes import conforms

REPO = Path(__file__).resolve().parent.parent


def run_pytest(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_collect_only_lists_readable_ids():
    p = run_pytest("--collect-only", "-q")
    assert p.returncode == 0, p.stdout + p.stderr
    ids = set(p.stdout.split())
    assert "suite/test_boot.py::test_removable_media_boot[qemu-edk2-aarch64-reference]" in ids
    assert "suite/test_boot.py::test_must_boot[qemu-edk2-aarch64-esp-second]" in ids
    assert "suite/test_malformed.py::test_malformed_image[qemu-edk2-arm-reference-pe-x64]" in ids
    assert "suite/test_firmware.py::test_rtc[qemu-edk2-aarch64-reference]" in ids
    probed = [c for c in cases.catalogue() if cases.has_probe(c.arch)]
    reference = [c for c in probed if (c.layout, c.defect) == ("reference", "none")]
    # one test per case, plus the 10 firmware/hardware-description/platform tests, the 3 real boot loaders
    # (suite/test_payloads.py; shim and suite/test_secureboot.py only on Secure Boot firmwares) and the 3 OS probe
    # tests (suite/test_os.py) per reference image
    assert len([i for i in ids if i.startswith("suite/")]) == len(probed) + 16 * len(reference)


@pytest.mark.boot
def test_suite_passes_on_qemu_tcg_and_writes_reports(tmp_path):
    p = run_pytest("suite/test_boot.py", "-v", "--case", "aarch64-reference", f"--reports-dir={tmp_path}")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "test_removable_media_boot[qemu-edk2-aarch64-reference] PASSED" in p.stdout
    assert "vmconform" in p.stdout and "cases: 1 passed" in p.stdout
    run_dir = (tmp_path / "latest").resolve()
    junit = ET.parse(run_dir / "junit.xml").getroot()
    names = [tc.get("name") for tc in junit.iter("testcase")]
    assert names == ["test_removable_media_boot[qemu-edk2-aarch64-reference]"]
    doc = read_results(run_dir)
    (row,) = doc["results"]
    assert row["outcome"] == "passed" and row["exit_status"] == 0 and row["hypervisor"] == "qemu"
    assert row["probe"][0].startswith(f"VMCONFORM {row['nonce']} BOOT aarch64 ")  # BOOT grows fields
    assert "IMG-4" in row["clauses"]
    clauses = {c["clause"]: c for c in doc["clauses"]}
    assert clauses["IMG-4"]["status"] == "pass" and clauses["IMG-4"]["level"] == "MUST"
    (evidence,) = clauses["IMG-4"]["evidence"]
    boot_path = "path=\\EFI\\BOOT\\BOOTAA64.EFI"
    assert evidence == (
        f"qemu-edk2-aarch64-reference: VMCONFORM {row['nonce']} BOOT aarch64 {boot_path} "
        "(vmconform check: the image holds its rule of IMG-4)"
    )
    fw = doc["firmwares"]["edk2/aarch64"]
    assert len(fw["sha256"]["code"]) == 64 and doc["vendor_files_changed"] == []
    html = (run_dir / "report.html").read_text()
    assert "INCOMPLETE" in html and f"VMCONFORM {row['nonce']} BOOT aarch64" in html
    case_dir = run_dir / "cases" / "test_removable_media_boot_qemu-edk2-aarch64-reference"
    assert f"VMCONFORM {row['nonce']} END shutdown" in (case_dir / "console.log").read_text()


def test_unknown_hypervisor_lists_the_configured_names():
    p = run_pytest("--hypervisor=nope")
    assert p.returncode == 4
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    names = ", ".join(sorted(config.load(REPO / "hypervisors.yaml").entries))
    assert err == [
        f"ERROR: {REPO / 'hypervisors.yaml'}: no hypervisor named 'nope'; configured: {names} "
        "(choose one with --hypervisor, or add an entry under 'hypervisors:')"
    ]


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "hypervisors:\n  qemu:\n    backend: qemu\n    arches: {}\n    bogus: 1\n",
            "hypervisors.yaml:5: hypervisors.qemu.bogus: unknown key; allowed here:",
        ),
        (
            "hypervisors:\n  qemu:\n    backend: qemu\n    arches:\n      aarch64: {binary: qemu-system-aarch64, "
            "machine: virt, cpu: max, memory: 1G}\n    firmwares:\n      edk2:\n        aarch64: "
            "{code: /nonexistent/C.fd, vars: /nonexistent/V.fd}\n",
            "hypervisors.yaml:8: hypervisors.qemu.firmwares.edk2.aarch64: code: /nonexistent/C.fd is missing",
        ),
    ],
)
def test_bad_hypervisors_file_is_one_line(tmp_path, yaml_text, expected):
    f = tmp_path / "hypervisors.yaml"
    f.write_text(yaml_text)
    p = run_pytest(f"--hypervisors-file={f}")
    assert p.returncode == 4
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("ERROR: ") and expected in err[0], p.stderr


def test_suite_options_outside_the_suite_are_refused(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    p = run_pytest("--hypervisor=qemu", str(tmp_path / "test_x.py"), f"--rootdir={tmp_path}")
    assert p.returncode == 4
    assert "--hypervisor applies to the conformance suite" in p.stderr


def test_space_separated_path_option_outside_the_checkout_is_explained(tmp_path):
    p = run_pytest("--reports-dir", str(tmp_path))
    assert p.returncode == 4
    assert f"write --reports-dir={tmp_path}" in p.stderr


def outcomes(run_dir: Path) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    doc = read_results(run_dir)
    per_case = {r["test"]: r["outcome"] for r in doc["results"]}
    clauses = tuple((c["clause"], c["status"]) for c in doc["clauses"])
    return {t: (o, clauses) for t, o in per_case.items()}


@pytest.mark.boot
def test_two_xdist_workers_give_the_same_results_as_none(tmp_path):
    some = ("aarch64-reference", "aarch64-esp-second", "aarch64-reference-pe-x64")
    args = ("suite/test_boot.py", "suite/test_malformed.py", "--firmware", "edk2", "--firmware", "u-boot",
            *[a for c in some for a in ("--case", c)])  # fmt: skip
    serial = run_pytest(*args, f"--reports-dir={tmp_path / 'serial'}")
    parallel = run_pytest(*args, "-n", "2", f"--reports-dir={tmp_path / 'parallel'}")
    # (U-Boot does not fall through to a second disk, so the pe-x64 case fails on it in both runs)
    assert serial.returncode == parallel.returncode, parallel.stdout[-2000:]
    a, b = outcomes((tmp_path / "serial" / "latest").resolve()), outcomes((tmp_path / "parallel" / "latest").resolve())
    assert len(a) == 6 and a == b
    # every case of the parallel run wrote its own transcript
    assert len(list((tmp_path / "parallel" / "latest").resolve().glob("cases/*/console.log"))) == 6


@pytest.mark.boot
def test_the_whole_matrix_on_edk2_ends_as_the_catalogue_says(tmp_path):
    """The default suite on QEMU TCG + Debian's AAVMF/AAVMF32, every case of both arches: each case's observed
    outcome is the catalogue's `edk2` column, and a case passes exactly when that outcome conforms to UEFI."""
    p = run_pytest("suite/test_boot.py", "suite/test_malformed.py", "-n", "2", f"--reports-dir={tmp_path}")
    doc = read_results(tmp_path)
    by_name = {c.name: c for c in cases.catalogue()}
    rows = {r["case"]: r for r in doc["results"]}
    assert set(rows) == {n for n, c in by_name.items() if cases.has_probe(c.arch)}
    wrong = []
    for name, row in rows.items():
        case = by_name[name]
        want = "passed" if conforms(case, case.edk2) else "failed"
        if (row["observed"], row["outcome"]) != (case.edk2, want):
            wrong.append(f"{name}: observed {row['observed']} ({row['outcome']}), catalogue {case.edk2} ({want})")
    assert not wrong, "\n".join(wrong)
    must_fail = [n for n, c in by_name.items() if cases.has_probe(c.arch) and not conforms(c, c.edk2)]
    assert p.returncode == (1 if must_fail else 0)
    assert ("DOES NOT CONFORM" in p.stdout) == bool(must_fail)


def test_a_mistyped_case_name_is_one_line_with_suggestions():
    p = run_pytest("--case", "aarch64-refrence")
    assert p.returncode == 4
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("ERROR: --case aarch64-refrence: no such case for aarch64, arm; ")
    assert "did you mean aarch64-reference," in err[0]


def test_clause_selects_the_tests_that_evidence_it():
    p = run_pytest("--collect-only", "-q", "--clause", "FW-9", "--clause", "V2-7")
    assert p.returncode == 0, p.stdout + p.stderr
    ids = sorted(i for i in p.stdout.split() if i.startswith("suite/"))
    assert ids == sorted(
        f"suite/{m}[qemu-edk2-{a}-reference]"
        for m in ("test_firmware.py::test_rtc", "test_platform.py::test_gic_versions", "test_os.py::test_os_probe")
        for a in ("aarch64", "arm")
    )
    bad = run_pytest("--clause", "FW-55")
    assert bad.returncode == 4 and "ERROR: --clause FW-55: no such clause; did you mean FW-5" in bad.stderr
