"""`vmconform check` given hostile files: containers that name host files, decompression bombs, FIFOs,
sockets and devices. Every one ends in one line and exit 2, never reads another file, never hangs.

The containers are written by tests/hostile_containers.py (not by vmconform, not by qemu-img).
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import subprocess
import sys
from pathlib import Path

import hostile_containers as hc
import pytest
from host_tools import requires
from hypothesis import given, settings
from hypothesis import strategies as st

from vmconform.check import DiskError, check_image
from vmconform.check import source as source_mod

MARKER = b"HOST-FILE-MARKER-0123456789-"
needs_qemu_img = requires("qemu-img")


def run_check(path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmconform.cli", "check", *args, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def host_file(tmp_path: Path) -> Path:
    """A host file the image must never make check read: its bytes would show in a report if read."""
    secret = tmp_path / "host-secret.raw"
    # a GPT-less FAT-less disk of marker bytes: check would report them as the MBR's bytes
    secret.write_bytes(MARKER * ((1 << 20) // len(MARKER) + 1))
    return secret


def assert_refused(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stdout == ""
    for needle in needles:
        assert needle in lines[0], lines[0]
    marker_hex = MARKER[:4].hex(" ")
    assert MARKER.decode()[:8] not in proc.stderr and marker_hex not in proc.stderr


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        ("backing.qcow2", lambda s: hc.qcow2_with_backing(str(s).encode()), "a backing file"),
        ("datafile.qcow2", lambda s: hc.qcow2_with_data_file(str(s).encode()), "an external data file"),
        ("backing.qed", lambda s: hc.qed_with_backing(str(s).encode()), "a backing file"),
        ("extent.vmdk", lambda s: hc.vmdk_descriptor(str(s)), "extent files"),
        ("relative.vmdk", lambda s: hc.vmdk_descriptor(s.name), "extent files"),
        ("parent.vmdk", lambda s: hc.vmdk_sparse_with_parent(str(s)), "a parent disk"),
    ],
)
def test_images_naming_host_files_are_refused(tmp_path: Path, name: str, make, says: str) -> None:  # type: ignore[no-untyped-def]
    """Before: the vmdk extent and the qcow2 data file were followed and the host file's bytes reported.
    After: refused from the container header, before qemu-img opens anything."""
    secret = host_file(tmp_path)
    image = tmp_path / name
    image.write_bytes(make(secret))
    proc = run_check(image)
    assert_refused(proc, "refers to another file", says, "never reads")
    assert str(secret) in proc.stderr or secret.name in proc.stderr or says == "an external data file"
    json_proc = run_check(image, "--json")
    assert_refused(json_proc, "refers to another file")


def test_a_descriptor_escape_in_the_name_is_escaped(tmp_path: Path) -> None:
    image = tmp_path / "esc.vmdk"
    image.write_bytes(hc.vmdk_descriptor("/tmp/\x1b]0;pwned\x07x.raw"))
    proc = run_check(image)
    assert proc.returncode == 2 and "\x1b" not in proc.stderr and "\\x1b]0;pwned\\x07" in proc.stderr


@needs_qemu_img
def test_decompression_bomb_is_refused_without_filling_the_temp_folder(tmp_path: Path) -> None:
    """Before: 448 KiB of qcow2 became 1 GiB in the temporary folder. After: one line, nothing written."""
    image = tmp_path / "bomb.qcow2"
    image.write_bytes(hc.qcow2_bomb(1 << 30))
    assert image.stat().st_size < 1 << 20
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = run_check(image, env={**os.environ, "TMPDIR": str(tmp)})
    assert_refused(proc, "holds 1024.0 MiB of data", "converts at most 256.0 MiB")
    assert list(tmp.iterdir()) == []


@needs_qemu_img
def test_a_small_bomb_within_the_cap_is_read(tmp_path: Path) -> None:
    """The cap is on data, not on the format: 64 MiB of compressed filler is converted and judged."""
    image = tmp_path / "small.qcow2"
    image.write_bytes(hc.qcow2_bomb(64 << 20))
    report = check_image(image)
    assert report.format == "qcow2" and report.size == 64 << 20 and report.exit_status == 1


@needs_qemu_img
def test_sparse_qcow2_of_2_tib_is_not_counted_as_data(tmp_path: Path) -> None:
    """qcow2 metadata of a large empty disk (335 MB for 2 TiB by qemu-img measure) is not data."""
    image = tmp_path / "sparse.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(image), "2T"], check=True, capture_output=True)
    report = check_image(image)
    assert report.size == 2 << 40 and report.verdict("gpt.primary") == "fail"


@needs_qemu_img
@pytest.mark.parametrize("subformat", ["monolithicSparse", "streamOptimized"])
def test_self_contained_vmdk_is_read(tmp_path: Path, subformat: str) -> None:
    raw = tmp_path / "d.raw"
    raw.write_bytes(b"\0" * 510 + b"\x55\xaa" + bytes(1 << 20))
    vmdk = tmp_path / "d.vmdk"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={subformat}", str(raw), str(vmdk)],
        check=True,
        capture_output=True,
    )
    report = check_image(vmdk)
    assert report.format == "vmdk" and report.verdict("mbr.signature") == "pass"


# --- files that are no disk: never opened for long, never read forever ---------------------------------


def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """Before: check blocked forever in open() (no writer) or read(). After: one line, exit 2."""
    fifo = tmp_path / "pipe.img"
    os.mkfifo(fifo)
    assert_refused(run_check(fifo), "is a FIFO")


def test_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.img"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert_refused(run_check(path), "is a socket")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_character_devices_are_refused(device: str) -> None:
    """Before: /dev/zero was read for ever. After: one line, exit 2."""
    assert_refused(run_check(Path(device)), "is a character device")


def test_a_fifo_swapped_in_after_the_stat_is_caught_by_fstat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stat() before the open only keeps devices closed; the decision is fstat() on the opened fd."""
    fifo = tmp_path / "swapped.img"
    os.mkfifo(fifo)
    regular = os.stat(__file__)
    real_stat = os.stat

    def looks_regular(path: object, *args: object, **kwargs: object) -> os.stat_result:
        return regular if Path(str(path)) == fifo else real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(source_mod.os, "stat", looks_regular)
    assert stat.S_ISREG(os.stat(fifo).st_mode)
    with pytest.raises(DiskError, match="is a FIFO"):
        check_image(fifo)


