"""SparseImage semantics, sparse files on disk and qemu-img's view of them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from vmconform.image import SparseImage

from ._oracles import need, run
from ._support import Built


def test_holes_read_as_zero_and_writes_span_pages() -> None:
    img = SparseImage(3 * 4096 + 100)
    img.write(4090, b"abcdefghij")
    img.write(3 * 4096 + 90, b"0123456789")
    assert img.read(0, 4090) == bytes(4090)
    assert img.read(4088, 14) == b"\0\0abcdefghij\0\0"
    assert img.read(3 * 4096 + 95, 5) == b"56789"
    img.write(4090, bytes(10))  # overwrite with zeros
    assert img.read(4085, 20) == bytes(20)
    assert list(img.extents()) == [(3 * 4096, bytes(90) + b"0123456789")]


def test_out_of_range_is_rejected() -> None:
    img = SparseImage(1000)
    with pytest.raises(ValueError, match="outside"):
        img.write(995, b"123456")
    with pytest.raises(ValueError, match="outside"):
        img.read(-1, 2)


def test_sha256_and_save_match_materialised_content(tmp_path: Path) -> None:
    img = SparseImage(5 * 2**20 + 123)
    img.write(7, b"x" * 9000)
    img.write(3 * 2**20 + 1, b"y")
    img.write(5 * 2**20 + 120, b"end")
    expected = bytearray(5 * 2**20 + 123)
    expected[7:9007] = b"x" * 9000
    expected[3 * 2**20 + 1] = ord("y")
    expected[-3:] = b"end"
    img.save(tmp_path / "a.img")
    assert (tmp_path / "a.img").read_bytes() == expected
    assert img.sha256() == hashlib.sha256(expected).hexdigest()


def test_reference_image_is_sparse_on_disk(reference: Built) -> None:
    assert os.stat(reference.path).st_size == 64 * 2**20
    assert os.stat(reference.path).st_blocks * 512 < 512 * 1024


def test_sha256_equals_file_hash(reference: Built) -> None:
    assert reference.image.sha256() == hashlib.sha256(reference.path.read_bytes()).hexdigest()


@need("qemu-img")
def test_qemu_img_sees_raw_64mib(reference: Built) -> None:
    info = json.loads(run("qemu-img", "info", "--output=json", "-f", "raw", reference.path).stdout)
    assert info["format"] == "raw" and info["virtual-size"] == 64 * 2**20
    probed = json.loads(run("qemu-img", "info", "--output=json", reference.path).stdout)
    assert probed["format"] == "raw"
