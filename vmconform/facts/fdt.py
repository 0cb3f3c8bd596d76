"""A reader for flattened device trees (DTB), enough to check what a VM describes.

Implements the Devicetree Specification v0.4 chapter 5 "Flattened Devicetree (DTB) Format": the
big-endian header (§5.2), the structure block tokens FDT_BEGIN_NODE/END_NODE/PROP/NOP/END (§5.4) and
the strings block (§5.5). Property values stay bytes; helpers read strings, string lists and cells.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["FDT_MAGIC", "FdtError", "FdtNode", "Fdt", "parse_fdt"]

FDT_MAGIC = 0xD00DFEED
_BEGIN_NODE, _END_NODE, _PROP, _NOP, _END = 1, 2, 3, 4, 9


class FdtError(ValueError):
    """The blob is not a well-formed flattened device tree."""


@dataclass
class FdtNode:
    name: str
    properties: dict[str, bytes] = field(default_factory=dict)
    children: list[FdtNode] = field(default_factory=list)

    def child(self, name: str) -> FdtNode | None:
        """A child by full name (`cpu@0`) or by name before the unit address (`psci`)."""
        for c in self.children:
            if c.name == name:
                return c
        for c in self.children:
            if c.name.split("@", 1)[0] == name:
                return c
        return None

    def string(self, prop: str) -> str | None:
        value = self.properties.get(prop)
        return None if value is None else value.split(b"\0", 1)[0].decode("ascii", "replace")

    def strings(self, prop: str) -> tuple[str, ...]:
        value = self.properties.get(prop)
        if not value:
            return ()
        return tuple(s.decode("ascii", "replace") for s in value.rstrip(b"\0").split(b"\0"))

    def cells(self, prop: str) -> tuple[int, ...]:
        value = self.properties.get(prop, b"")
        return struct.unpack(f">{len(value) // 4}I", value[: len(value) // 4 * 4])

    @property
    def compatible(self) -> tuple[str, ...]:
        return self.strings("compatible")

    def walk(self, path: str = "") -> Iterator[tuple[str, FdtNode]]:
        """(path, node) for this node and all below it, depth first."""
        here = path if path else "/"
        yield here, self
        for c in self.children:
            yield from c.walk(f"{path}/{c.name}")


@dataclass(frozen=True)
class Fdt:
    version: int
    last_comp_version: int
    boot_cpuid: int
    total_size: int
    reserved: tuple[tuple[int, int], ...]
    root: FdtNode

    def find(self, path: str) -> FdtNode | None:
        node: FdtNode | None = self.root
        for part in path.strip("/").split("/"):
            if part and node is not None:
                node = node.child(part)
        return node

    def compatible(self, *compatibles: str) -> list[tuple[str, FdtNode]]:
        """Every (path, node) whose compatible list holds one of `compatibles`."""
        return [(p, n) for p, n in self.root.walk() if set(n.compatible) & set(compatibles)]

    def status_okay(self, node: FdtNode) -> bool:
        return node.string("status") in (None, "okay", "ok")


def parse_fdt(blob: bytes) -> Fdt:
    """Decode `blob` (at least the header and the blocks it points to; free space may be missing)."""
    if len(blob) < 40:
        raise FdtError(f"{len(blob)} bytes is shorter than an FDT header")
    (magic, total, off_struct, off_strings, off_rsvmap, version, last_comp, boot_cpuid, size_strings,
     size_struct) = struct.unpack_from(">10I", blob)  # fmt: skip
    if magic != FDT_MAGIC:
        raise FdtError(f"bad magic {magic:#010x} (an FDT starts with {FDT_MAGIC:#010x})")
    if last_comp > 17 or version < 16:
        raise FdtError(f"unsupported FDT version {version} (last compatible {last_comp})")
    for name, start, size in (("structure", off_struct, size_struct), ("strings", off_strings, size_strings)):
        if start + size > len(blob) or start + size > total:
            raise FdtError(f"{name} block {start:#x}+{size:#x} outside the blob ({len(blob):#x}, total {total:#x})")
    reserved: list[tuple[int, int]] = []
    pos = off_rsvmap
    while True:
        if pos + 16 > len(blob):
            raise FdtError("memory reservation map runs off the blob")
        address, size = struct.unpack_from(">QQ", blob, pos)
        pos += 16
        if address == 0 and size == 0:
            break
        reserved.append((address, size))
    strings = blob[off_strings : off_strings + size_strings]
    block = blob[off_struct : off_struct + size_struct]

    def name_at(offset: int) -> str:
        end = strings.find(b"\0", offset)
        if offset >= len(strings) or end < 0:
            raise FdtError(f"property name offset {offset:#x} outside the strings block")
        return strings[offset:end].decode("ascii", "replace")

    stack: list[FdtNode] = []
    root: FdtNode | None = None
    pos = 0
    while True:
        if pos + 4 > len(block):
            raise FdtError("structure block ends without FDT_END")
        (token,) = struct.unpack_from(">I", block, pos)
        pos += 4
        if token == _BEGIN_NODE:
            end = block.find(b"\0", pos)
            if end < 0:
                raise FdtError("unterminated node name")
            node = FdtNode(block[pos:end].decode("ascii", "replace"))
            pos = (end + 4) & ~3
            if stack:
                stack[-1].children.append(node)
            elif root is None:
                root = node
            else:
                raise FdtError("a second root node")
            stack.append(node)
        elif token == _END_NODE:
            if not stack:
                raise FdtError("FDT_END_NODE without a node")
            stack.pop()
        elif token == _PROP:
            if not stack or pos + 8 > len(block):
                raise FdtError("FDT_PROP outside a node")
            length, nameoff = struct.unpack_from(">II", block, pos)
            pos += 8
            stack[-1].properties[name_at(nameoff)] = block[pos : pos + length]
            pos = (pos + length + 3) & ~3
        elif token == _NOP:
            continue
        elif token == _END:
            break
        else:
            raise FdtError(f"unknown token {token:#x} at structure offset {pos - 4:#x}")
    if root is None or stack:
        raise FdtError("no complete root node")
    return Fdt(version, last_comp, boot_cpuid, total, tuple(reserved), root)
