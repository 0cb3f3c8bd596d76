"""Reading a disk image for `vmconform check`: raw files (sparse-aware), other formats through
`qemu-img convert` (`convert.py`), and in-memory images for tests. Reads never fail past the end: they
come back short.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vmconform.check.text import printable
from vmconform.image.sparse import SparseImage

MIN_DISK_BYTES = 512
HEAD_BYTES = 64 << 10
"""Bytes of the file read to tell its format and parse a container header (one qcow2 cluster by default)."""

# Magic numbers of the image formats qemu-img reads that are not raw (offset, bytes, name).
_FORMATS = (
    (0, b"QFI\xfb", "qcow2"),
    (0, b"KDMV", "vmdk"),
    (0, b"# Disk DescriptorFile", "vmdk"),
    (0, b"vhdxfile", "vhdx"),
    (0x40, b"\x7f\x10\xda\xbe", "vdi"),
    (0, b"QED\x00", "qed"),
)


class DiskError(Exception):
    """The file cannot be read as a disk at all; the message is one line saying why (control characters
    escaped: it names the file, and sometimes what the image or qemu-img said)."""

    def __init__(self, message: str) -> None:
        super().__init__(printable(" ".join(message.splitlines())))


class Source(Protocol):
    """Random access to a disk's bytes."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, n: int) -> bytes:
        """Up to `n` bytes from `offset`: shorter at the end of the image, empty past it."""
        ...

    def data_extents(self) -> Iterator[tuple[int, int]]:
        """(offset, length) of every region that may hold non-zero bytes, in order."""
        ...

    @property
    def allocated(self) -> int:
        """Bytes the image really occupies (what its cost budgets scale with), at most its size."""
        ...


class FileSource:
    """A raw image file; holes of a sparse file are skipped by `data_extents`."""

    def __init__(self, fd: int, size: int, allocated: int | None = None) -> None:
        self._fd = fd
        self._size = size
        self._allocated = size if allocated is None else allocated

    @property
    def size(self) -> int:
        return self._size

    @property
    def allocated(self) -> int:
        return self._allocated

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self._size:
            return b""
        n = min(n, self._size - offset)
        try:
            return os.pread(self._fd, n, offset)
        except OSError:
            return b""

    def data_extents(self) -> Iterator[tuple[int, int]]:
        pos = 0
        while pos < self._size:
            try:
                start = os.lseek(self._fd, pos, os.SEEK_DATA)
                end = os.lseek(self._fd, start, os.SEEK_HOLE)
            except OSError:  # no more data (ENXIO), or the file system cannot say: read it all
                if pos == 0 and not _supports_seek_data(self._fd):
                    yield 0, self._size
                return
            end = min(end, self._size)
            if end <= start:
                return
            yield start, end - start
            pos = end


def _supports_seek_data(fd: int) -> bool:
    try:
        os.lseek(fd, 0, os.SEEK_HOLE)
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class MemorySource:
    """An in-memory image (a `SparseImage`, or bytes), optionally cut to `limit` bytes (a truncated file)."""

    image: SparseImage | bytes
    limit: int | None = None

    @property
    def size(self) -> int:
        full = self.image.size if isinstance(self.image, SparseImage) else len(self.image)
        return full if self.limit is None else min(full, self.limit)

    def read(self, offset: int, n: int) -> bytes:
        size = self.size
        if offset < 0 or n <= 0 or offset >= size:
            return b""
        n = min(n, size - offset)
        if isinstance(self.image, SparseImage):
            return self.image.read(offset, n)
        return self.image[offset : offset + n]

    @property
    def allocated(self) -> int:
        return sum(length for _offset, length in self.data_extents())

    def data_extents(self) -> Iterator[tuple[int, int]]:
        size = self.size
        if isinstance(self.image, SparseImage):
            for offset, data in self.image.extents():
                if offset >= size:
                    return
                yield offset, min(len(data), size - offset)
        elif size:
            yield 0, size


def detect_format(head: bytes) -> str:
    for offset, magic, name in _FORMATS:
        if head[offset : offset + len(magic)] == magic:
            return name
    return "raw"


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _refuse_kind(path: Path, mode: int) -> None:
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        raise DiskError(f"{path}: is {_kind(mode)}, not a disk image (check reads regular files and block devices)")


@contextmanager
def open_image(path: Path) -> Iterator[tuple[Source, str]]:
    """Open `path` as a disk: (source, format). Non-raw formats are converted to a temporary raw file.

    Only a regular file or a block device is ever opened: a stat() first keeps device files with side
    effects on open (a tape rewinding, a tty) closed, and the authoritative fstat() after the
    non-blocking open decides (no time-of-check/time-of-use gap: everything after reads that one fd).
    Raises DiskError (one line naming the file) when it is missing, unreadable, of another kind, too
    small to hold a sector, names another file (backing, data file, extents), or is too big to convert.
    """
    try:
        _refuse_kind(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DiskError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DiskError(f"{path}: is a directory, not a disk image") from None
    except OSError as e:
        raise DiskError(f"{path}: cannot open ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        _refuse_kind(path, st.st_mode)
        if stat.S_ISBLK(st.st_mode):
            size = os.lseek(fd, 0, os.SEEK_END)
            allocated = size
        else:
            size = st.st_size
            allocated = min(size, st.st_blocks * 512) if st.st_blocks else size
        try:
            head = os.pread(fd, HEAD_BYTES, 0)
        except OSError as e:
            raise DiskError(f"{path}: cannot read ({e.strerror})") from None
        fmt = detect_format(head)
        if fmt == "raw":
            if size < MIN_DISK_BYTES:
                raise DiskError(f"{path}: {size} bytes is smaller than one 512-byte sector; not a disk image")
            yield FileSource(fd, size, allocated), "raw"
            return
        from vmconform.check.convert import converted

        with converted(path, fd, fmt, head, allocated) as raw:
            rfd = os.open(raw, os.O_RDONLY | os.O_CLOEXEC)
            try:
                rst = os.fstat(rfd)
                if rst.st_size < MIN_DISK_BYTES:
                    raise DiskError(f"{path}: the {fmt} image's disk is {rst.st_size} bytes; not a disk")
                yield FileSource(rfd, rst.st_size, min(rst.st_size, rst.st_blocks * 512)), fmt
            finally:
                os.close(rfd)
    finally:
        os.close(fd)
