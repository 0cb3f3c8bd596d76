"""Images in qemu-img's formats (qcow2, qed, vmdk, vhdx, vdi) for `vmconform check`: refused when they
name another file, refused when they would expand too much, else converted to a temporary sparse raw file.

1. The container header is parsed here first (`containers.py`): a backing file, an external data file,
   a vmdk parent or descriptor file is refused before qemu-img ever opens the image.
2. qemu-img is given the already-open descriptor as `/dev/fd/N` (the very file that was checked, not
   whatever the path names a moment later), the format fixed by the caller (never probed) and, for
   the formats that have one, `"backing": null`. Its `info` is checked again for any other file.
3. `qemu-img measure` says how many bytes of data the image holds. A conversion may write at most
   `max(CONVERT_FLOOR, CONVERT_RATIO x the file's allocated bytes)`: a compressed qcow2 of 1.6 MB that
   expands to 1 GiB is refused in one line instead of filling the temporary folder. The folder must
   have room for it too.
Each qemu-img run has a time limit and an address-space limit; its output is read up to a cap.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vmconform.check import containers
from vmconform.check.source import DiskError
from vmconform.check.text import printable

CONVERT_FLOOR = 256 << 20
"""Data a conversion may always write, whatever the file's size (an ESP image is far smaller)."""
CONVERT_RATIO = 8
"""Data a conversion may write per byte of the image file (zlib on disk data: 2-4x; a bomb: 600x)."""
INFO_TIMEOUT_S = 60
CONVERT_TIMEOUT_S = 300
MAX_OUTPUT = 1 << 20
MAX_ADDRESS_SPACE = 4 << 30
_BACKING_FORMATS = ("qcow2", "qed", "vmdk")


def _limits() -> None:  # pragma: no cover - runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (MAX_ADDRESS_SPACE, MAX_ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _run(cmd: list[str], fd: int, timeout: float) -> tuple[int, str, str]:
    """Run `cmd` with `fd` passed on; (status, stdout, stderr), each output cut at MAX_OUTPUT bytes.
    Raises TimeoutError (the child is killed) past `timeout` seconds."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(fd,),
        preexec_fn=_limits,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    out = {out_fd: bytearray(), err_fd: bytearray()}
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as sel:
            for stream in (proc.stdout, proc.stderr):
                sel.register(stream, selectors.EVENT_READ)
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer within {timeout:.0f} s")
                for key, _ev in sel.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    buf = out[key.fd]
                    if len(buf) < MAX_OUTPUT:
                        buf += chunk[: MAX_OUTPUT - len(buf)]
        status = proc.wait(max(deadline - time.monotonic(), 0.1))
    except (TimeoutError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
        raise TimeoutError(f"no answer within {timeout:.0f} s") from None
    finally:
        proc.stdout.close()
        proc.stderr.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return status, out[out_fd].decode(errors="replace"), out[err_fd].decode(errors="replace")


def _why(stderr: str) -> str:
    """qemu-img's last line, without its name and the json: spec of the image (which says nothing)."""
    line = (stderr.strip().splitlines() or ["no message"])[-1].removeprefix("qemu-img: ")
    if line.startswith("Could not open 'json:") and "': " in line:
        line = line.split("': ", 1)[1]
    return printable(line, limit=200)


def _references(fd: int, fmt: str, head: bytes) -> list[str]:
    """Files the container header names (empty: none), from the image's own bytes."""
    if fmt == "qcow2":  # header extensions run up to the end of the first cluster (at most 2 MiB), as qemu reads
        return containers.qcow2_references(_pread(fd, containers.qcow2_first_cluster(head), 0))
    if fmt == "qed":
        return containers.qed_references(head)
    if fmt == "vmdk":
        if head[:4] != b"KDMV":
            text = _pread(fd, containers.MAX_DESCRIPTOR, 0)
            return containers.vmdk_descriptor_references(text, embedded=False)
        # qemu looks for the parent in the descriptor at byte 512 whatever the header says: read both
        where = containers.vmdk_sparse_descriptor(head) or (512, containers.VMDK_DESC_SIZE)
        texts = {where, (512, containers.VMDK_DESC_SIZE)}
        return list(
            dict.fromkeys(
                ref
                for offset, size in sorted(texts)
                for ref in containers.vmdk_descriptor_references(_pread(fd, size, offset), embedded=True)
            )
        )
    return []  # vhdx and vdi: qemu opens no parent of these (differencing images are unsupported)


def _pread(fd: int, n: int, offset: int) -> bytes:
    """Up to `n` bytes at `offset` of the file, empty for an offset outside it (a header may say 2^70)."""
    size = os.fstat(fd).st_size
    if not 0 <= offset < size:
        return b""
    return os.pread(fd, min(n, size - offset), offset)


