"""The vmconform command: gen is deterministic, boot streams a real console, errors are one line."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def vmconform(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmconform.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_gen_is_deterministic_and_the_nonce_matters(tmp_path):
    a, b, c = tmp_path / "a.img", tmp_path / "b.img", tmp_path / "c.img"
    for out, nonce in ((a, "n1"), (b, "n1"), (c, "n2")):
        p = vmconform("gen", "--arch", "aarch64", "--nonce", nonce, "-o", str(out))
        assert p.returncode == 0, p.stderr
    assert sha(a) == sha(b) != sha(c)
    assert a.stat().st_blocks * 512 < 1 << 20, "the image is sparse"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("gen", "--nonce", "bad nonce!", "-o", "x.img"), "vmconform: error: "),
        (("gen", "--layout", "nope", "-o", "x.img"), "vmconform: error: no case aarch64-nope; known:"),
        (("boot", "/nonexistent.img"), "vmconform: error: /nonexistent.img: no such disk image file"),
        (("boot", "--hypervisor", "nope", "README.md"), "no hypervisor named 'nope'; configured: kvm, "),
    ],
)
def test_errors_are_one_line(args, expected):
    p = vmconform(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in p.stderr


@pytest.mark.boot
def test_boot_streams_the_console_and_exits_zero(tmp_path):
    disk = tmp_path / "disk.img"
    assert vmconform("gen", "--nonce", "clitest", "-o", str(disk)).returncode == 0
    p = vmconform("boot", "--keep", str(tmp_path / "keep"), str(disk))
    assert p.returncode == 0, p.stderr
    assert "VMCONFORM clitest BOOT aarch64" in p.stdout
    assert "VM exit status 0" in p.stderr
    assert (tmp_path / "keep" / "console.log").exists()


def results_doc(status: str) -> dict:
    return {
        "hypervisor": "qemu",
        "backend": "qemu",
        "accel": "tcg",
        "hypervisors_file": "h.yaml",
        "arches": ["aarch64"],
        "spec": "2.0",
        "exit_status": 0,
        "firmwares": {},
        "clauses": [
            {
                "clause": "FW-1",
                "title": "t",
                "level": "MUST",
                "status": status,
                "cases": 1,
                "deciding_cases": 1,
                "evidence": [],
                "how": "",
            }
        ],
        "results": [
            {
                "test": "suite/x.py::t[a]",
                "outcome": "passed" if status == "pass" else "failed",
                "when": "call",
                "duration": 1.0,
                "message": "",
            }
        ],
    }


def test_report_and_compare(tmp_path):
    import json

    a, b = tmp_path / "a", tmp_path / "b"
    for d, status in ((a, "pass"), (b, "fail")):
        d.mkdir()
        (d / "results.json").write_text(json.dumps(results_doc(status)))
    p = vmconform("report", str(a))
    assert p.returncode == 0 and p.stdout.startswith("CONFORMS: all 1 MUST clauses pass")
    assert "CONFORMS" in (a / "report.html").read_text()
    p = vmconform("compare", str(a), str(b))
    assert p.returncode == 1 and "REGRESSION FW-1 (MUST): pass -> fail" in p.stdout
    assert "  REGRESSION t[a]: passed -> failed" in p.stdout
    assert vmconform("compare", str(b), str(a)).returncode == 0
    p = vmconform("compare", str(a), str(tmp_path / "nope"))
    assert p.returncode == 2 and p.stderr.strip().endswith(
        "not found; give a run folder under reports/ or its results.json"
    )


@pytest.mark.boot
def test_boot_with_a_fallback_disk_reaches_the_fallback(tmp_path):
    """A fall-through case by hand: the bad disk first, the fallback second; EDK2 reaches the fallback's probe."""
    bad, fallback = tmp_path / "bad.img", tmp_path / "fallback.img"
    p = vmconform("gen", "--defect", "pe-x64", "--nonce", "badcase", "-o", str(bad))
    assert p.returncode == 0 and f"vmconform boot {bad} fallback.img" in p.stderr
    assert vmconform("gen", "--nonce", "fallback1", "-o", str(fallback)).returncode == 0
    p = vmconform("boot", str(bad), str(fallback))
    assert p.returncode == 0, p.stderr
    assert "VMCONFORM fallback1 BOOT aarch64" in p.stdout and "VMCONFORM badcase" not in p.stdout
    assert "VM exit status 0" in p.stderr


@pytest.mark.boot
def test_gen_with_facts_builds_a_probe_that_reports_them(tmp_path):
    disk = tmp_path / "facts.img"
    assert vmconform("gen", "--facts", "tables,cpu", "--nonce", "facts1", "-o", str(disk)).returncode == 0
    p = vmconform("boot", str(disk))
    assert p.returncode == 0, p.stderr
    assert "VMCONFORM facts1 TABLES count=" in p.stdout and "VMCONFORM facts1 CPU el=" in p.stdout
    bad = vmconform("gen", "--facts", "tables,colour", "-o", str(disk))
    assert bad.returncode == 2 and "--facts colour: unknown fact; choose from" in bad.stderr


@pytest.mark.parametrize(("arch", "insn"), [("aarch64", "blr x17"), ("arm", "blx ip")])
def test_gen_listing_prints_the_probe_assembly_with_comments(arch, insn):
    p = vmconform("gen", "--listing", "--arch", arch, "--mode", "warm", "--facts", "time", "--nonce", "lst1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"; vmconform probe for {arch}, mode warm, facts time, nonce lst1:")
    assert "; RT->SetVariable(nv name, vendor, NV|BS|RT, nonce)" in p.stdout and insn in p.stdout
    assert "guid_loaded_image:" in p.stdout and '.ucs2 "lst1"' in p.stdout
    bad = vmconform("gen", "--listing", "--facts", "colour")
    assert bad.returncode == 2 and "--facts colour: unknown fact" in bad.stderr
