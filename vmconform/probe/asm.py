"""A two-pass assembler, independent of the instruction set, for fixed-size items.

Pass 1 lays out every item (instructions have a size known up front, data has its length, alignment pads)
and records label addresses; pass 2 encodes, resolving label operands. An instruction is an encoder
function plus its operands; `Rel(label)` operands become the byte offset from the instruction's own
address to the label (an encoder for an ISA whose PC reads ahead, such as A32's +8, adjusts for that
itself), `Addr(label)` operands the label's address. Only position-independent code is produced: there
are no relocations. Encoders return an int (stored little-endian in `size` bytes) or the bytes themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

__all__ = ["Rel", "Addr", "Assembler", "Assembled", "ListingLine"]


@dataclass(frozen=True)
class Rel:
    """Operand: the byte offset from the current instruction's address to `label`."""

    label: str

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Addr:
    """Operand: the address of `label` (origin-relative, for data such as offset tables)."""

    label: str

    def __str__(self) -> str:
        return f"={self.label}"


@dataclass(frozen=True)
class _Insn:
    encoder: Callable[..., int | bytes]
    operands: tuple[Any, ...]
    size: int
    comment: str


@dataclass(frozen=True)
class _Data:
    data: bytes
    text: str


@dataclass(frozen=True)
class _Align:
    alignment: int
    fill: int


@dataclass(frozen=True)
class _Label:
    name: str


@dataclass(frozen=True)
class _Comment:
    text: str


_Item = _Insn | _Data | _Align | _Label | _Comment


@dataclass(frozen=True)
class ListingLine:
    """One listing row: an address with the bytes placed there and their source text."""

    address: int
    data: bytes  # for data and alignment rows, the first 8 bytes only
    text: str
    kind: str  # "insn", "data", "align", "label" or "comment"

    def __str__(self) -> str:
        if self.kind in ("label", "comment"):
            return f"{'':10}  {'':16}  {self.text}"
        return f"{self.address:#010x}  {self.data.hex():16}  {self.text}"


@dataclass(frozen=True)
class Assembled:
    """The result: code and data bytes starting at `origin`, label addresses, and a listing."""

    origin: int
    code: bytes
    labels: Mapping[str, int]
    listing: tuple[ListingLine, ...]

    def offset_of(self, label: str) -> int:
        """Offset of `label` from the start of `code`."""
        return self.labels[label] - self.origin

    def listing_text(self) -> str:
        return "\n".join(str(line) for line in self.listing) + "\n"


def _format_operand(op: Any) -> str:
    if isinstance(op, Enum):
        return str(op.value)
    if isinstance(op, int) and not isinstance(op, bool) and abs(op) > 9:
        return f"{op:#x}" if op >= 0 else f"-{-op:#x}"
    return str(op)


class Assembler:
    """Collects items, then `assemble()` lays them out and encodes them.

    `insn_size` is the default instruction size (4 for A64 and A32; a Thumb-2 lowering passes
    `size=2` or `size=4` per instruction).
    """

    def __init__(self, origin: int = 0, insn_size: int = 4) -> None:
        self._origin = origin
        self._insn_size = insn_size
        self._items: list[_Item] = []
        self._label_names: set[str] = set()
        self._fresh = 0

    def label(self, name: str) -> str:
        """Define `name` at the current position and return it."""
        if name in self._label_names:
            raise ValueError(f"label {name!r} defined twice")
        self._label_names.add(name)
        self._items.append(_Label(name))
        return name

    def fresh_label(self, hint: str = "L") -> str:
        """A new unique label name (not yet placed; place it with `label()`)."""
        self._fresh += 1
        return f".{hint}{self._fresh}"

    def comment(self, text: str) -> None:
        """A comment line in the listing (no bytes)."""
        self._items.append(_Comment(text))

    def insn(
        self, encoder: Callable[..., int | bytes], *operands: Any, size: int | None = None, comment: str = ""
    ) -> None:
        """One instruction: `encoder(*operands)` with `Rel`/`Addr` operands resolved in pass 2."""
        self._items.append(_Insn(encoder, operands, size or self._insn_size, comment))

    def data(self, data: bytes, text: str = "") -> None:
        self._items.append(_Data(bytes(data), text or f".bytes {len(data)}"))

    def align(self, alignment: int, fill: int = 0) -> None:
        if alignment <= 0 or alignment & (alignment - 1):
            raise ValueError(f"alignment {alignment} is not a power of two")
        self._items.append(_Align(alignment, fill))

    def assemble(self) -> Assembled:
        labels = self._layout()
        code = bytearray()
        listing: list[ListingLine] = []
        for item in self._items:
            address = self._origin + len(code)
            if isinstance(item, _Label):
                listing.append(ListingLine(address, b"", f"{item.name}:", "label"))
            elif isinstance(item, _Comment):
                listing.append(ListingLine(address, b"", f"    ; {item.text}", "comment"))
            elif isinstance(item, _Align):
                pad = -address % item.alignment
                if pad:
                    code += bytes([item.fill]) * pad
                    filler = bytes([item.fill]) * min(pad, 8)
                    listing.append(ListingLine(address, filler, f"    .align {item.alignment}", "align"))
            elif isinstance(item, _Data):
                code += item.data
                listing.append(ListingLine(address, item.data[:8], f"    {item.text}", "data"))
            else:
                encoded = self._encode(item, address, labels)
                code += encoded
                ops = ", ".join(_format_operand(op) for op in item.operands)
                text = f"    {item.encoder.__name__.rstrip('_')} {ops}".rstrip()
                if item.comment:
                    text = f"{text:40} ; {item.comment}"
                listing.append(ListingLine(address, encoded, text, "insn"))
        return Assembled(self._origin, bytes(code), MappingProxyType(labels), tuple(listing))

    def _layout(self) -> dict[str, int]:
        labels: dict[str, int] = {}
        address = self._origin
        for item in self._items:
            if isinstance(item, _Label):
                labels[item.name] = address
            elif isinstance(item, _Align):
                address += -address % item.alignment
            elif isinstance(item, _Data):
                address += len(item.data)
            elif isinstance(item, _Insn):
                address += item.size
        return labels

    @staticmethod
    def _encode(item: _Insn, address: int, labels: Mapping[str, int]) -> bytes:
        def resolve(op: Any) -> Any:
            if isinstance(op, Rel | Addr):
                if op.label not in labels:
                    raise ValueError(f"undefined label {op.label!r}")
                return labels[op.label] - address if isinstance(op, Rel) else labels[op.label]
            return op

        result = item.encoder(*(resolve(op) for op in item.operands))
        encoded = result if isinstance(result, bytes) else result.to_bytes(item.size, "little")
        if len(encoded) != item.size:
            raise ValueError(f"{item.encoder.__name__} produced {len(encoded)} bytes, expected {item.size}")
        return encoded
