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
        (("boot", "--hypervisor", "nope", "README.md"), "no hypervisor named 'nope'; configured: kvm, qemu, qemu-dt"),
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
