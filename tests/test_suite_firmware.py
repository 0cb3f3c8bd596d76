"""The firmware, hardware-description and platform modules of the suite, run as a user runs them (pytest in a
subprocess): they pass where the firmware conforms, and the negative controls prove the verdicts can fail.

The wrong-arch firmware control is tests/test_faults.py::test_firmware_for_the_wrong_architecture.
"""

from pathlib import Path

import pytest
import yaml
from run_records import read_results
from test_suite_run import REPO, run_pytest

MODULES = ("suite/test_firmware.py", "suite/test_hwdesc.py", "suite/test_platform.py")


def clauses(tmp_path: Path) -> dict[str, dict]:
    doc = read_results(tmp_path)
    return {c["clause"]: c for c in doc["clauses"]}


def outcomes(tmp_path: Path) -> dict[str, str]:
    doc = read_results(tmp_path)
    return {r["test"].split("::")[-1]: r["outcome"] for r in doc["results"]}


@pytest.mark.boot
def test_edk2_aarch64_passes_all_but_the_acpi_and_dt_clause(tmp_path):
    p = run_pytest(*MODULES, "-n", "2", "--case", "aarch64-reference", f"--reports-dir={tmp_path}")
    got = outcomes(tmp_path)
    assert got.pop("test_hardware_description[qemu-edk2-aarch64-reference]") == "failed", p.stdout[-3000:]
    assert set(got.values()) == {"passed"} and len(got) == 9, p.stdout[-3000:]
    c = clauses(tmp_path)
    passing = (
        "FW-4",
        "FW-5",
        "FW-6",
        "FW-9",
        "HW-1",
        "PLAT-1",
        "PLAT-3",
        "PLAT-4",
        "PLAT-5",
        "V2-2",
        "V2-3",
        "V2-6",
        "V2-7",
    )
    assert {k: c[k]["status"] for k in passing} == dict.fromkeys(passing, "pass")
    assert "the variable is in the instance's vars file" in c["FW-6"]["evidence"][0]
    assert "gic-version=2: MADT GICD GicVersion 2" in c["V2-7"]["evidence"][0]
    assert "gic-version=3: MADT GICD GicVersion 3" in c["V2-7"]["evidence"][0]
    assert c["V2-5"]["status"] == "fail" and p.returncode == 1


@pytest.mark.boot
def test_device_tree_clauses_by_spec_version(tmp_path):
    """qemu-dt (acpi=off) passes spec 1.0's DT clause; plain qemu fails spec 2.0's "ACPI and DT" clause."""
    dt = run_pytest(
        "suite/test_hwdesc.py",
        "--hypervisor=qemu-dt",
        "--spec=1.0",
        "--case",
        "aarch64-reference",
        f"--reports-dir={tmp_path / 'dt'}",
    )
    assert dt.returncode == 0, dt.stdout[-3000:]
    hw2 = clauses(tmp_path / "dt")["HW-2"]
    assert hw2["status"] == "pass"
    assert "DT /cpus has 1 cpu node(s), the VM is configured with 1 vCPU(s)" in hw2["evidence"][0]
    assert "DT /psci compatible 'arm,psci-1.0', method hvc" in hw2["evidence"][0]

    both = run_pytest(
        "suite/test_hwdesc.py",
        "--hypervisor=qemu",
        "--spec=2.0",
        "--case",
        "aarch64-reference",
        f"--reports-dir={tmp_path / 'acpi'}",
    )
    assert both.returncode == 1
    v25 = clauses(tmp_path / "acpi")["V2-5"]
    assert v25["status"] == "fail" and v25["level"] == "MUST"
    assert "no DTB (B1B621D5-F19C-41A5-830B-D9152C69AAE0) entry" in v25["evidence"][0]
    assert "ACPI_20" in v25["evidence"][0]
    assert "V2-5 (MUST) fail: both ACPI and a DTB are required" in both.stdout


def test_ephemeral_vars_drive_fails_the_persistence_clauses(tmp_path):
    """An entry with -snapshot: every NVRAM test stops at its pre-flight check with the reason, before booting."""
    doc = yaml.safe_load((REPO / "hypervisors.yaml").read_text())
    entry = doc["hypervisors"]["qemu"]
    entry["extra_args"] = ["-snapshot"]
    hv = tmp_path / "hypervisors.yaml"
    hv.write_text(yaml.safe_dump({"default": "qemu", "hypervisors": {"qemu": entry}}))
    p = run_pytest(
        "suite/test_firmware.py",
        "-k",
        "nvram or not_in_image",
        "--case",
        "aarch64-reference",
        f"--hypervisors-file={hv}",
        f"--reports-dir={tmp_path / 'r'}",
    )
    assert p.returncode == 1, p.stdout[-3000:]
    c = clauses(tmp_path / "r")
    why = "pre-flight: the vars store is ephemeral: extra_args has '-snapshot'"
    for clause in ("FW-4", "FW-5"):
        assert c[clause]["status"] == "fail" and why in c[clause]["evidence"][0]
    assert c["FW-6"]["status"] == "error" and why in c["FW-6"]["evidence"][0]
    got = outcomes(tmp_path / "r")
    assert got["test_variables_not_in_image[qemu-edk2-aarch64-reference]"] == "failed"  # FW-6 is a MUST
    assert got["test_nvram_power_cycle[qemu-edk2-aarch64-reference]"] == "passed"  # FW-4/5 warn (SHOULD)
    assert "ClauseWarning" in p.stdout
    assert not list((tmp_path / "r").glob("*/cases/*/console.log"))  # nothing booted
