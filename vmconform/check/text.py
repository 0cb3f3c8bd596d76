"""Text read from an image, made safe for a terminal.

File names, partition names and qemu-img messages come from the image, so they may hold escape
sequences (ESC [ ... that recolour, move the cursor or set the window title), bidirectional overrides
that reorder what is shown, or line breaks that forge extra report lines. `printable` writes every
such character as a Python-style escape (\\x1b, \\u202e) so that a table row stays one honest line.
JSON output needs none of this: json.dumps already escapes control characters.
"""

from __future__ import annotations

import unicodedata

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, limit: int | None = None) -> str:
    """`text` with control, format (bidi), unassigned and line/paragraph-separator characters escaped,
    cut to about `limit` characters (with "...") when a limit is given."""
    out = "".join(_escape(ch) if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text)
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 3, 0)] + "..."
    return out
