"""FW-6 / FW-8 for `vmconform check`: UEFI variable stores and firmware volumes stored inside the image,
found by scanning the image's allocated data (at most a budget of bytes, in proportion to its size).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable

from vmconform.check.gpt import guid as _guid
from vmconform.check.source import Source

NV_DATA_FV_GUID = uuid.UUID("FFF12B8D-7696-4C8B-A985-2747075B4F50")
VARIABLE_STORE_GUIDS = (
    uuid.UUID("AAF32C78-947B-439A-A180-2E144EC37792"),  # gEfiAuthenticatedVariableGuid
    uuid.UUID("DDCF3616-3275-4164-98B6-FE85707FFE7D"),  # gEfiVariableGuid
)
UBOOT_VAR_MAGIC = b"UbEfiVa\x01"  # U-Boot's ubootefi.var file (EFI_VAR_FILE_MAGIC, little-endian)
_SCAN_CHUNK = 4 << 20


def _find_stores(src: Source, base: int, chunk: bytes, fv: list[str], stores: list[str]) -> None:
    def each(needle: bytes, found: Callable[[int], None]) -> None:
        pos = chunk.find(needle)
        hits = 0
        while pos >= 0 and hits < 64:
            found(base + pos)
            hits += 1
            pos = chunk.find(needle, pos + 1)

    def fvh(at: int) -> None:
        start = at - 40
        header = src.read(start, 56)
        if start < 0 or len(header) < 56:
            return
        length = struct.unpack_from("<H", header, 48)[0]
        if not 56 <= length <= 4096 or length % 2:
            return
        full = src.read(start, length)
        if len(full) < length or sum(struct.unpack(f"<{length // 2}H", full)) & 0xFFFF:
            return
        guid = _guid(header[16:32])
        if guid == NV_DATA_FV_GUID:
            stores.append(f"UEFI variable store firmware volume at byte {start}")
        else:
            fv.append(f"firmware volume (file system {guid}) at byte {start}")

    def var_header(at: int) -> None:
        rest = src.read(at + 16, 6)
        if len(rest) == 6 and rest[4] == 0x5A and rest[5] == 0xFE:
            stores.append(f"variable store header at byte {at}")

    def uboot(at: int) -> None:
        stores.append(f"U-Boot variable file (ubootefi.var) at byte {at - 8}")

    each(b"_FVH", fvh)
    for guid in VARIABLE_STORE_GUIDS:
        each(guid.bytes_le, var_header)
    each(UBOOT_VAR_MAGIC, uboot)


MAX_SCAN_BYTES = 1 << 30
"""Data scanned at least before the scan may stop (about 0.1 s per 64 MiB on 2 cores)."""


def scan_limit(allocated: int) -> int:
    """How much data a scan may read: all the image really holds (its cost is in proportion to it), and at
    least MAX_SCAN_BYTES. Only an image whose data extents claim more than it allocates (a file system
    without SEEK_DATA, say) can reach it; its rows are then `error`, never a pass."""
    return max(MAX_SCAN_BYTES, allocated + (64 << 20))


def scan(src: Source, limit: int = MAX_SCAN_BYTES) -> tuple[list[str], list[str], int, bool]:
    """(firmware volumes, variable stores, bytes scanned, whether `limit` stopped the scan) of the image's
    allocated data, in 4 MiB chunks that overlap by 64 bytes (a signature across a chunk boundary)."""
    fv: list[str] = []
    stores: list[str] = []
    scanned = 0
    for start, length in src.data_extents():
        pos, end = start, start + length
        while pos < end:
            if scanned >= limit:
                return fv, stores, scanned, True
            n = min(_SCAN_CHUNK, end - pos)
            chunk = src.read(pos, n + 64)
            if not chunk:
                break
            scanned += n
            _find_stores(src, pos, chunk[: n + 64], fv, stores)
            pos += n
        if len(fv) + len(stores) > 16:
            break
    return fv, stores, scanned, False