def test_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.img"
    link.symlink_to("/dev/zero")
    assert_refused(run_check(link), "is a character device")


def test_a_file_name_with_escapes_is_escaped_in_the_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "evil\x1b[2J\nname.img"
    os.mkfifo(fifo)
    proc = run_check(fifo)
    assert proc.returncode == 2 and "\x1b" not in proc.stderr and "\\x1b[2J" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _twisted_qcow2(offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(hc.qcow2_bomb(4 << 20))
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


@needs_qemu_img
@pytest.mark.parametrize(
    ("offset", "fmt", "value"),
    [
        (8, ">Q", 1 << 62),  # backing_file_offset far past the end
        (16, ">I", 0xFFFFFFFF),  # backing_file_size
        (20, ">I", 31),  # cluster_bits
        (24, ">Q", 1 << 62),  # virtual size
        (36, ">I", 0x7FFFFFFF),  # l1_size
        (40, ">Q", (1 << 63) - 512),  # l1_table_offset
        (56, ">I", 0xFFFFFFFF),  # refcount_table_clusters
        (72, ">Q", 1 << 63),  # an unknown incompatible feature
        (100, ">I", 0xFFFFFFF0),  # header_length
        (104, ">I", 0x44415441),  # an extension that is an external data file name
        (108, ">I", 0xFFFFFFFF),  # its length
    ],
)
def test_twisted_qcow2_headers_end_in_one_line_or_a_verdict(tmp_path: Path, offset: int, fmt: str, value: int) -> None:
    image = tmp_path / "twisted.qcow2"
    image.write_bytes(_twisted_qcow2(offset, fmt, value))
    proc = run_check(image)
    assert proc.returncode in (0, 1, 2), proc.stderr
    if proc.returncode == 2:
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == "", proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_qemu_img_info_naming_another_file_is_caught_too() -> None:
    """The second line of defence: whatever a format hides from the header parser, qemu-img's own
    description of the image names it (vhdx/vdi parents are refused by qemu-img itself)."""
    from vmconform.check.convert import _info_references

    own = "/dev/fd/3"
    assert _info_references({"virtual-size": 1}, own) == []
    assert _info_references({"backing-filename": "/etc/shadow"}, own) == ["a backing file '/etc/shadow'"]
    data_file = {"format-specific": {"type": "qcow2", "data": {"data-file": "x.raw"}}}
    assert _info_references(data_file, own) == ["an external data file 'x.raw'"]
    extents = {"format-specific": {"data": {"extents": [{"filename": own}, {"filename": "/dev/sda"}]}}}
    assert _info_references(extents, own) == ["an extent file '/dev/sda'"]


def test_budgets_scale_with_the_allocated_size() -> None:
    from vmconform.check.budget import MAX_UNITS, Limits

    one = Limits.for_allocated(0)
    assert one.units == 1 and Limits.for_allocated(64 << 20).units == 1
    assert Limits.for_allocated((64 << 20) + 1).units == 2
    many = Limits.for_allocated(1 << 40)
    assert many.units == MAX_UNITS and many.clusters == MAX_UNITS * one.clusters and many.depth == one.depth


@pytest.mark.parametrize(
    ("offset", "value"),
    [(28, 1 << 62), (28, (1 << 64) - 1), (36, 1 << 62), (28, 0), (36, 0), (12, 1 << 62), (20, 0)],
    ids=[
        "desc-offset-2^62",
        "desc-offset-max",
        "desc-size-2^62",
        "no-desc-offset",
        "no-desc-size",
        "capacity",
        "grain",
    ],
)
def test_twisted_sparse_vmdk_headers_end_in_one_line_or_a_verdict(tmp_path: Path, offset: int, value: int) -> None:
    """Before: a descriptor offset of 2^62 sectors crashed the header parser (OverflowError, exit 3)."""
    data = bytearray(hc.vmdk_sparse_with_parent("/nonexistent/parent.vmdk"))
    struct.pack_into("<Q", data, offset, value)
    image = tmp_path / "twisted.vmdk"
    image.write_bytes(data)
    proc = run_check(image)
    assert proc.returncode in (0, 1, 2), proc.stderr
    assert "internal error" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 1
    if offset in (28, 36):  # qemu reads the parent at byte 512 whatever the header says; so does check
        assert "a parent disk '/nonexistent/parent.vmdk'" in proc.stderr, proc.stderr


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["qcow2", "qed", "vmdk-sparse", "vmdk-text"]),
    edits=st.lists(st.tuples(st.integers(0, 4095), st.binary(min_size=1, max_size=8)), max_size=12),
    cut=st.integers(0, 4096),
)
def test_container_header_parsers_never_raise_but_container_error(kind: str, edits, cut: int) -> None:  # type: ignore[no-untyped-def]
    """Random damage to each container header: the parsers return a list or raise ContainerError, nothing
    else (anything else would be an internal error, exit 3)."""
    from vmconform.check import containers

    base = {
        "qcow2": lambda: hc.qcow2_with_data_file(b"/x")[:4096],
        "qed": lambda: hc.qed_with_backing(b"/x")[:4096],
        "vmdk-sparse": lambda: hc.vmdk_sparse_with_parent("/x")[:4096],
        "vmdk-text": lambda: hc.vmdk_descriptor("/x"),
    }[kind]()
    data = bytearray(base)
    for at, chunk in edits:
        data[at % max(len(data), 1) : at % max(len(data), 1) + len(chunk)] = chunk
    head = bytes(data[: max(cut, 4)])
    try:
        if kind == "qcow2":
            out = containers.qcow2_references(head)
        elif kind == "qed":
            out = containers.qed_references(head)
        elif kind == "vmdk-sparse":
            where = containers.vmdk_sparse_descriptor(head)
            out = [] if where is None else containers.vmdk_descriptor_references(head[where[0] :], embedded=True)
        else:
            out = containers.vmdk_descriptor_references(head, embedded=False)
    except containers.ContainerError:
        return
    assert isinstance(out, list) and all(isinstance(x, str) and "\x1b" not in x for x in out)


def test_a_qcow2_extension_past_the_first_64_kib_is_still_read(tmp_path: Path) -> None:
    """With 1 MiB clusters the header extensions may run past the 64 KiB read first: the whole first
    cluster is parsed, as qemu parses it."""
    header = bytearray(hc.qcow2_with_data_file(b"/far/away.raw"))[: 1 << 16]
    struct.pack_into(">I", header, 20, 20)  # cluster_bits: 1 MiB
    struct.pack_into(">Q", header, 72, 0)  # no incompatible bit: only the extension names the file
    ext = struct.pack(">II", 0x12345678, 100 << 10) + bytes(100 << 10)
    ext += struct.pack(">II", 0x44415441, 13) + b"/far/away.raw" + bytes(3) + struct.pack(">II", 0, 0)
    image = tmp_path / "far.qcow2"
    image.write_bytes(bytes(header[:104]) + ext + bytes((2 << 20) - 104 - len(ext)))
    proc = run_check(image)
    assert_refused(proc, "an external data file '/far/away.raw'")
