"""vmconform gen --signed: the image's probe carries an Authenticode signature by vmconform's test key."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vmconform import signing
from vmconform.probe import build_probe

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not shutil.which("sbsign"), reason="needs sbsigntool (scripts/setup.sh test)")


def vmconform(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmconform.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_gen_signed_writes_the_probe_signed_with_the_test_key(arch: str, tmp_path: Path) -> None:
    disk = tmp_path / "sb.img"
    p = vmconform("gen", "--arch", arch, "--signed", "--nonce", "signed1", "-o", str(disk))
    assert p.returncode == 0, p.stderr
    assert "image (probe signed with vmconform's test key), nonce signed1" in p.stderr
    signed = signing.sign(build_probe(arch, "signed1"))  # sbsign's signature is deterministic
    assert signed in disk.read_bytes()  # a small file: its clusters are contiguous in the FAT image
