"""Container headers that `vmconform check` parses itself before qemu-img ever opens the file.

An image must never make vmconform read a file other than itself. qemu-img follows a qcow2 backing
file or external data file, a qed backing file, a vmdk parent (`parentFileNameHint`) and every extent a
vmdk descriptor file names, wherever they are on the host. `external_references` finds those in the
image's own bytes (qcow2 spec `docs/interop/qcow2.txt`: header, incompatible feature bit 2, header
extension 0x44415441; QED spec: features bit 0 and the backing file name fields; VMware's Virtual Disk
Format 1.1: the sparse header and its embedded descriptor, descriptor files) and says what they are;
the caller refuses the image when the list is not empty. qemu-img is then still run with `backing: null`
and its `info` is checked again for any other file (`source.py`).
"""

from __future__ import annotations

import re
import struct

from vmconform.check.text import printable

QCOW2_INCOMPAT_DATA_FILE = 1 << 2
QCOW2_EXT_END = 0
QCOW2_EXT_DATA_FILE = 0x44415441
QCOW2_EXT_BACKING_FORMAT = 0xE2792ACA
QED_F_BACKING_FILE = 1
MAX_DESCRIPTOR = 1 << 20
"""Bytes of an embedded vmdk descriptor read at most (qemu reads at most 1 MiB of one too)."""
MAX_EXTENSIONS = 4096
VMDK_DESC_SIZE = 20 * 512
"""What qemu reads of a sparse vmdk's descriptor at byte 512 when it looks for `parentFileNameHint`."""


class ContainerError(Exception):
    """The container header itself is unreadable or names a feature check refuses; one line."""


def _name(raw: bytes) -> str:
    return printable(raw.decode("utf-8", errors="replace"), limit=120)


def qcow2_references(head: bytes) -> list[str]:
    """What a qcow2 header (the first cluster of the file, or less) names outside the file."""
    if len(head) < 72:
        raise ContainerError("the qcow2 header is cut short")
    version, backing_offset, backing_size = struct.unpack_from(">IQI", head, 4)
    (crypt,) = struct.unpack_from(">I", head, 32)
    if version not in (2, 3):
        raise ContainerError(f"qcow2 version {version} (check reads versions 2 and 3)")
    out = []
    if backing_offset or backing_size:
        name = head[backing_offset : backing_offset + min(backing_size, 1023)] if backing_offset < len(head) else b""
        out.append(f"a backing file '{_name(name)}'" if name else "a backing file")
    if crypt:
        raise ContainerError(f"an encrypted qcow2 image (crypt_method {crypt}) cannot be read without its key")
    ext_start = 72
    if version == 3:
        if len(head) < 104:
            raise ContainerError("the qcow2 v3 header is cut short")
        incompatible, _compat, _autoclear, _order, header_length = struct.unpack_from(">QQQII", head, 72)
        if incompatible & QCOW2_INCOMPAT_DATA_FILE:
            out.append("an external data file (incompatible feature bit 2)")
        ext_start = header_length
    pos = ext_start
    for _ in range(MAX_EXTENSIONS):
        if pos + 8 > len(head):
            break
        kind, length = struct.unpack_from(">II", head, pos)
        if kind == QCOW2_EXT_END:
            break
        if kind == QCOW2_EXT_DATA_FILE:
            out.append(f"an external data file '{_name(head[pos + 8 : pos + 8 + min(length, 1023)])}'")
        pos += 8 + (length + 7) // 8 * 8
    return list(dict.fromkeys(out))


def qcow2_first_cluster(head: bytes) -> int:
    """Bytes of the qcow2 file's first cluster (header and extensions): 2^cluster_bits, 512 B to 2 MiB."""
    bits = struct.unpack_from(">I", head, 20)[0] if len(head) >= 24 else 16
    return 1 << min(max(bits, 9), 21)


def qed_references(head: bytes) -> list[str]:
    """What a QED header names outside the file (its backing file)."""
    if len(head) < 64:
        raise ContainerError("the qed header is cut short")
    (features,) = struct.unpack_from("<Q", head, 16)
    offset, size = struct.unpack_from("<II", head, 56)
    if features & QED_F_BACKING_FILE or offset or size:
        name = head[offset : offset + min(size, 1023)] if 0 < offset < len(head) else b""
        return [f"a backing file '{_name(name)}'" if name else "a backing file"]
    return []


_EXTENT = re.compile(rb'^\s*(RW|RDONLY|NOACCESS)\s+\d+\s+(\w+)(?:\s+"([^"]*)")?', re.MULTILINE)


def vmdk_descriptor_references(text: bytes, embedded: bool) -> list[str]:
    """Files a vmdk descriptor names: its parent, and (a descriptor file) every extent with a file."""
    out = []
    parent = re.search(rb'^\s*parentFileNameHint\s*=\s*"([^"]*)"', text, re.MULTILINE)
    if parent:
        out.append(f"a parent disk '{_name(parent.group(1))}' (parentFileNameHint)")
    if not embedded:  # qemu opens every extent of a descriptor file; a sparse file's own descriptor is ignored
        extents = [m.group(3) for m in _EXTENT.finditer(text) if m.group(3) is not None]
        if extents:
            out.append("extent files " + ", ".join("'" + _name(e) + "'" for e in extents[:4]))
        else:
            out.append("a descriptor file (its data lives in extent files)")
    return out


def vmdk_sparse_descriptor(head: bytes) -> tuple[int, int] | None:
    """(offset, length) in bytes of a sparse vmdk's embedded descriptor, or None when it has none."""
    if len(head) < 56:
        raise ContainerError("the vmdk sparse header is cut short")
    desc_offset, desc_size = struct.unpack_from("<QQ", head, 28)
    if not desc_offset or not desc_size:
        return None
    return desc_offset * 512, min(desc_size * 512, MAX_DESCRIPTOR)
