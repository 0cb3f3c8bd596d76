"""Special and oversized files for the readers of small hostile input (results.json, hypervisors.yaml): each must be
refused unread, in one line, and never hang."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def fifo_error(path: Path, error_of: Callable[[Path], str], wait: float = 10) -> str:
    """`error_of` for a FIFO made at `path`, run in a daemon thread: with no writer, a reader that opens it blocking
    hangs. What `error_of` returned, or "hung" when it had not returned after `wait` seconds."""
    os.mkfifo(path)
    got: list[str] = []
    worker = threading.Thread(target=lambda: got.append(error_of(path)), daemon=True)
    worker.start()
    worker.join(wait)
    return got[0] if got else f"hung: still reading {path} after {wait} s"


def oversized(path: Path, size: int) -> Path:
    """A sparse file of `size` bytes at `path` (nothing is written to the disk)."""
    with path.open("wb") as f:
        f.truncate(size)
    return path
