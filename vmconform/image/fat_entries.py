"""FAT directory entries and names (fatgen103 v1.03 §6 directory entries and timestamps, §7 long file names):
the 32-byte short entry, 8.3 names, long-name entries with their checksum, how a name is stored (short entry
alone, Windows NT case bits, or long entries with a generated short name) and the volume label.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Literal

DIR_ENTRY_SIZE = 32
MAX_LONG_NAME = 255
LFN_CHARS_PER_ENTRY = 13

ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LONG_NAME = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID
LAST_LONG_ENTRY = 0x40

NT_LOWER_CASE_BASE = 0x08
"""DIR_NTRes bit Windows NT sets when an 8.3 name's base is all lower case (no long entries needed)."""
NT_LOWER_CASE_EXT = 0x10

LowerCaseStyle = Literal["lfn", "nt-case-bits"]

_DIR_ENTRY = struct.Struct("<11sBBBHHHHHHHI")
_LFN_ENTRY = struct.Struct("<B10sBBB12sH4s")

# Characters allowed in a short name besides A-Z and 0-9 (fatgen103 §6.1).
_SHORT_NAME_SPECIALS = frozenset("$%'-_@~`!(){}^#&")
# Characters a long name may not hold (fatgen103 §7), besides control characters.
_LONG_NAME_FORBIDDEN = frozenset('"*/:<>?\\|')


@dataclass(frozen=True)
class FatTimestamp:
    """A FAT date/time pair (fatgen103 §6.4): 2-second resolution, years 1980-2107."""

    date: int
    time: int
    tenths: int = 0
    """DIR_CrtTimeTenth: 0-199, in units of 10 ms past the even second in `time`."""

    @classmethod
    def from_datetime(cls, when: dt.datetime) -> FatTimestamp:
        if not 1980 <= when.year <= 2107:
            raise ValueError(f"FAT timestamps cover 1980-2107, got {when.year}")
        date = ((when.year - 1980) << 9) | (when.month << 5) | when.day
        time = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
        tenths = (when.second % 2) * 100 + when.microsecond // 10000
        return cls(date, time, tenths)

    @classmethod
    def from_seed(cls, seed: str) -> FatTimestamp:
        """A deterministic instant in 2000-2037 derived from `seed`."""
        digest = hashlib.sha256(f"{seed}\x00fat-timestamp".encode()).digest()
        start = dt.datetime(2000, 1, 1)
        span = int((dt.datetime(2038, 1, 1) - start).total_seconds())
        offset = int.from_bytes(digest[:8], "little") % span
        return cls.from_datetime(start + dt.timedelta(seconds=offset))


@dataclass(frozen=True)
class DirectoryEntry:
    """A 32-byte short directory entry (fatgen103 §6, DIR_Name .. DIR_FileSize)."""

    name: bytes
    attr: int
    first_cluster: int = 0
    file_size: int = 0
    created: FatTimestamp = field(default_factory=lambda: FatTimestamp(0x21, 0))
    written: FatTimestamp | None = None
    """None: same as `created`."""
    nt_res: int = 0

    def to_bytes(self) -> bytes:
        if len(self.name) != 11:
            raise ValueError(f"DIR_Name is 11 bytes, got {self.name!r}")
        written = self.created if self.written is None else self.written
        return _DIR_ENTRY.pack(
            self.name,
            self.attr,
            self.nt_res,
            self.created.tenths,
            self.created.time,
            self.created.date,
            written.date,  # DIR_LstAccDate
            self.first_cluster >> 16,
            written.time,
            written.date,
            self.first_cluster & 0xFFFF,
            self.file_size,
        )


def _short_name_problem(component: str) -> str | None:
    base, dot, ext = component.partition(".")
    if component in ("", ".", ".."):
        return "is empty or a dot entry"
    if not 1 <= len(base) <= 8 or len(ext) > 3 or (dot and not ext) or "." in ext:
        return "is not an 8.3 name (1-8 characters, optionally '.' and 1-3 characters)"
    bad = sorted({c for c in base + ext if not (c.isascii() and (c.isupper() or c.isdigit()))} - _SHORT_NAME_SPECIALS)
    if bad:
        return f"has characters a short name cannot hold: {''.join(bad)!r}"
    return None


def short_name(component: str) -> bytes:
    """The 11-byte DIR_Name for an upper-case 8.3 path component, e.g. "BOOTAA64.EFI" -> b"BOOTAA64EFI".

    Raises ValueError for anything that needs a long-file-name entry (lower case, long, odd chars).
    """
    problem = _short_name_problem(component)
    if problem:
        raise ValueError(
            f"path component {component!r} {problem}; use upper-case 8.3 names of A-Z, 0-9 and "
            f"{''.join(sorted(_SHORT_NAME_SPECIALS))}"
        )
    base, _dot, ext = component.partition(".")
    return (base.ljust(8) + ext.ljust(3)).encode("ascii")


def is_short_name(component: str) -> bool:
    """True when `component` is stored as a short entry alone (an upper-case 8.3 name)."""
    return _short_name_problem(component) is None


def validate_long_name(component: str) -> None:
    """ValueError (saying what to change) unless `component` can be stored as a FAT long file name."""
    problem = None
    if component in ("", ".", ".."):
        problem = "is empty or a dot entry"
    elif len(component) > MAX_LONG_NAME:
        problem = f"is {len(component)} characters; FAT long names hold at most {MAX_LONG_NAME}"
    elif component != component.rstrip(" ."):
        problem = "ends with a space or '.', which FAT long names cannot"
    else:
        bad = sorted({c for c in component if c in _LONG_NAME_FORBIDDEN or ord(c) < 0x20 or ord(c) > 0xFFFF})
        if bad:
            problem = f"has characters a FAT name cannot hold: {''.join(bad)!r}"
    if problem:
        raise ValueError(
            f"path component {component!r} {problem}; use a name of at most 255 characters without "
            '"*/:<>?\\| or control characters'
        )


