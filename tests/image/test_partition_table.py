"""IMG-1/IMG-2: protective MBR and GPT of the reference image, checked with sgdisk and by hand."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import NamedTuple

from vmconform.image import DataPartition, DiskSpec, EspFile, EspPartition

from ._oracles import mtype_bytes, need, sgdisk_partitions, sgdisk_verify
from ._support import BOOT_PATH, ESP_START_LBA, SECTOR, Built, build_and_save, payload

ESP_TYPE_BYTES = bytes.fromhex("28732AC11FF8D211BA4B00A0C93EC93B")  # C12A7328-F81F-11D2-BA4B-00A0C93EC93B


@need("sgdisk")
def test_sgdisk_verify_finds_no_problems(reference: Built) -> None:
    assert "No problems found" in sgdisk_verify(reference.path)


@need("sgdisk")
def test_sgdisk_lists_one_esp_at_lba_2048(reference: Built) -> None:
    rows = sgdisk_partitions(reference.path)
    assert len(rows) == 1
    (esp,) = rows
    assert (esp.number, esp.start, esp.code, esp.name) == (1, ESP_START_LBA, "EF00", "EFI System Partition")
    assert (esp.end + 1) % 2048 == 0  # ends on a 1 MiB boundary


def test_protective_mbr(reference: Built) -> None:
    lba0 = reference.path.read_bytes()[:SECTOR]
    assert lba0[510:512] == b"\x55\xaa"
    last_lba = reference.image.size // SECTOR - 1
    boot, _chs, os_type, _end_chs, start, size = struct.unpack_from("<B3sB3sII", lba0, 446)
    assert (boot, os_type, start, size) == (0, 0xEE, 1, min(last_lba, 0xFFFFFFFF))
    assert lba0[:446] == bytes(446) and lba0[462:510] == bytes(48)  # rest zero, other records empty


class _Header(NamedTuple):
    """GPT header fields in §5.3.2 order."""

    sig: bytes
    rev: int
    size: int
    crc: int
    reserved: int
    my: int
    alt: int
    first: int
    last: int
    guid: bytes
    entries_lba: int
    n_entries: int
    entry_size: int
    entries_crc: int


def _header(raw: bytes, lba: int) -> tuple[_Header, bool, bool]:
    """The header at `lba`, whether its CRC is right, and whether the rest of the block is zero."""
    block = raw[lba * SECTOR : (lba + 1) * SECTOR]
    hdr = _Header(*struct.unpack_from("<8sIIIIQQQQ16sQIII", block))
    crc_ok = zlib.crc32(block[:16] + b"\0\0\0\0" + block[20 : hdr.size]) == hdr.crc
    return hdr, crc_ok, block[92:] == bytes(SECTOR - 92)


def test_primary_and_backup_headers(reference: Built) -> None:
    raw = reference.path.read_bytes()
    last = len(raw) // SECTOR - 1
    (primary, *primary_ok), (backup, *backup_ok) = _header(raw, 1), _header(raw, last)
    assert primary_ok == backup_ok == [True, True]
    for hdr in (primary, backup):
        assert (hdr.sig, hdr.rev, hdr.size, hdr.reserved) == (b"EFI PART", 0x00010000, 92, 0)
        assert (hdr.n_entries, hdr.entry_size) == (128, 128)
        assert (hdr.first, hdr.last) == (34, last - 33)
        array = raw[hdr.entries_lba * SECTOR : hdr.entries_lba * SECTOR + 128 * 128]
        assert zlib.crc32(array) == hdr.entries_crc
        assert array[:16] == ESP_TYPE_BYTES
        assert array[56:128].decode("utf-16-le").rstrip("\0") == "EFI System Partition"
    assert (primary.my, primary.alt, primary.entries_lba) == (1, last, 2)
    assert (backup.my, backup.alt, backup.entries_lba) == (last, 1, last - 32)
    assert primary.guid == backup.guid


@need("sgdisk", "mdir")
def test_esp_as_second_partition(tmp_path: Path) -> None:
    """The layout extension point: a data partition first, the ESP after it."""
    spec = DiskSpec(
        files=(EspFile(BOOT_PATH, payload(5000)),),
        seed="second",
        size_bytes=80 * 2**20,
        partitions=(DataPartition(size_bytes=8 * 2**20), EspPartition()),
    )
    built = build_and_save(spec, tmp_path / "disk.img")
    assert "No problems found" in sgdisk_verify(built.path)
    data, esp = sgdisk_partitions(built.path)
    assert (data.start, data.end, data.code) == (2048, 2048 + 8 * 2048 - 1, "8300")
    assert (esp.start, esp.code) == (2048 + 8 * 2048, "EF00")
    assert mtype_bytes(built.path, esp.start * SECTOR, "/" + BOOT_PATH) == payload(5000)
