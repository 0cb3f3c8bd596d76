"""Kernel modules with their dependencies: `Root.modules` reads each module's ``.modinfo depends=``.

The modules are real ELF relocatable objects made by the host C compiler with a ``.modinfo`` section,
as the kernel's modpost writes it (NUL-separated ``key=value`` strings), one of them xz-compressed.
"""

from __future__ import annotations

import lzma
import shutil
import subprocess
from pathlib import Path

import pytest

from vmconform.assets.initrd import Root
from vmconform.assets.xen import _loadable

KVER = "6.1.0-test-arm64"


def _module(cc: str, tmp: Path, name: str, depends: str) -> bytes:
    src = tmp / f"{name}.c"
    src.write_text(
        f'__attribute__((section(".modinfo"), used)) static const char info[] = "name={name}\\0depends={depends}";\n'
    )
    obj = tmp / f"{name}.o"
    subprocess.run([cc, "-c", str(src), "-o", str(obj)], check=True)
    return obj.read_bytes()


@pytest.fixture
def sysroot(tmp_path: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler to make test modules (apt-get install gcc)", pytrace=False)
    base = tmp_path / "root/lib/modules" / KVER / "kernel"
    (base / "fs").mkdir(parents=True)
    (base / "net").mkdir(parents=True)
    (base / "fs/top-mod.ko").write_bytes(_module(cc, tmp_path, "top_mod", "mid,leaf"))
    (base / "net/mid.ko").write_bytes(_module(cc, tmp_path, "mid", "leaf"))
    (base / "net/leaf.ko.xz").write_bytes(lzma.compress(_module(cc, tmp_path, "leaf", "")))
    (base / "net/other.ko").write_bytes(_module(cc, tmp_path, "other", ""))
    (tmp_path / "root/lib/modules" / KVER / "modules.builtin").write_text("kernel/drivers/virtio/virtio_mmio.ko\n")
    return tmp_path / "root"


def test_dependencies_first_and_modules_dep(sysroot: Path) -> None:
    root = Root(sysroot)
    order = root.modules(KVER, ["top_mod"])  # '-' and '_' are the same in module names
    base = f"/usr/lib/modules/{KVER}"
    assert order == (f"{base}/kernel/net/leaf.ko", f"{base}/kernel/net/mid.ko", f"{base}/kernel/fs/top-mod.ko")
    by = {e.path: e for e in root.entries()}
    assert f"{base}/kernel/net/other.ko" not in by
    assert by[f"{base}/kernel/net/leaf.ko"].data[:4] == b"\x7fELF", "stored uncompressed"
    assert by[f"{base}/load.order"].data.decode().split() == list(order)
    dep = by[f"{base}/modules.dep"].data.decode().splitlines()
    assert "kernel/fs/top-mod.ko: kernel/net/mid.ko kernel/net/leaf.ko" in dep
    assert "kernel/net/leaf.ko:" in dep


def test_builtin_modules_are_not_looked_for(sysroot: Path) -> None:
    assert _loadable(sysroot, KVER, ("virtio_mmio", "mid")) == ("mid",)
