"""The one way the probe program builds a protocol line: `PREFIX <nonce> KEY item...` CR LF.

The line grammar is `vmconform.probe.protocol`'s; its `PREFIX`, `LINE_END` and `TEXT_FIELDS` are used here and
nowhere else in the program. A line is one `Print` step when everything in it is known where it starts::

    line("FW", ("st_sig", Hex(...)), ("vendor", FirmwareString(...)))

and several when loops or conditions print some of its items: `line_start(key, *items)` opens it,
`line_items(*items)` adds items, `line_value(*parts)` adds to the value of the field printed last (a
chunked hex field), and `LINE_END` closes it. An item is

* a positional arg: a `str`, or `arg(*pieces)` for one printed at run time (`arg("acpi", Hex(index, 2))`);
* a field `(name, value)`: the value literal text, one run-time `Part`, or a tuple of parts. A text field
  (`protocol.TEXT_FIELDS`, may hold spaces) must be the last item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import protocol
from .ir import FirmwareString, NonceText, Part, Print, Text

__all__ = ["Arg", "arg", "Item", "FieldValue", "line", "line_start", "line_items", "line_value", "LINE_END"]

FieldValue = str | Part | tuple[Part, ...]


@dataclass(frozen=True)
class Arg:
    """A positional arg printed at run time (no spaces, no '=' in what it prints)."""

    parts: tuple[Part, ...]


def arg(*pieces: str | Part) -> Arg:
    """A positional arg from literal text and run-time parts, e.g. `arg("acpi", Hex(index, 2))`."""
    return Arg(tuple(Text(p) if isinstance(p, str) else p for p in pieces))


Item = str | Arg | tuple[str, FieldValue]


def _merge(parts: Sequence[Part]) -> tuple[Part, ...]:
    """Adjacent literal texts as one (one OutputString call, one data item)."""
    merged: list[Part] = []
    for part in parts:
        if merged and isinstance(part, Text) and isinstance(merged[-1], Text):
            merged[-1] = Text(merged[-1].text + part.text)
        else:
            merged.append(part)
    return tuple(merged)


def _items(items: Sequence[Item]) -> list[Part]:
    """Each item with the space before it; checks the text-field rules."""
    parts: list[Part] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            if not item or " " in item or "=" in item:
                raise ValueError(f"arg {item!r} must be non-empty without spaces or '='")
            parts.append(Text(" " + item))
            continue
        if isinstance(item, Arg):
            parts += (Text(" "), *item.parts)
            continue
        name, value = item
        is_text = name in protocol.TEXT_FIELDS
        if is_text and i != len(items) - 1:
            raise ValueError(f"text field {name!r} must be the last item of a line")
        if isinstance(value, FirmwareString) and not is_text:
            raise ValueError(f"firmware string field {name!r} must be a text field ({sorted(protocol.TEXT_FIELDS)})")
        parts.append(Text(f" {name}="))
        if isinstance(value, tuple):
            parts += value
        else:
            parts.append(Text(value) if isinstance(value, str) else value)
    return parts


def line_start(key: str, *items: Item) -> Print:
    """`PREFIX <nonce> KEY items...` without the line end: later steps add items and `LINE_END`."""
    return Print(_merge([Text(protocol.PREFIX + " "), NonceText(), Text(" " + key), *_items(items)]))


def line(key: str, *items: Item) -> Print:
    """A whole line `PREFIX <nonce> KEY items...` CR LF as one Print step."""
    start = line_start(key, *items)
    return Print(_merge([*start.parts, Text(protocol.LINE_END)]))


def line_items(*items: Item) -> Print:
    """More items of the line being printed."""
    return Print(_merge(_items(items)))


def line_value(*pieces: str | Part) -> Print:
    """More of the value of the field printed last (e.g. the next chunk of a device path in hex)."""
    return Print(_merge([Text(p) if isinstance(p, str) else p for p in pieces]))


LINE_END = Print((Text(protocol.LINE_END),))
"""Closes a line opened with `line_start`."""
