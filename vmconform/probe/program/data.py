"""The probe's read-only data area: literal text, GUIDs and other constant bytes, placed after the code.

Every item has a label named after what it holds, so the listing (`vmconform gen --listing`) reads
`adr x1, text_FW_st_sig` and `guid_loaded_image`, not `data7`: a `Text` is `text_` + its words, a `Blob`
its own name, a `NonceName` `name_` + its prefix, the nonce's ASCII bytes `nonce_ascii`. The nonce and the
names derived from it have fixed-size slots, so the layout does not depend on the nonce.
"""

from __future__ import annotations

import re

from .. import protocol
from ..asm import Assembler
from .ir import Blob, DataItem, NonceName, Program, Text

__all__ = ["DataArea", "NONCE_LABEL", "ENTRY_LABEL", "ucs2z"]

NONCE_LABEL = "nonce"
ENTRY_LABEL = "entry"  # every lowering defines the entry point under this label

_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PUNCTUATION = {" ": "space", "\r": "cr", "\n": "lf", "=": "eq", "\\": "backslash", "-": "dash"}


def ucs2z(text: str) -> bytes:
    """`text` as NUL-terminated UCS-2 (little-endian UTF-16 without surrogates)."""
    if any(ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF for c in text) or "\0" in text:
        raise ValueError(f"{text!r} is not representable as a NUL-terminated UCS-2 string")
    return text.encode("utf-16-le") + b"\0\0"


def _words(text: str) -> str:
    """The letters and digits of `text` as words joined by '_'; punctuation by name when that is all there is."""
    words = re.findall(r"[A-Za-z0-9]+", text)
    if words:
        return "_".join(words)
    return "_".join(_PUNCTUATION.get(c, f"u{ord(c):04x}") for c in text) or "empty"


def _base_label(item: DataItem) -> str:
    if isinstance(item, Text):
        return "text_" + _words(item.text)
    if isinstance(item, Blob):
        if not _LABEL.fullmatch(item.name):
            raise ValueError(f"blob name {item.name!r} is not a label (letters, digits, '_')")
        return item.name
    if isinstance(item, NonceName):
        return "name_" + _words(item.prefix)
    return "nonce_ascii"


class DataArea:
    """The program's data items, each with a label named after its contents, plus the nonce slot (first)."""

    def __init__(self, program: Program) -> None:
        self._labels: dict[DataItem, str] = {}
        blobs: dict[str, Blob] = {}
        taken = {NONCE_LABEL, ENTRY_LABEL}
        for item in program.data_items():
            if isinstance(item, Blob) and blobs.setdefault(item.name, item) != item:
                raise ValueError(f"two different blobs named {item.name!r}")
            base = label = _base_label(item)
            n = 1
            while label in taken:  # two texts with the same words, e.g. " get=" and " get "
                n += 1
                label = f"{base}_{n}"
            taken.add(label)
            self._labels[item] = label

    def label(self, item: DataItem | str) -> str:
        """The label of a data item (a str means that Text)."""
        return self._labels[Text(item) if isinstance(item, str) else item]

    def emit(self, asm: Assembler, nonce: str) -> None:
        """Place the data area: nonce slot first (fixed size), then the items in order of first use."""
        protocol.validate_nonce(nonce)
        slot = 2 * (protocol.NONCE_MAX + 1)
        asm.align(8)
        asm.label(NONCE_LABEL)
        asm.data(ucs2z(nonce).ljust(slot, b"\0"), f'.ucs2 "{nonce}" (slot of {protocol.NONCE_MAX} chars)')
        for item, label in self._labels.items():
            if isinstance(item, Text):
                asm.align(2)
                asm.label(label)
                asm.data(ucs2z(item.text), f".ucs2 {item.text!r}")
            elif isinstance(item, Blob):
                asm.align(8)
                asm.label(label)
                asm.data(item.data, f".bytes {len(item.data)}: {item.data.hex()}")
            elif isinstance(item, NonceName):
                asm.align(8)
                asm.label(label)
                asm.data(
                    ucs2z(item.prefix + nonce).ljust(2 * len(item.prefix) + slot, b"\0"),
                    f'.ucs2 "{item.prefix}{nonce}" (fixed slot)',
                )
            else:
                asm.align(8)
                asm.data(len(nonce).to_bytes(4, "little"), f".word {len(nonce)} (nonce length)")
                asm.label(label)
                asm.data(nonce.encode("ascii").ljust(protocol.NONCE_MAX + 4, b"\0"), f'.ascii "{nonce}"')
