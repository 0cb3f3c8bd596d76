"""vmconform gen --signed: the image's probe carries an Authenticode signature by vmconform's test key."""

import shutil
import subprocess
import sys
from pathlib import Path

import pefile
import pytest

from vmconform import signing
from vmconform.probe import build_probe

REPO = Path(__file__).resolve().parent.parent
TOOLS = {"sbsign": "sbsigntool"}


@pytest.fixture(autouse=True)
def _tools() -> None:
    """A missing tool is a failure naming its install command (scripts/setup.sh test installs them), never a skip."""
    missing = {t: p for t, p in TOOLS.items() if not shutil.which(t)}
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install {' '.join(sorted(set(missing.values())))}",
                    pytrace=False)  # fmt: skip


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
    unsigned = build_probe(arch, "signed1")
    pe = pefile.PE(data=unsigned)
    checksum = pe.OPTIONAL_HEADER.get_field_absolute_offset("CheckSum")
    directory = pe.OPTIONAL_HEADER.DATA_DIRECTORY[4].get_file_offset()  # the certificate table's entry
    data = disk.read_bytes()
    at = data.find(unsigned[:checksum])
    assert at > 0
    # a small file: its clusters are contiguous; a signature is as long as any other (only its signing time differs)
    probe = tmp_path / "probe.efi"
    probe.write_bytes(data[at : at + len(signing.sign(unsigned))])
    done = subprocess.run(["sbverify", "--cert", str(signing.signing_key().cert), str(probe)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    written = bytearray(probe.read_bytes()[: len(unsigned)])
    written[checksum : checksum + 4] = unsigned[checksum : checksum + 4]
    written[directory : directory + 8] = bytes(8)
    assert bytes(written) == unsigned  # the probe itself, untouched by signing
