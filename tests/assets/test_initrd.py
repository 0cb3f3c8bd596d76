"""The newc cpio writer and the initramfs builder, against independent readers of the format.

Oracles: a reader of the newc format written here from the kernel's buffer-format description (not
sharing code with vmconform.assets.initrd), GNU ``cpio -t`` and ``bsdtar -t`` when installed.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from vmconform.assets.initrd import Entry, Root, cpio_bytes, gzip_bytes

ENTRIES = [
    Entry("/etc", "dir", 0o755),
    Entry("/etc/hello.txt", "file", 0o644, b"hello, world\n"),
    Entry("/bin/tool", "file", 0o755, bytes(range(256)) * 3),
    Entry("/bin/link", "symlink", 0o777, b"tool"),
    Entry("/dev/console", "chardev", 0o600, rdev=(5, 1)),
    Entry("/empty", "file", 0o600, b""),
    Entry("/bin", "dir", 0o755),
    Entry("/dev", "dir", 0o755),
]


def read_newc(data: bytes) -> list[dict[str, object]]:
    """An independent newc reader: header '070701' + 13 x 8 hex digits, name, pad to 4, data, pad to 4."""
    out: list[dict[str, object]] = []
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, size, _, _, rmaj, rmin, namesize, check = fields
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        assert data[name_start + namesize - 1] == 0
        pos = name_start + namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            assert pos == len(data), "bytes after the trailer"
            return out
        out.append(dict(name=name, mode=mode, uid=uid, gid=gid, nlink=nlink, mtime=mtime, data=body,
                        rdev=(rmaj, rmin), ino=ino, check=check))  # fmt: skip


def test_newc_read_back_independently() -> None:
    members = read_newc(cpio_bytes(ENTRIES))
    names = [m["name"] for m in members]
    assert names == sorted(names), "entries are sorted by path"
    assert len(set(m["ino"] for m in members)) == len(members)
    by = {m["name"]: m for m in members}
    assert set(by) == {e.path.lstrip("/") for e in ENTRIES}
    for e in ENTRIES:
        m = by[e.path.lstrip("/")]
        assert m["mtime"] == 0 and m["uid"] == 0 and m["gid"] == 0 and m["check"] == 0
        assert stat.S_IMODE(int(m["mode"])) == e.mode
        assert m["data"] == e.data
    assert stat.S_ISDIR(int(by["etc"]["mode"])) and stat.S_ISLNK(int(by["bin/link"]["mode"]))
    assert stat.S_ISCHR(int(by["dev/console"]["mode"])) and by["dev/console"]["rdev"] == (5, 1)
    assert stat.S_ISREG(int(by["empty"]["mode"])) and by["empty"]["data"] == b""


@pytest.mark.parametrize("tool", ["cpio", "bsdtar"])
def test_newc_listed_by_archivers(tool: str, tmp_path: Path) -> None:
    if shutil.which(tool) is None:
        package = "cpio" if tool == "cpio" else "libarchive-tools"
        pytest.fail(f"{tool} is not installed (apt-get install {package})", pytrace=False)
    archive = tmp_path / "a.cpio"
    archive.write_bytes(cpio_bytes(ENTRIES))
    argv = ["cpio", "-itv", "-F", str(archive)] if tool == "cpio" else ["bsdtar", "-tvf", str(archive)]
    listing = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    lines = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in listing}
    assert set(lines) == {e.path.lstrip("/") for e in ENTRIES}
    assert lines["bin/link"].startswith("l") and lines["bin/link"].endswith("-> tool")
    assert lines["dev/console"].startswith("c") and lines["etc"].startswith("d")
    assert " 768 " in lines["bin/tool"] and lines["bin/tool"].startswith("-rwxr-xr-x")


def test_gzip_is_reproducible_and_readable() -> None:
    raw = cpio_bytes(ENTRIES)
    a, b = gzip_bytes(raw), gzip_bytes(raw)
    assert a == b and gzip.decompress(a) == raw
    assert a[4:8] == b"\0\0\0\0", "gzip mtime is 0"


def _sysroot(root: Path) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "lib/x").mkdir(parents=True)
    (root / "usr/bin/prog").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "usr/bin/prog").chmod(0o755)
    (root / "lib/x/data.txt").write_text("data\n")
    (root / "lib/x/alias").symlink_to("data.txt")
    (root / "bin").mkdir()
    (root / "bin/prog2").symlink_to("/usr/bin/prog")
    return root


def test_root_layout_merged_usr_and_symlinks(tmp_path: Path) -> None:
    root = Root(_sysroot(tmp_path / "sys"))
    root.copy("/bin/prog2")
    root.copy("/lib/x/alias")
    by = {e.path: e for e in root.entries()}
    assert by["/bin"].kind == "symlink" and by["/bin"].data == b"usr/bin"
    assert by["/usr/bin/prog2"].kind == "symlink" and by["/usr/bin/prog2"].data == b"/usr/bin/prog"
    assert by["/usr/bin/prog"].mode == 0o755
    assert by["/usr/lib/x/alias"].data == b"data.txt" and by["/usr/lib/x/data.txt"].data == b"data\n"
    assert by["/dev/console"].kind == "chardev"


def test_root_build_twice_same_bytes(tmp_path: Path) -> None:
    sysroot = _sysroot(tmp_path / "sys")
    digests = []
    for i in range(2):
        root = Root(sysroot)
        root.copy("/bin/prog2")
        root.tree("/lib/x")
        root.file("/init", b"#!/bin/sh\n", 0o755)
        digests.append(hashlib.sha256(root.write(tmp_path / f"i{i}.img").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
