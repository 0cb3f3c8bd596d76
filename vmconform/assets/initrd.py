"""Deterministic initramfs images assembled from unpacked Debian packages.

Two layers:

* `write_newc` / `gzip_bytes`: the kernel's initramfs format, the cpio "newc" archive
  (Documentation/driver-api/early-userspace/buffer-format.rst: ``070701`` headers of 13 eight-digit hex
  fields, name and data each padded to 4 bytes, ``TRAILER!!!`` last), written in pure Python with entries
  sorted by path, every mtime 0, uid/gid 0 and inode numbers by position, then gzip with mtime 0 and no
  file name. The same entries always give the same bytes.
* `Root`: collects entries from a *sysroot* (a folder of ``dpkg -x`` output): named files with the
  symlinks leading to them, whole folders, ELF binaries with the shared libraries they need (DT_NEEDED,
  followed recursively through the tree with `vmconform.assets.elf`, never the host's ``ldd``), and kernel
  modules with their dependencies (the tree's modules.dep, or each module's ``.modinfo depends=``).
  Paths are laid out merged-/usr (``/bin``, ``/sbin``, ``/lib`` are symlinks into ``/usr``), whatever the
  debs did. ``/dev`` holds only ``console`` (a cpio header, no mknod needed); /init mounts devtmpfs.
"""

from __future__ import annotations

import gzip
import io
import lzma
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from vmconform.assets.cache import AssetError
from vmconform.assets.elf import Elf, ElfError

EntryKind = Literal["file", "dir", "symlink", "chardev"]
_KIND_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "chardev": stat.S_IFCHR}
MERGED = {"/bin": "/usr/bin", "/sbin": "/usr/sbin", "/lib": "/usr/lib", "/lib64": "/usr/lib64"}
LIB_DIRS = ("/usr/lib/{triplet}", "/lib/{triplet}", "/usr/lib", "/lib")
TRIPLETS = {"aarch64": "aarch64-linux-gnu", "arm": "arm-linux-gnueabihf", "x86_64": "x86_64-linux-gnu"}


@dataclass(frozen=True)
class Entry:
    """One member of the archive: `data` is a file's bytes or a symlink's target."""

    path: str
    kind: EntryKind
    mode: int = 0o755
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def write_newc(entries: Iterable[Entry], out: BinaryIO) -> None:
    """Write `entries` as a newc cpio archive to `out`: sorted by path, mtime 0, uid/gid 0, nlink 1 (2 for dirs)."""
    ordered = sorted(entries, key=lambda e: e.path)
    for ino, e in enumerate(ordered, start=1):
        name = e.path.lstrip("/").encode() or b"."
        _member(out, ino, _KIND_BITS[e.kind] | (e.mode & 0o7777), 2 if e.kind == "dir" else 1, e.rdev, name, e.data)
    _member(out, 0, 0, 1, (0, 0), b"TRAILER!!!", b"")


