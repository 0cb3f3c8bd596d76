"""Reading a disk image for `vmconform check`: raw files (sparse-aware), other formats through
`qemu-img convert`, and in-memory images for tests. Reads never fail past the end: they come back short.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vmconform.image.sparse import SparseImage

MIN_DISK_BYTES = 512

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
    """The file cannot be read as a disk at all; the message is one line saying why."""


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


class FileSource:
    """A raw image file; holes of a sparse file are skipped by `data_extents`."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    @property
    def size(self) -> int:
        return self._size

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


@contextmanager
def open_image(path: Path) -> Iterator[tuple[Source, str]]:
    """Open `path` as a disk: (source, format). Non-raw formats are converted to a temporary raw file.

    Raises DiskError (one line naming the file) when it is missing, unreadable, not a regular file, too
    small to hold a sector, or in a format qemu-img cannot convert.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise DiskError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DiskError(f"{path}: is a directory, not a disk image") from None
    except OSError as e:
        raise DiskError(f"{path}: cannot open ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        import stat

        if stat.S_ISDIR(st.st_mode):
            raise DiskError(f"{path}: is a directory, not a disk image")
        if stat.S_ISBLK(st.st_mode):
            size = os.lseek(fd, 0, os.SEEK_END)
        elif stat.S_ISREG(st.st_mode):
            size = st.st_size
        else:
            raise DiskError(f"{path}: not a regular file or block device")
        try:
            head = os.pread(fd, 512, 0)
        except OSError as e:
            raise DiskError(f"{path}: cannot read ({e.strerror})") from None
        fmt = detect_format(head)
        if fmt == "raw":
            if size < MIN_DISK_BYTES:
                raise DiskError(f"{path}: {size} bytes is smaller than one 512-byte sector; not a disk image")
            yield FileSource(fd, size), "raw"
            return
    finally:
        os.close(fd)
    with _converted(path, fmt) as raw:
        fd = os.open(raw, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size < MIN_DISK_BYTES:
                raise DiskError(f"{path}: the {fmt} image's disk is {size} bytes; not a disk")
            yield FileSource(fd, size), fmt
        finally:
            os.close(fd)


@contextmanager
def _converted(path: Path, fmt: str) -> Iterator[Path]:
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise DiskError(f"{path}: a {fmt} image needs qemu-img to read (install qemu-utils), or convert it to raw")
    try:
        info = subprocess.run(
            [qemu_img, "info", "-f", fmt, "--output=json", str(path)], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DiskError(f"{path}: qemu-img info failed ({e})") from None
    if info.returncode != 0:
        why = (info.stderr.strip().splitlines() or ["no message"])[-1]
        raise DiskError(f"{path}: qemu-img cannot read it as {fmt}: {why}")
    if '"backing-filename"' in info.stdout:
        raise DiskError(
            f"{path}: the {fmt} image has a backing file, which check does not follow; "
            "convert it to a standalone image first (qemu-img convert -O raw)"
        )
    with tempfile.TemporaryDirectory(prefix="vmconform-check-") as tmp:
        raw = Path(tmp) / "disk.raw"
        try:
            proc = subprocess.run(
                [qemu_img, "convert", "-f", fmt, "-O", "raw", str(path), str(raw)],
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DiskError(f"{path}: qemu-img convert failed ({e})") from None
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise DiskError(f"{path}: qemu-img cannot read it as {fmt}: {why}")
        yield raw
