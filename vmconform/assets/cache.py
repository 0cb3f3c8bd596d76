"""The asset cache: where built and downloaded assets live, how they are keyed and published.

The cache is ``$VMCONFORM_CACHE``, else ``$XDG_CACHE_HOME/vmconform``, else ``~/.cache/vmconform``.
An artifact's folder is named by a key: the sha256 of everything that determines its bytes (package
versions, our own patches and scripts, build options), so a changed input gives a new folder and an
unchanged one is reused. Builds write into a temporary sibling folder and rename it into place when
complete, under a lock, so parallel workers (pytest-xdist) never see a half-built artifact.

Errors a user can act on are `AssetError`: one line, no traceback; `MissingTool` also names the
Debian package and the install command.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class AssetError(Exception):
    """An asset could not be fetched or built; the message is one line saying what and how to fix it."""


class MissingTool(AssetError):
    """A host tool is missing; `package` is the Debian package that provides it."""

    def __init__(self, tool: str, package: str) -> None:
        self.tool = tool
        self.package = package
        super().__init__(f"{tool} is missing: install it with `apt-get install {package}` (as root)")


def cache_dir() -> Path:
    """The cache root (created on first use)."""
    explicit = os.environ.get("VMCONFORM_CACHE")
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "vmconform"
    root.mkdir(parents=True, exist_ok=True)
    return root


def digest(parts: Iterable[str | bytes | Path]) -> str:
    """sha256 over `parts` (a Path contributes its name and its bytes), each length-prefixed: a cache key."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            data = part.name.encode() + b"\0" + part.read_bytes()
        elif isinstance(part, str):
            data = part.encode()
        else:
            data = part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Slot:
    """A keyed folder of the cache: `path` exists exactly when its build completed."""

    path: Path

    @property
    def ready(self) -> bool:
        return (self.path / ".complete").exists()

    @contextmanager
    def build(self) -> Iterator[Path]:
        """A fresh temporary folder to build into; on success it becomes `path` (replacing an old one)."""
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
            (tmp / ".complete").write_text("")
            if self.path.exists():
                shutil.rmtree(self.path)
            tmp.rename(self.path)
            self._prune()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _prune(self) -> None:
        # other completed keys of the same kind are stale now (their inputs changed); a VM that still has
        # one of their files open keeps reading it after the unlink
        for other in self.path.parent.iterdir():
            if other != self.path and (other / ".complete").exists():
                shutil.rmtree(other, ignore_errors=True)


def slot(kind: str, key: str) -> Slot:
    """The cache folder for artifact `kind` (e.g. "xen/u-boot-fixed") with key `key` (a hex digest)."""
    return Slot(cache_dir() / kind / key[:16])


def need(tool: str, package: str) -> str:
    """The path of host tool `tool`; installs `package` with apt-get when root, else raises `MissingTool`."""
    found = shutil.which(tool)
    if found:
        return found
    install([package], why=tool)
    found = shutil.which(tool)
    if not found:
        raise MissingTool(tool, package)
    return found


def install(packages: Sequence[str], *, why: str) -> None:
    """apt-get install `packages` on the host when running as root; otherwise `MissingTool`."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise MissingTool(why, " ".join(packages))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    with locked(cache_dir() / "apt-install.lock"):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AssetError(f"`{' '.join(cmd)}` failed: {tail}")


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    log: Path | None = None,
    nice: bool = False,
    what: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run `cmd`, return its stdout; on failure an `AssetError` quoting its last stderr line (and the log).

    With `log`, stdout and stderr go to that file instead (long builds), and the error names it. `what`
    names the command in the error (default: its first words); `env` replaces the environment.
    """
    argv = [str(c) for c in cmd]
    if nice:
        argv = ["nice", "-n", "10", *argv]
    try:
        if log is not None:
            with log.open("ab") as out:
                out.write(f"$ {' '.join(argv)}\n".encode())
                out.flush()
                done = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False, env=env)
            if done.returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise AssetError(f"{argv[0]} failed (exit {done.returncode}): {tail[0]} (whole log: {log})")
            return ""
        res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    except FileNotFoundError:
        raise AssetError(f"{argv[0]} is not installed") from None
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()] or ["no output"]
        raise AssetError(f"{what or ' '.join(argv[:3]) + ' ...'} failed (exit {res.returncode}): {lines[-1]}")
    return res.stdout
