"""Hostile container files for `vmconform check`'s tests, written byte by byte here (independent of
vmconform's image writer and of qemu-img): qcow2 with a backing file, an external data file or a
decompression bomb; qed with a backing file; vmdk descriptor files and sparse files with a parent.

Layouts follow qemu's docs/interop/qcow2.txt, the QED spec and VMware's Virtual Disk Format 1.1.
"""

from __future__ import annotations

import struct
import zlib

CLUSTER_BITS = 16
CLUSTER = 1 << CLUSTER_BITS


def _qcow2_header(virtual: int, l1_entries: int, incompatible: int = 0) -> bytearray:
    """A qcow2 v3 header: refcount table at cluster 1 (its block at cluster 2), L1 table at cluster 3."""
    header = bytearray(CLUSTER)
    struct.pack_into(
        ">4sIQIIQIIQQIIQ",
        header,
        0,
        b"QFI\xfb",
        3,  # version
        0,  # backing_file_offset
        0,  # backing_file_size
        CLUSTER_BITS,
        virtual,
        0,  # crypt_method
        l1_entries,
        3 * CLUSTER,  # l1_table_offset
        1 * CLUSTER,  # refcount_table_offset
        1,  # refcount_table_clusters
        0,  # nb_snapshots
        0,  # snapshots_offset
    )
    struct.pack_into(">QQQII", header, 72, incompatible, 0, 0, 4, 104)  # features, refcount_order 4, header_length
    return header


def _extensions(header: bytearray, extensions: list[tuple[int, bytes]], at: int = 104) -> int:
    for kind, data in extensions:
        struct.pack_into(">II", header, at, kind, len(data))
        header[at + 8 : at + 8 + len(data)] = data
        at += 8 + (len(data) + 7) // 8 * 8
    struct.pack_into(">II", header, at, 0, 0)
    return at + 8


def _refcounts(n_clusters: int) -> tuple[bytes, bytes]:
    table = bytearray(CLUSTER)
    struct.pack_into(">Q", table, 0, 2 * CLUSTER)
    block = bytearray(CLUSTER)
    for i in range(min(n_clusters, CLUSTER // 2)):
        struct.pack_into(">H", block, 2 * i, 1)
    return bytes(table), bytes(block)


def qcow2_bomb(virtual: int = 1 << 30, fill: bytes = b"vmconform-bomb ") -> bytes:
    """A qcow2 whose every guest cluster is one shared compressed cluster of `fill`: a few hundred KiB that
    expand to `virtual` bytes of non-zero data (what `qemu-img convert` writes out in full)."""
    guest_clusters = virtual // CLUSTER
    per_l2 = CLUSTER // 8
    n_l2 = -(-guest_clusters // per_l2)
    data_cluster = 4 + n_l2
    payload = (fill * (CLUSTER // len(fill) + 1))[:CLUSTER]
    packer = zlib.compressobj(9, zlib.DEFLATED, -12)
    compressed = packer.compress(payload) + packer.flush()
    sectors = -(-((data_cluster * CLUSTER) % 512 + len(compressed)) // 512) - 1
    x = 62 - (CLUSTER_BITS - 8)
    descriptor = (1 << 62) | (sectors << x) | (data_cluster * CLUSTER)
    header = _qcow2_header(virtual, n_l2)
    _extensions(header, [])
    refs = _refcounts(data_cluster + 1)
    l1 = bytearray(CLUSTER)
    l2s = []
    for i in range(n_l2):
        struct.pack_into(">Q", l1, 8 * i, (1 << 63) | (4 + i) * CLUSTER)
        count = min(per_l2, guest_clusters - i * per_l2)
        l2s.append(struct.pack(f">{count}Q", *([descriptor] * count)).ljust(CLUSTER, b"\0"))
    return bytes(header) + refs[0] + refs[1] + bytes(l1) + b"".join(l2s) + compressed.ljust(CLUSTER, b"\0")


def qcow2_with_backing(name: bytes, virtual: int = 1 << 20) -> bytes:
    """An empty qcow2 whose header names `name` as its backing file (read through for every cluster)."""
    header = _qcow2_header(virtual, 1)
    end = _extensions(header, [])
    header[end : end + len(name)] = name
    struct.pack_into(">QI", header, 8, end, len(name))
    refs = _refcounts(5)
    return bytes(header) + refs[0] + refs[1] + bytes(CLUSTER)


def qcow2_with_data_file(name: bytes, virtual: int = 1 << 20, raw: bool = True) -> bytes:
    """A qcow2 whose data lives in the external file `name` (incompatible bit 2, extension 0x44415441);
    with `raw` (autoclear bit 1) its guest bytes are that file's bytes, unallocated clusters included."""
    header = _qcow2_header(virtual, 1, incompatible=1 << 2)
    struct.pack_into(">Q", header, 88, 1 << 1 if raw else 0)
    _extensions(header, [(0x44415441, name)])
    refs = _refcounts(5)
    return bytes(header) + refs[0] + refs[1] + bytes(CLUSTER)


def qed_with_backing(name: bytes, virtual: int = 1 << 20) -> bytes:
    """A QED image whose header names `name` as its backing file."""
    header = bytearray(4096)
    struct.pack_into("<4sIIIQQQQQII", header, 0, b"QED\0", CLUSTER, 4, 1, 1, 0, 0, CLUSTER, virtual, 512, len(name))
    header[512 : 512 + len(name)] = name
    return bytes(header).ljust(CLUSTER, b"\0") + bytes(4 * CLUSTER)


def vmdk_descriptor(extent: str, sectors: int = 2048, kind: str = "FLAT") -> bytes:
    """A vmdk descriptor file whose one extent is the host file `extent` (qemu-img reads it as the disk)."""
    return (
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        f'createType="monolithicFlat"\n\n# Extent description\nRW {sectors} {kind} "{extent}" 0\n'
    ).encode()


def vmdk_sparse_with_parent(parent: str, sectors: int = 2048) -> bytes:
    """A monolithic sparse vmdk (KDMV header, embedded descriptor) whose descriptor names a parent disk."""
    desc = (
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=87654321\n"
        f'createType="monolithicSparse"\nparentFileNameHint="{parent}"\n\n'
        f'# Extent description\nRW {sectors} SPARSE "self.vmdk"\n'
    ).encode()
    gtes = 512
    gt_count = -(-sectors // (128 * gtes))
    header = bytearray(512)
    struct.pack_into(
        "<4sIIQQQQIQQQB4sH", header, 0, b"KDMV", 1, 3, sectors, 128, 1, 20, gtes, 0, 21, 128, 0,
        b"\n \r\n", 0,
    )  # fmt: skip
    gd = struct.pack(f"<{gt_count}I", *[22 + 4 * i for i in range(gt_count)]).ljust(512, b"\0")
    body = bytes(header) + desc.ljust(20 * 512, b"\0") + gd + bytes(4 * 512 * gt_count)
    return body.ljust(128 * 512, b"\0")