def _info_references(info: dict[str, Any], own: str) -> list[str]:
    """Other files qemu-img's `info` shows: a backing file, a data file, an extent that is not the image."""
    out = []
    for key in ("backing-filename", "full-backing-filename"):
        if key in info:
            out.append(f"a backing file '{printable(str(info[key]), limit=120)}'")
    data = info.get("format-specific", {}).get("data", {})
    if isinstance(data, dict):
        if "data-file" in data:
            out.append(f"an external data file '{printable(str(data['data-file']), limit=120)}'")
        for extent in data.get("extents", []) or []:
            name = extent.get("filename") if isinstance(extent, dict) else None
            if name is not None and name != own:
                out.append(f"an extent file '{printable(str(name), limit=120)}'")
    return list(dict.fromkeys(out))


def _spec(fmt: str, fd: int) -> tuple[str, str]:
    """(the json: filename qemu-img opens, the name it reports for the image itself)."""
    own = f"/dev/fd/{fd}"
    opts: dict[str, Any] = {"driver": fmt, "file": {"driver": "file", "filename": own}}
    if fmt in _BACKING_FORMATS:
        opts["backing"] = None
    return "json:" + json.dumps(opts), own


def _qemu_img(path: Path, fmt: str) -> str:
    found = shutil.which("qemu-img")
    if found is None:
        raise DiskError(f"{path}: a {fmt} image needs qemu-img to read (install qemu-utils), or convert it to raw")
    return found


def _allowed(allocated: int) -> int:
    return max(CONVERT_FLOOR, CONVERT_RATIO * allocated)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@contextmanager
def converted(path: Path, fd: int, fmt: str, head: bytes, allocated: int) -> Iterator[Path]:
    """The image open at `fd` (format `fmt`, first bytes `head`, `allocated` bytes on disk) as a temporary
    raw file, removed afterwards. Raises DiskError (one line) for what check refuses or cannot read."""
    try:
        refs = _references(fd, fmt, head)
    except containers.ContainerError as e:
        raise DiskError(f"{path}: {e}") from None
    except OSError as e:
        raise DiskError(f"{path}: cannot read ({e.strerror})") from None
    if refs:
        raise DiskError(
            f"{path}: the {fmt} image refers to another file ({'; '.join(refs)}), which check never reads; "
            "give it a standalone image (qemu-img convert -O raw on a trusted copy)"
        )
    qemu_img = _qemu_img(path, fmt)
    spec, own = _spec(fmt, fd)
    try:
        status, out, err = _run([qemu_img, "info", "--output=json", spec], fd, INFO_TIMEOUT_S)
        if status != 0:
            raise DiskError(f"{path}: qemu-img cannot read it as {fmt}: {_why(err)}")
        info = json.loads(out)
        if not isinstance(info, dict):
            raise DiskError(f"{path}: qemu-img info gave no description of the {fmt} image")
        refs = _info_references(info, own)
        if refs:
            raise DiskError(
                f"{path}: the {fmt} image refers to another file ({'; '.join(refs)}), which check never reads"
            )
        status, out, err = _run([qemu_img, "measure", "--output=json", "-O", "qcow2", spec], fd, INFO_TIMEOUT_S)
        if status != 0:
            raise DiskError(f"{path}: qemu-img cannot measure the {fmt} image: {_why(err)}")
        measured = json.loads(out)
        # "required" counts the qcow2 metadata a copy would need (335 MB for an empty 2 TiB disk); the
        # metadata of a fully allocated copy is an upper bound for it, so what is left is data.
        metadata = int(measured["fully-allocated"]) - int(info["virtual-size"])
        required = max(0, int(measured["required"]) - max(metadata, 0))
    except TimeoutError as e:
        raise DiskError(f"{path}: qemu-img gave up on the {fmt} image ({e})") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DiskError(f"{path}: qemu-img failed on the {fmt} image ({printable(str(e), limit=200)})") from None
    limit = _allowed(allocated)
    if required > limit:
        raise DiskError(
            f"{path}: the {fmt} image holds {_mib(required)} of data in a {_mib(allocated)} file; check converts "
            f"at most {_mib(limit)} (the larger of {CONVERT_FLOOR >> 20} MiB and {CONVERT_RATIO}x the file)"
        )
    with tempfile.TemporaryDirectory(prefix="vmconform-check-") as tmp:
        free = shutil.disk_usage(tmp).free
        if required + (64 << 20) > free:
            raise DiskError(
                f"{path}: converting the {fmt} image needs {_mib(required)} in {tmp}, which has {_mib(free)} free"
            )
        raw = Path(tmp) / "disk.raw"
        try:
            status, _out, err = _run([qemu_img, "convert", "-O", "raw", spec, str(raw)], fd, CONVERT_TIMEOUT_S)
        except TimeoutError as e:
            raise DiskError(f"{path}: qemu-img convert gave up on the {fmt} image ({e})") from None
        except OSError as e:
            raise DiskError(f"{path}: qemu-img convert failed ({printable(str(e), limit=200)})") from None
        if status != 0:
            raise DiskError(f"{path}: qemu-img cannot read it as {fmt}: {_why(err)}")
        yield raw