def lfn_checksum(short: bytes) -> int:
    """fatgen103 §7: the checksum of the 11-byte short name that each long entry carries."""
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def long_name_entries(name: str, short: bytes) -> list[bytes]:
    """The long-name directory entries for `name`, in on-disk order (last part first, before the short entry)."""
    units = name.encode("utf-16-le")
    chars = [units[i : i + 2] for i in range(0, len(units), 2)]
    count = -(-len(chars) // LFN_CHARS_PER_ENTRY)
    padded = chars + ([b"\x00\x00"] if len(chars) % LFN_CHARS_PER_ENTRY else [])
    padded += [b"\xff\xff"] * (count * LFN_CHARS_PER_ENTRY - len(padded))
    checksum = lfn_checksum(short)
    entries = []
    for ordinal in range(count, 0, -1):
        part = padded[(ordinal - 1) * LFN_CHARS_PER_ENTRY : ordinal * LFN_CHARS_PER_ENTRY]
        entries.append(
            _LFN_ENTRY.pack(
                ordinal | (LAST_LONG_ENTRY if ordinal == count else 0),
                b"".join(part[0:5]),
                ATTR_LONG_NAME,
                0,
                checksum,
                b"".join(part[5:11]),
                0,
                b"".join(part[11:13]),
            )
        )
    return entries


def _basis_name(name: str) -> tuple[str, str, bool]:
    """fatgen103 §7 "basis-name generation": (primary <= 8 chars, extension <= 3 chars, lossy)."""
    lossy = False
    converted = []
    for char in name.upper():
        if char == " " or char == ".":
            converted.append(char)
        elif char.isascii() and (char.isupper() or char.isdigit() or char in _SHORT_NAME_SPECIALS):
            converted.append(char)
        else:
            converted.append("_")
            lossy = True
    text = "".join(converted).replace(" ", "").lstrip(".")
    last_dot = text.rfind(".")
    primary_src = text if last_dot < 0 else text[:last_dot]
    primary = primary_src.split(".")[0][:8] if primary_src else ""
    ext = text[last_dot + 1 :][:3] if last_dot >= 0 else ""
    if not primary:
        primary, lossy = "_", True
    return primary, ext, lossy


@dataclass(frozen=True)
class NameRecords:
    """How one directory entry is named on disk: the 8.3 short name, NT case bits, and a long name or None."""

    short: bytes
    nt_res: int = 0
    long_name: str | None = None


def name_records(name: str, taken: set[bytes], style: LowerCaseStyle = "lfn") -> NameRecords:
    """Choose the on-disk names for `name` in a directory whose short names are `taken` (updated).

    Upper-case 8.3 names are stored as a short entry alone. With `style="nt-case-bits"`, an 8.3 name
    whose base and extension are each entirely lower case is stored as its upper-case short entry with
    the Windows NT case bits (no long entries). Anything else gets long-name entries and a generated short
    name (fatgen103 §7: basis name, plus a numeric tail "~n" when lossy, too long, or taken).
    """
    if is_short_name(name):
        short = short_name(name)
        if short in taken:
            raise ValueError(f"two entries named {name!r} in one directory; give each file a distinct path")
        taken.add(short)
        return NameRecords(short)
    validate_long_name(name)
    upper = name.upper()
    fits = is_short_name(upper)
    if style == "nt-case-bits" and fits:
        base, _dot, ext = name.partition(".")
        base_lower, ext_lower = base != base.upper(), ext != ext.upper()
        if (not base_lower or base == base.lower()) and (not ext_lower or ext == ext.lower()):
            short = short_name(upper)
            if short not in taken:
                taken.add(short)
                return NameRecords(
                    short, (NT_LOWER_CASE_BASE if base_lower else 0) | (NT_LOWER_CASE_EXT if ext_lower else 0)
                )
    primary, ext, lossy = _basis_name(name)
    basis = (primary.ljust(8) + ext.ljust(3)).encode("ascii")
    if fits and not lossy and basis not in taken:
        taken.add(basis)
        return NameRecords(basis, 0, name)
    for n in range(1, 1_000_000):
        tail = f"~{n}"
        short = ((primary[: 8 - len(tail)] + tail).ljust(8) + ext.ljust(3)).encode("ascii")
        if short not in taken:
            taken.add(short)
            return NameRecords(short, 0, name)
    raise ValueError(f"no free short name for {name!r}; put fewer similar names in one directory")


def volume_label_bytes(label: str) -> bytes:
    """The 11-byte space-padded label used in BS_VolLab and the root's ATTR_VOLUME_ID entry."""
    if not 1 <= len(label) <= 11 or label != label.rstrip() or label.startswith(" "):
        raise ValueError(f"volume label {label!r} must be 1-11 characters without leading or trailing spaces")
    bad = {c for c in label if not (c.isascii() and (c.isupper() or c.isdigit() or c == " "))} - _SHORT_NAME_SPECIALS
    if bad:
        raise ValueError(f"volume label {label!r} has characters {''.join(sorted(bad))!r}; use upper case A-Z, 0-9")
    return label.ljust(11).encode("ascii")
