"""Reading a small input file that may be hostile: a regular file only, opened without blocking, size-capped.

``hypervisors.yaml`` and ``results.json`` are read this way: a FIFO, a socket or a device given in their place is
refused at once (decided by ``fstat`` on the opened descriptor, so nothing can be swapped in between), and a
file larger than its cap is refused unread.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class SmallFileError(Exception):
    """Why the file cannot be read (one line, naming the file); `missing` when it does not exist."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def read_small(path: Path, limit: int, what: str) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes; `what` names it in errors ("a results.json")."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SmallFileError(f"{path}: not found", missing=True) from None
    except OSError as e:
        raise SmallFileError(f"{path}: cannot open ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SmallFileError(f"{path}: not a regular file; give the path of {what}")
        if st.st_size > limit:
            raise SmallFileError(f"{path}: {st.st_size} bytes, more than {what} may be ({limit})")
        return f.read(limit + 1)
