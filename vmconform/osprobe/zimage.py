"""The armhf kernel's true memory footprint, written into its PE header (`declare_heap`).

Debian's armmp kernel is a ``zImage``: a decompressor with an EFI stub, a PE32 image whose header gives the
memory it needs (SizeOfImage; a loader allocates the end of the last section, U-Boot the highest section end).
After ExitBootServices the decompressor unpacks the kernel into memory the stub reserved, but it takes its
heap (Linux's ``MALLOC_SIZE``, 64 KiB in 6.1: the XZ decoder's state) from the bytes right after its stack,
which is where its PE image ends: memory it never asked the firmware for. On U-Boot, whose allocator is
top-down, GRUB's initrd lies a few pages above the image that LoadImage made of the kernel, and the
decoder's LZMA state (little-endian 0x0400 words) overwrites the initrd's first ~10 KiB before Linux reads
it: "Initramfs unpacking failed: invalid magic at start of compressed archive" (measured: the guest memory
dumped at the panic differs from initrd.img in bytes 0 to 0x29ef only). U-Boot is right to give the image
what it declares; the image under-declares. On AAVMF the same write lands in whatever follows the image (in
the measured layout an ACPI Reclaim allocation made before the hand-over, not the initrd), so nothing showed.

`declare_heap` grows the last section's VirtualSize and SizeOfImage by `HEAP` (twice 6.1's 64 KiB, room
for the larger heaps of other configurations): a UEFI loader then allocates, and zeroes, the heap with the
image, and the probe's kernel uses no memory that the firmware may have given to someone else.
"""

from __future__ import annotations

import struct

__all__ = ["HEAP", "ZimageError", "declare_heap", "footprint"]

HEAP = 0x20000
"""Bytes added to the image's footprint for the decompressor's heap."""
ZIMAGE_MAGIC = 0x016F2818  # at offset 0x24 of every ARM zImage
MACHINE_ARM = (0x1C0, 0x1C2, 0x1C4)  # IMAGE_FILE_MACHINE_ARM, _THUMB, _ARMNT
_SECTION = struct.Struct("<8sII")  # name, VirtualSize, VirtualAddress


class ZimageError(ValueError):
    """The file is not an ARM zImage with a PE header (one line)."""


def _headers(image: bytes) -> tuple[int, int, int]:
    """(optional header offset, section table offset, section count) of an ARM zImage's PE header."""
    if len(image) < 0x40 or image[:2] != b"MZ":
        raise ZimageError("the kernel is not a PE image (no MZ header)")
    if struct.unpack_from("<I", image, 0x24)[0] != ZIMAGE_MAGIC:
        raise ZimageError("the kernel is not an ARM zImage (no zImage magic at 0x24)")
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    if pe + 24 > len(image) or image[pe : pe + 4] != b"PE\0\0":
        raise ZimageError("the zImage has no PE signature")
    machine, nsections = struct.unpack_from("<HH", image, pe + 4)
    opt_size = struct.unpack_from("<H", image, pe + 20)[0]
    opt = pe + 24
    if machine not in MACHINE_ARM or struct.unpack_from("<H", image, opt)[0] != 0x10B:
        raise ZimageError(f"the zImage's PE header is not PE32 for ARM (machine {machine:#x})")
    table = opt + opt_size
    if nsections == 0 or table + 40 * nsections > len(image):
        raise ZimageError("the zImage's section table is empty or runs past its end")
    return opt, table, nsections


def footprint(image: bytes) -> tuple[int, int]:
    """(SizeOfImage, end of the highest section) the zImage declares."""
    opt, table, nsections = _headers(image)
    ends = [va + vsize for _n, vsize, va in (_SECTION.unpack_from(image, table + 40 * i) for i in range(nsections))]
    return struct.unpack_from("<I", image, opt + 56)[0], max(ends)


def declare_heap(image: bytes, heap: int = HEAP) -> bytes:
    """`image` with its highest section and SizeOfImage grown to cover `heap` more bytes (page aligned)."""
    opt, table, nsections = _headers(image)
    sections = [(table + 40 * i, *_SECTION.unpack_from(image, table + 40 * i)[1:]) for i in range(nsections)]
    at, vsize, va = max(sections, key=lambda s: s[2] + s[1])
    align = struct.unpack_from("<I", image, opt + 32)[0] or 0x1000
    end = max(va + vsize, struct.unpack_from("<I", image, opt + 56)[0]) + heap
    end += -end % align
    out = bytearray(image)
    struct.pack_into("<I", out, at + 8, end - va)  # the section's VirtualSize: zero-filled past its raw data
    struct.pack_into("<I", out, opt + 56, end)  # SizeOfImage
    struct.pack_into("<I", out, opt + 64, 0)  # CheckSum: no UEFI loader checks it; 0 says "not computed"
    return bytes(out)
