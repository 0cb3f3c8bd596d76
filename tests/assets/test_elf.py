"""The ELF reader and the initramfs builder's library resolution on real Debian arm64 binaries.

Oracle: binutils' ``readelf`` (dynamic section and program headers) when installed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vmconform.assets.elf import Elf, ElfError
from vmconform.assets.initrd import Root


def test_bash_needed_and_interpreter_match_readelf(arm64_bash_root: Path) -> None:
    bash = arm64_bash_root / "bin/bash"
    info = Elf.parse(bash.read_bytes())
    assert info.machine_name == "aarch64" and info.bits == 64
    assert info.interpreter == "/lib/ld-linux-aarch64.so.1"
    assert "libc.so.6" in info.needed and "libtinfo.so.6" in info.needed
    readelf = shutil.which("readelf") or shutil.which("aarch64-linux-gnu-readelf")
    if readelf is None:
        pytest.fail("readelf is not installed (apt-get install binutils)", pytrace=False)
    dyn = subprocess.run([readelf, "-dW", str(bash)], capture_output=True, text=True, check=True).stdout
    assert list(info.needed) == re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    progs = subprocess.run([readelf, "-lW", str(bash)], capture_output=True, text=True, check=True).stdout
    assert f"[Requesting program interpreter: {info.interpreter}]" in progs


def test_root_elf_brings_every_library(arm64_bash_root: Path) -> None:
    root = Root(arm64_bash_root)
    root.elf("/bin/bash")
    paths = {e.path for e in root.entries()}
    assert "/usr/bin/bash" in paths
    assert "/usr/lib/ld-linux-aarch64.so.1" in paths  # the interpreter's symlink, merged-/usr
    libs = {p.rsplit("/", 1)[-1] for p in paths if "/aarch64-linux-gnu/" in p}
    assert {"libc.so.6", "libtinfo.so.6", "ld-linux-aarch64.so.1"} <= libs
    # every DT_NEEDED of every ELF file in the root is in the root too
    for e in root.entries():
        if e.kind == "file" and Elf.is_elf(e.data):
            for lib in Elf.parse(e.data).needed:
                assert lib in libs, f"{e.path} needs {lib}"


def test_root_of_real_packages_is_deterministic(arm64_bash_root: Path, tmp_path: Path) -> None:
    sums = []
    for i in range(2):
        root = Root(arm64_bash_root)
        root.elf("/bin/bash")
        root.copy("/usr/bin/clear_console")
        sums.append(hashlib.sha256(root.write(tmp_path / f"{i}.img").read_bytes()).hexdigest())
    assert sums[0] == sums[1]


def test_not_elf_is_one_line_error() -> None:
    with pytest.raises(ElfError, match="not an ELF file"):
        Elf.parse(b"#!/bin/sh\n" * 10)
