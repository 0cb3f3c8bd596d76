"""`vmconform boot`: the arch comes from the image, exit 0 only for a probe that finished and a clean power-off,
and bad arguments are one line (exit 2), never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def vmconform(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmconform.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    disk = tmp_path_factory.mktemp("img") / "disk.img"
    assert vmconform("gen", "--nonce", "bootcli", "-o", str(disk)).returncode == 0
    return disk


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("--timeout", "nan"), "--timeout nan: a boot timeout is a number of seconds above 0"),
        (("--timeout", "-1"), "--timeout -1.0: a boot timeout is a number of seconds above 0"),
        (("--keep", "README.md"), "--keep README.md: is a file, not a folder"),
        (("--keep", "README.md/sub"), "--keep README.md/sub: cannot create the folder"),
    ],
)
def test_bad_boot_arguments_are_one_line(reference, extra, expected):
    p = vmconform("boot", *extra, str(reference))
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and expected in lines[0] and "Traceback" not in p.stderr, p.stderr


def test_an_image_without_a_boot_file_asks_for_the_arch(tmp_path):
    from vmconform.image import DiskSpec, EspFile, build_disk

    disk = tmp_path / "noboot.img"
    build_disk(DiskSpec(files=(EspFile("EFI/README.TXT", b"no loader\n"),), seed="noboot")).save(disk)
    p = vmconform("boot", str(disk))
    assert p.returncode == 2 and "holds no \\EFI\\BOOT\\BOOTAA64.EFI or BOOTARM.EFI; choose the guest with --arch" in (
        p.stderr
    )


@pytest.mark.boot
def test_an_arm_image_boots_with_the_arm_firmware_without_arch(tmp_path):
    disk = tmp_path / "arm.img"
    assert vmconform("gen", "--arch", "arm", "--nonce", "armcli", "-o", str(disk)).returncode == 0
    p = vmconform("boot", "-q", str(disk))
    assert p.returncode == 0, p.stderr
    assert "booting arm on qemu with edk2 (/usr/share/AAVMF/AAVMF32_CODE.fd)" in p.stderr


def test_a_vm_that_powers_off_without_a_probe_line_is_not_a_success(tmp_path, reference):
    """A fake VM (the fault cannot be produced with real firmware on demand): it exits 0 having printed
    nothing of the probe. `boot` must not call that a success."""
    fake = tmp_path / "fake-qemu"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write('some firmware noise\\r\\n')\n")
    fake.chmod(0o755)
    doc = yaml.safe_load((REPO / "hypervisors.yaml").read_text())
    entry = doc["hypervisors"]["qemu"]
    entry["arches"] = {"aarch64": {**entry["arches"]["aarch64"], "binary": str(fake)}}
    entry["firmwares"] = {"edk2": {"aarch64": entry["firmwares"]["edk2"]["aarch64"]}}
    hv = tmp_path / "hv.yaml"
    hv.write_text(yaml.safe_dump({"default": "qemu", "hypervisors": {"qemu": entry}}))
    p = vmconform("boot", f"--hypervisors-file={hv}", str(reference))
    assert p.returncode == 1, p.stderr
    assert "the probe never reported END" in p.stderr
