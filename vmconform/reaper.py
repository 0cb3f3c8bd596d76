"""Finding and ending VMs a run left behind.

Every VM process the harness starts carries ``VMCONFORM_TAG=<run-id>/<case>`` in its
environment (inherited by anything it starts). A worker that dies (an xdist worker
killed, a harness crash) cannot clean up after itself; the run's controller sweeps at
session end: every process whose tag starts with its run id is killed, with its
process group, and reported.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

TAG_ENV = "VMCONFORM_TAG"


@dataclass(frozen=True)
class Leftover:
    pid: int
    tag: str
    command: str


def _environ_tag(pid_dir: Path) -> str | None:
    try:
        env = (pid_dir / "environ").read_bytes()
    except OSError:
        return None
    for item in env.split(b"\0"):
        if item.startswith(TAG_ENV.encode() + b"="):
            return item.split(b"=", 1)[1].decode("utf-8", "replace")
    return None


def find(run_id: str, proc: Path = Path("/proc")) -> list[Leftover]:
    """Live processes tagged with ``run_id`` (zombies excluded)."""
    prefix = f"{run_id}/"
    found = []
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        tag = _environ_tag(pid_dir)
        if tag is None or not tag.startswith(prefix):
            continue
        try:
            state = (pid_dir / "stat").read_text().rsplit(") ", 1)[1][0]
            cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except (OSError, IndexError):
            continue
        if state != "Z":
            found.append(Leftover(int(pid_dir.name), tag, cmd))
    return found


def reap(run_id: str) -> list[Leftover]:
    """Kill every process (and its process group) tagged with ``run_id``; what was found."""
    left = find(run_id)
    for item in left:
        for kill, target in ((os.killpg, _pgid(item.pid)), (os.kill, item.pid)):
            if target is None:
                continue
            try:
                kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    return left


def _pgid(pid: int) -> int | None:
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return None
    return None if pgid == os.getpgrp() else pgid