def _member(out: BinaryIO, ino: int, mode: int, nlink: int, rdev: tuple[int, int], name: bytes, data: bytes) -> None:
    # c_magic then c_ino c_mode c_uid c_gid c_nlink c_mtime c_filesize c_devmajor c_devminor c_rdevmajor
    # c_rdevminor c_namesize c_check
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    out.write(header + name + b"\0")
    out.write(b"\0" * (-(len(header) + len(name) + 1) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def cpio_bytes(entries: Iterable[Entry]) -> bytes:
    """The newc archive of `entries` as bytes."""
    buf = io.BytesIO()
    write_newc(entries, buf)
    return buf.getvalue()


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """gzip `data` reproducibly: mtime 0, no file name, OS byte fixed by Python's gzip (255)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=level, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


class Root:
    """An initramfs tree being assembled from `sysroot` (see the module docstring)."""

    def __init__(self, sysroot: Path, *, machine: str = "aarch64") -> None:
        self.sysroot = sysroot
        self.triplet = TRIPLETS.get(machine, machine)
        self._entries: dict[str, Entry] = {}
        for old in ("/bin", "/sbin", "/lib"):
            self.symlink(old, MERGED[old].lstrip("/"))
        self.dir("/usr/bin")
        self.dir("/usr/sbin")
        self.dir("/usr/lib")
        self.dir("/dev")
        self._entries["/dev/console"] = Entry("/dev/console", "chardev", 0o600, rdev=(5, 1))

    # -- plain entries -------------------------------------------------------------------------------

    @staticmethod
    def norm(path: str) -> str:
        """`path` as it sits in the merged-/usr initramfs."""
        path = posixpath.normpath("/" + path.lstrip("/"))
        for old, new in MERGED.items():
            if path == old or path.startswith(old + "/"):
                return new + path[len(old) :]
        return path

    def _put(self, entry: Entry) -> None:
        parent = posixpath.dirname(entry.path)
        if parent != "/" and parent not in self._entries:
            self.dir(parent)
        old = self._entries.get(entry.path)
        if old is not None and old != entry and not (old.kind == entry.kind == "dir"):
            raise AssetError(f"initramfs: {entry.path} added twice with different contents")
        self._entries[entry.path] = entry

    def dir(self, path: str, mode: int = 0o755) -> None:
        self._put(Entry(self.norm(path), "dir", mode))

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._put(Entry(self.norm(path), "file", mode, data))

    def symlink(self, path: str, target: str) -> None:
        norm = path if path in MERGED else self.norm(path)
        self._put(Entry(norm, "symlink", 0o777, target.encode()))

    # -- from the sysroot ----------------------------------------------------------------------------

    def host(self, path: str) -> Path:
        """Where `path` (absolute, as on the target) is in the sysroot, symlinks not followed."""
        return self.sysroot / path.lstrip("/")

    def exists(self, path: str) -> bool:
        return self.host(path).is_symlink() or self.host(path).exists()

    def copy(self, path: str, dest: str | None = None, mode: int | None = None) -> str:
        """Add sysroot file `path` (at `dest`), with every symlink on the way; returns the resolved path."""
        src = self.host(path)
        if src.is_symlink():
            target = str(src.readlink())
            self.symlink(dest or path, self._relink(path, target, dest))
            absolute = target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target)
            return self.copy(posixpath.normpath(absolute), None, mode)
        if src.is_dir():
            self.dir(dest or path)
            return path
        if not src.is_file():
            raise AssetError(f"initramfs: {path} is not in the unpacked packages ({self.sysroot})")
        st = src.stat()
        self.file(dest or path, src.read_bytes(), mode if mode is not None else stat.S_IMODE(st.st_mode))
        return path

    def _relink(self, path: str, target: str, dest: str | None) -> str:
        # a relative target stays relative to the link's own (normalised) folder; absolute ones are normalised
        if target.startswith("/"):
            return self.norm(target)
        absolute = self.norm(posixpath.join(posixpath.dirname(path), target))
        return posixpath.relpath(absolute, posixpath.dirname(self.norm(dest or path)))

    def tree(self, path: str) -> None:
        """Add a whole sysroot folder (files, symlinks and sub-folders)."""
        base = self.host(path)
        if not base.is_dir():
            raise AssetError(f"initramfs: {path} is not a folder in the unpacked packages ({self.sysroot})")
        for item in sorted(base.rglob("*")):
            rel = "/" + str(item.relative_to(self.sysroot))
            if item.is_symlink():
                self.symlink(rel, self._relink(rel, str(item.readlink()), None))
            elif item.is_dir():
                self.dir(rel)
            else:
                self.file(rel, item.read_bytes(), stat.S_IMODE(item.stat().st_mode))

    def elf(self, path: str, dest: str | None = None) -> None:
        """Add ELF binary `path` with its interpreter and every shared library it needs, recursively."""
        todo = [(path, dest)]
        seen: set[str] = set()
        while todo:
            cur, cur_dest = todo.pop()
            real = self.copy(cur, cur_dest)
            if real in seen:
                continue
            seen.add(real)
            data = self.host(real).read_bytes()
            try:
                info = Elf.parse(data)
            except ElfError as err:
                raise AssetError(f"initramfs: {real}: {err}") from None
            if info.interpreter:
                todo.append((info.interpreter, None))
            for lib in info.needed:
                todo.append((self._find_lib(lib, real, info.runpath), None))

    def _find_lib(self, name: str, binary: str, runpath: tuple[str, ...]) -> str:
        origin = posixpath.dirname(binary)
        dirs = [p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for p in runpath]
        dirs += [d.format(triplet=self.triplet) for d in LIB_DIRS]
        for d in dirs:
            cand = posixpath.join(d, name)
            if self.exists(cand):
                return cand
        raise AssetError(f"initramfs: {binary} needs {name}, which no unpacked package provides (add its package)")

    def modules(self, kver: str, names: Iterable[str]) -> tuple[str, ...]:
        """Add kernel modules `names` and what they depend on, uncompressed; returns their paths in load order.

        Also writes /lib/modules/<kver>/modules.dep for the subset (so busybox modprobe works) and
        /lib/modules/<kver>/load.order, one module path a line, dependencies first.
        """
        base = f"/lib/modules/{kver}"
        if not self.host(base).is_dir():
            raise AssetError(f"initramfs: no modules for kernel {kver} in {self.sysroot}{base}")
        index = {
            _modname(p.name): "/" + str(p.relative_to(self.sysroot))
            for p in self.host(base).rglob("*.ko*")
            if p.is_file()
        }
        order: list[str] = []
        deps: dict[str, list[str]] = {}

        def visit(name: str, stack: tuple[str, ...]) -> None:
            key = _modname(name)
            if key in deps:
                return
            if key in stack:
                raise AssetError(f"initramfs: module dependency loop {' -> '.join(stack + (key,))}")
            if key not in index:
                raise AssetError(f"initramfs: kernel {kver} has no module {name!r}")
            data = _module_bytes(self.host(index[key]))
            wanted = _modinfo_depends(data)
            for dep in wanted:
                visit(dep, stack + (key,))
            deps[key] = wanted
            rel = _uncompressed(index[key])
            self.file(rel, data, 0o644)
            order.append(rel)

        for name in names:
            visit(name, ())
        rel_of = {_modname(posixpath.basename(p)): posixpath.relpath(p, self.norm(base)) for p in order}
        lines = [f"{rel_of[k]}: {' '.join(rel_of[_modname(d)] for d in deps[k])}".rstrip() for k in sorted(deps)]
        self.file(f"{base}/modules.dep", ("\n".join(lines) + "\n").encode())
        self.file(f"{base}/load.order", ("\n".join(order) + "\n").encode())
        return tuple(order)

    # -- output --------------------------------------------------------------------------------------

    def entries(self) -> tuple[Entry, ...]:
        return tuple(sorted(self._entries.values(), key=lambda e: e.path))

    def cpio(self) -> bytes:
        return cpio_bytes(self._entries.values())

    def write(self, path: Path, *, level: int = 6) -> Path:
        """Write the gzip-compressed newc archive to `path` (atomically) and return it."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(gzip_bytes(self.cpio(), level))
        tmp.replace(path)
        return path


def _modname(filename: str) -> str:
    return filename.split(".ko")[0].replace("-", "_")


def _uncompressed(path: str) -> str:
    return Root.norm(path.split(".ko")[0] + ".ko")


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        raise AssetError(f"initramfs: {path.name} is zstd-compressed, which this builder does not read")
    return data


def _modinfo_depends(data: bytes) -> list[str]:
    try:
        info = Elf.parse(data)
    except ElfError as err:
        raise AssetError(f"initramfs: a kernel module is unreadable: {err}") from None
    section = info.section(data, ".modinfo") or b""
    for item in section.split(b"\0"):
        if item.startswith(b"depends="):
            return [d for d in item[8:].decode().split(",") if d]
    return []
