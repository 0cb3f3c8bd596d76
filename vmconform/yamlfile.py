"""Reading a YAML configuration file as a hostile input: bounded, with the line of every key for error messages.

A regular file of at most MAX_FILE_BYTES, opened without blocking; parsed once within budgets (nodes with
aliases expanded, nesting depth); every problem is a ``ConfigError`` with one line naming the file, the line
and the key path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from vmconform.smallfile import SmallFileError, read_small


class ConfigError(Exception):
    """A configuration problem, stated in one line with file, line, key and the fix."""


MAX_FILE_BYTES = 1 << 20  # a hypervisors.yaml larger than this is refused unread
MAX_NODES = 100_000  # YAML nodes after expanding aliases (an alias bomb stops here)
MAX_DEPTH = 64  # nesting of mappings and lists


def read_text(path: Path) -> str:
    """The file's text: a regular file of at most MAX_FILE_BYTES, opened without blocking (a FIFO or a device
    is refused, never read)."""
    try:
        raw = read_small(path, MAX_FILE_BYTES, "a hypervisors.yaml")
    except SmallFileError as e:
        missing = f"{path}: file not found; pass --hypervisors-file PATH or create it"
        raise ConfigError(missing if e.missing else str(e)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def parse(text: str, path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    """The document and its key path -> line map, parsed once, within budgets: at most MAX_NODES nodes with
    aliases expanded (an alias bomb), at most MAX_DEPTH levels of nesting; ConfigError (one line) past them."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply to be a hypervisors.yaml") from None
        if root is None:
            return None, {}
        _within_budget(root, path)
        return loader.construct_document(root), _line_map(root)
    finally:
        loader.dispose()


def _within_budget(root: yaml.Node, path: Path) -> None:
    nodes = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ConfigError(f"{path}: more than {MAX_NODES} YAML nodes once aliases are expanded (an alias bomb?)")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.MappingNode):
            stack.extend((n, depth + 1) for kv in node.value for n in kv)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((n, depth + 1) for n in node.value)


def _line_map(root: yaml.Node) -> dict[tuple[str, ...], int]:
    """Dotted key path -> 1-based line, from the YAML node tree (already within budget)."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                kp = path + (str(k.value),)
                lines[kp] = k.start_mark.line + 1
                walk(v, kp)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (str(i),))

    walk(root, ())
    return lines


class Reader:
    """Typed access to the parsed document: each accessor names the key path and its line when it refuses."""

    def __init__(self, path: Path, lines: dict[tuple[str, ...], int]):
        self.path = path
        self.lines = lines

    def err(self, keypath: tuple[str, ...], msg: str) -> ConfigError:
        line = self.lines.get(keypath)
        while line is None and keypath:
            keypath = keypath[:-1]
            line = self.lines.get(keypath)
        where = f"{self.path}:{line}" if line else str(self.path)
        key = ".".join(keypath) if keypath else "(top level)"
        return ConfigError(f"{where}: {key}: {msg}")

    def line(self, keypath: tuple[str, ...]) -> int:
        return self.lines.get(keypath, 0)

    def mapping(self, value: Any, keypath: tuple[str, ...], allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.err(keypath, f"must be a mapping (key: value lines), not {kind(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.err(keypath, f"key {k!r} must be a string")
            if allowed is not None and k not in allowed:
                hint = ", ".join(sorted(allowed))
                raise self.err(keypath + (k,), f"unknown key; allowed here: {hint}")
        return value

    def string(self, value: Any, keypath: tuple[str, ...]) -> str:
        if not isinstance(value, str) or not value:
            raise self.err(keypath, f"must be a non-empty string, not {kind(value)}")
        return value

    def strings(self, value: Any, keypath: tuple[str, ...]) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.err(keypath, f"must be a list of strings, not {kind(value)}")
        return tuple(value)

    def number(self, value: Any, keypath: tuple[str, ...]) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise self.err(keypath, f"must be a positive number of seconds, not {kind(value)}")
        return float(value)


def kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
