"""The probe's serial line protocol: one fact a line, printed by the probe through ConOut.

Grammar (one console line; the probe ends each with CR LF)::

    line   = [noise] "VMCONFORM" SP nonce SP key *(SP item) [CR]
    nonce  = 1*32( ALPHA / DIGIT / "_" / "-" )      ; ASCII only, chosen per test case
    key    = UPPER *( UPPER / DIGIT / "_" )          ; BOOT, FW, END, ...
    item   = field / arg
    field  = name "=" value                          ; value has no spaces ...
    value  = *( any char except SP )
           / *( any char )                           ; ... except for a text field, which runs to the end
                                                     ;     of the line and must come last
    arg    = 1*( any char except SP and "=" )
    name   = ( ALPHA / "_" ) *( ALPHA / DIGIT / "_" )

* `noise`: anything before "VMCONFORM" on the same line (firmware output need not end with a newline,
  e.g. a "BdsDxe: starting ..." message or a cleared screen). The host strips ANSI sequences first.
* Runs of spaces separate items; items without "=" are positional args (kept in order).
* Text fields (`TEXT_FIELDS`, e.g. `vendor`) hold firmware strings that may contain spaces; they are
  printed last and their value is everything after "=" up to the end of the line, verbatim.
* Hex numbers are upper-case and zero-padded to their field width (16 digits for UINT64, 8 for UINT32).
  An EFI_STATUS (<st>) is a UINTN: 16 digits on 64-bit firmware, 8 on 32-bit (errors have the top bit set).
  Memory (<bytes>: GUIDs, device paths, EFI_TIME, DUMP data) is two hex digits a byte, in memory order.

Lines the probe prints (`vmconform.probe.program`; the host side is `vmconform.facts`), in order::

    BOOT <arch> image=<st> device=<st> [devpath=<bytes>] [filepath=<bytes> [path=<text>]]
        HandleProtocol(ImageHandle, LoadedImage) and (DeviceHandle, DevicePath) statuses, the device path
        of the device the image came from (with its HD() node), LoadedImage->FilePath, and that path as text
    FW st_sig=<hex16> uefi_rev=<hex8> fw_rev=<hex8> rt_sig=<hex16> vendor=<text>
    SECUREBOOT SecureBoot=<st> SecureBoot_attr=<hex8> SecureBoot_size=<hex8> [SecureBoot_data=<bytes>]
        SetupMode=... AuditMode=... DeployedMode=... (the same four fields each; _data only when read)
        PK=<st> PK_attr=<hex8> PK_size=<hex8> KEK=... db=... dbx=...   (facts "secureboot"; always in mode boot)
        GetVariable of each mode variable into an 8-byte buffer (_size is 0 unless the variable exists), and of
        each key database with DataSize 0: EFI_BUFFER_TOO_SMALL and its size when set, EFI_NOT_FOUND when not
    TABLES count=<hex8> <guid bytes>...                          (facts "tables")
    TIME get0=<st> t0=<EFI_TIME> stall=<st> get1=<st> t1=<EFI_TIME> set=<st>      (facts "time")
    CPU el= cntfrq= midr= pfr0= cntvct0= cntvct1=   (aarch64; arm: cpsr= cntfrq= midr= pfr1= ...; <hex16> each)
    DUMP <blob> addr=<ptr> size=<hex8> shown=<hex8>              (facts "dump": blob dtb, rsdp, xsdt, acpiNN,
    DUMP <blob> off=<hex8> data=<bytes>                           smbios3, smbios3_table; 64 bytes a line)
    NVRAM phase1 mode=<m> get=<st> / set nv= vol= / readback nv= nv_attr= nv_size= nv_data= vol= ... / RESET <m>
    NVRAM phase2 mode=<m> get=<st> get_attr= get_size= get_data= / volatile get= / delete status= / done
    BOOTNEXT phase1 get= / set option= option_status= next_status= / RESET cold   (mode bootnext)
    BOOTNEXT next current_status= current=<hex4> / delete status=                  (mode next)
    END shutdown | END reset-returned
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "PREFIX",
    "LINE_END",
    "TEXT_FIELDS",
    "NONCE_MAX",
    "ProbeLine",
    "parse_line",
    "parse_lines",
    "validate_nonce",
    "format_line",
]

PREFIX = "VMCONFORM"
LINE_END = "\r\n"
NONCE_MAX = 32
TEXT_FIELDS = frozenset({"vendor", "path"})

_NONCE_RE = rf"[0-9A-Za-z_-]{{1,{NONCE_MAX}}}"
_KEY_RE = r"[A-Z][A-Z0-9_]*"
_NONCE = re.compile(_NONCE_RE)
_KEY = re.compile(_KEY_RE)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE = re.compile(rf"{PREFIX} (?P<nonce>{_NONCE_RE}) (?P<key>{_KEY_RE})(?: (?P<rest>.*))?\Z", re.DOTALL)


@dataclass(frozen=True)
class ProbeLine:
    """One parsed VMCONFORM line. `fields` is read-only; a repeated field name keeps its last value."""

    nonce: str
    key: str
    args: tuple[str, ...]
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    raw: str = ""


def validate_nonce(nonce: str) -> str:
    """Return `nonce` if it is 1..32 ASCII characters from [0-9A-Za-z_-], else raise ValueError."""
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise ValueError(
            f"nonce must be 1..{NONCE_MAX} ASCII characters from [0-9A-Za-z_-] (letters, digits, "
            f"underscore, hyphen), got {nonce!r}"
        )
    return nonce


def parse_line(text: str) -> ProbeLine | None:
    """Parse one console line (ANSI already stripped); None when it holds no VMCONFORM line."""
    line = text.rstrip("\r\n")
    match = _LINE.search(line)
    if match is None:
        return None
    args: list[str] = []
    fields: dict[str, str] = {}
    rest = match["rest"] or ""
    pos = 0
    while pos < len(rest):
        if rest[pos] == " ":
            pos += 1
            continue
        end = rest.find(" ", pos)
        end = len(rest) if end < 0 else end
        token = rest[pos:end]
        name, eq, value = token.partition("=")
        if eq and _NAME.fullmatch(name):
            if name in TEXT_FIELDS:
                fields[name] = rest[pos + len(name) + 1 :]
                break
            fields[name] = value
        else:
            args.append(token)
        pos = end
    return ProbeLine(match["nonce"], match["key"], tuple(args), MappingProxyType(fields), match.group(0))


def parse_lines(transcript: str) -> tuple[ProbeLine, ...]:
    """All VMCONFORM lines of a console transcript, in order."""
    lines = (parse_line(line) for line in transcript.split("\n"))
    return tuple(line for line in lines if line is not None)


def format_line(
    nonce: str, key: str, args: Iterable[str] = (), fields: Iterable[tuple[str, str]] | Mapping[str, str] = ()
) -> str:
    """The text (with CR LF) the probe prints for a fact; the host uses it for fakes and expectations."""
    validate_nonce(nonce)
    if not _KEY.fullmatch(key):
        raise ValueError(f"key {key!r} must match {_KEY.pattern}")
    pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    items = list(args)
    for arg in items:
        if not arg or " " in arg or "=" in arg:
            raise ValueError(f"arg {arg!r} must be non-empty without spaces or '='")
    for i, (name, value) in enumerate(pairs):
        if not _NAME.fullmatch(name):
            raise ValueError(f"field name {name!r} must match {_NAME.pattern}")
        if name in TEXT_FIELDS and i != len(pairs) - 1:
            raise ValueError(f"text field {name!r} must be the last field")
        if name not in TEXT_FIELDS and " " in value:
            raise ValueError(f"field {name!r}: only text fields may contain spaces")
        items.append(f"{name}={value}")
    return " ".join([PREFIX, nonce, key, *items]) + LINE_END
