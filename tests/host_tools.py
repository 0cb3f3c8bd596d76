"""What the project's tests need on the host, and the one way a test says that something is missing.

A missing oracle tool, QEMU or firmware is a test *failure* naming the install command, never a skip:
`scripts/setup.sh test` (and so `scripts/run-tests` and CI) installs all of it, so a skip would only hide
a broken set-up. In a test body, `require("sgdisk", AAVMF_CODE)`; on a test, `@requires("sgdisk")`
(the ``requires`` mark, checked before the test runs by tests/conftest.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

AAVMF_CODE = "/usr/share/AAVMF/AAVMF_CODE.fd"
AAVMF32_CODE = "/usr/share/AAVMF/AAVMF32_CODE.fd"

# a command (or an absolute file path) -> the Debian package that provides it, as in scripts/setup.sh
PACKAGES = {
    "sgdisk": "gdisk",
    "fsck.fat": "dosfstools",
    "mkfs.fat": "dosfstools",
    "mkfs.vfat": "dosfstools",
    "mdir": "mtools",
    "mtype": "mtools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "qemu-img": "qemu-utils",
    "dd": "coreutils",
    "fdisk": "fdisk",
    "dtc": "device-tree-compiler",
    "systemd-repart": "systemd",
    "virsh": "libvirt-daemon-system",
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-system-arm": "qemu-system-arm",
    "sbsign": "sbsigntool",
    "sbverify": "sbsigntool",
    "osslsigncode": "osslsigncode",
    "chromium": "chromium",
    "readelf": "binutils",
    "cpio": "cpio",
    "bsdtar": "libarchive-tools",
    "gcc": "gcc",
    AAVMF_CODE: "qemu-efi-aarch64",
    AAVMF32_CODE: "qemu-efi-arm",
}


def missing(*needs: str | Path) -> list[str]:
    """The commands (looked up on PATH) and absolute files (tested for existence) of `needs` that are absent."""
    gone = []
    for need in map(str, needs):
        present = Path(need).exists() if need.startswith("/") else shutil.which(need) is not None
        if not present:
            gone.append(need)
    return gone


def install_hint(needs: list[str]) -> str:
    """One line: what is missing and the apt-get line that installs it."""
    packages = sorted({PACKAGES.get(n, "?") for n in needs} - {"?"})
    unknown = [n for n in needs if n not in PACKAGES]
    how = f"install with `apt-get install {' '.join(packages)}` as root" if packages else ""
    if unknown:
        how += ("; " if how else "") + f"no known Debian package for {', '.join(unknown)}"
    return f"not installed: {', '.join(needs)}: {how} (scripts/setup.sh test installs all the tests use)"


def require(*needs: str | Path) -> None:
    """Fail the calling test, saying what to install, unless every one of `needs` is on this host."""
    gone = missing(*needs)
    if gone:
        pytest.fail(install_hint(gone), pytrace=False)


def requires(*needs: str | Path) -> pytest.MarkDecorator:
    """A mark: the test fails at set-up, saying what to install, unless every one of `needs` is present."""
    return pytest.mark.requires(*map(str, needs))
