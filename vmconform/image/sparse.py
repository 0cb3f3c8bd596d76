"""A sparse disk image held in memory: a logical size plus the pages that were written.

Reads of never-written ranges return zeros; `save` writes only pages holding non-zero bytes and
extends the file to its size with `truncate`, so the file is sparse on disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator

PAGE_SIZE = 4096
_ZERO_PAGE = bytes(PAGE_SIZE)
_HASH_ZERO_RUN = bytes(1 << 20)


class SparseImage:
    """A byte-addressable image of `size` bytes; unwritten bytes read as zero."""

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError(f"image size must be positive, got {size}")
        self._size = size
        self._pages: dict[int, bytearray] = {}

    @property
    def size(self) -> int:
        return self._size

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self._size:
            raise ValueError(f"range [{offset}, {offset + length}) lies outside the image of {self._size} bytes")

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Store `data` at byte `offset`. Zeros written into a hole allocate nothing."""
        view = memoryview(data).cast("B")
        self._check_range(offset, len(view))
        pos = 0
        while pos < len(view):
            page_no, in_page = divmod(offset + pos, PAGE_SIZE)
            take = min(PAGE_SIZE - in_page, len(view) - pos)
            chunk = view[pos : pos + take]
            page = self._pages.get(page_no)
            if page is None:
                if not any(chunk):
                    pos += take
                    continue
                page = bytearray(PAGE_SIZE)
                self._pages[page_no] = page
            page[in_page : in_page + take] = chunk
            pos += take

    def read(self, offset: int, n: int) -> bytes:
        """Return `n` bytes from `offset`; holes read as zeros."""
        self._check_range(offset, n)
        out = bytearray(n)
        pos = 0
        while pos < n:
            page_no, in_page = divmod(offset + pos, PAGE_SIZE)
            take = min(PAGE_SIZE - in_page, n - pos)
            page = self._pages.get(page_no)
            if page is not None:
                out[pos : pos + take] = page[in_page : in_page + take]
            pos += take
        return bytes(out)

    def extents(self) -> Iterator[tuple[int, bytes]]:
        """Yield (offset, data) for each run of consecutive pages that hold non-zero bytes, in order."""
        run_start: int | None = None
        run: list[bytes] = []
        prev = -2
        for page_no in sorted(self._pages):
            page = self._pages[page_no]
            if page == _ZERO_PAGE:
                continue
            if page_no != prev + 1 and run_start is not None:
                yield self._clip(run_start, b"".join(run))
                run_start, run = None, []
            if run_start is None:
                run_start = page_no * PAGE_SIZE
            run.append(bytes(page))
            prev = page_no
        if run_start is not None:
            yield self._clip(run_start, b"".join(run))

    def resized(self, size: int) -> SparseImage:
        """A copy of this image with logical size `size` (bytes past the new end are dropped)."""
        out = SparseImage(size)
        for page_no, page in self._pages.items():
            start = page_no * PAGE_SIZE
            if start < size:
                out.write(start, page[: size - start])
        return out

    def _clip(self, offset: int, data: bytes) -> tuple[int, bytes]:
        return offset, data[: self._size - offset]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the image to `path` as a sparse file of exactly `size` bytes."""
        with open(path, "wb") as f:
            for offset, data in self.extents():
                f.seek(offset)
                f.write(data)
            f.truncate(self._size)

    def sha256(self) -> str:
        """Hex SHA-256 of the full logical content (holes hashed as zeros, never materialised)."""
        h = hashlib.sha256()
        pos = 0
        for offset, data in self.extents():
            self._hash_zeros(h.update, offset - pos)
            h.update(data)
            pos = offset + len(data)
        self._hash_zeros(h.update, self._size - pos)
        return h.hexdigest()

    @staticmethod
    def _hash_zeros(update: Callable[[memoryview], object], n: int) -> None:
        while n > 0:
            take = min(n, len(_HASH_ZERO_RUN))
            update(memoryview(_HASH_ZERO_RUN)[:take])
            n -= take

    def fingerprint(self) -> str:
        """Hex SHA-256 over the size and the non-zero extents: cheap identity for multi-TiB images.

        Equal images have equal fingerprints; it is not the SHA-256 of the content (use `sha256`).
        """
        h = hashlib.sha256(self._size.to_bytes(8, "little"))
        for offset, data in self.extents():
            h.update(offset.to_bytes(8, "little"))
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
        return h.hexdigest()
