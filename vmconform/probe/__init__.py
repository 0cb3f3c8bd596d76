"""The guest-side probe: a tiny EFI application generated in Python, and the host side of its protocol.

    build_probe(arch, nonce, *, mode="boot", facts=()) -> bytes   PE/COFF image for removable_media_path(arch)
    PROBE_ARCHES                             architectures with a probe (aarch64: A64/PE32+, arm: A32/PE32)
    MODES, FACTS                             what build_probe's mode= and facts= accept
    parse_line(text) -> ProbeLine | None     parse one console line printed by the probe

The lines' meaning (typed facts, DTB/ACPI/SMBIOS decoding) is in `vmconform.facts`; the NVRAM flows that
span resets and power cycles are run by `vmconform.nvram`. The assembler and the program load only when a probe
is built (``vmconform --help`` and the pytest layer never pay for them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .arches import PROBE_ARCHES, removable_media_path
from .contract import FACTS, MODES
from .protocol import ProbeLine, parse_line, parse_lines, validate_nonce

if TYPE_CHECKING:
    from .build import assemble_probe, build_probe


def __getattr__(name: str) -> Any:
    """The assembler and the program load on first use of build_probe / assemble_probe (not on import)."""
    if name in ("build_probe", "assemble_probe"):
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FACTS", "MODES", "PROBE_ARCHES", "ProbeLine", "assemble_probe", "build_probe", "parse_line", "parse_lines",
    "removable_media_path", "validate_nonce",
]  # fmt: skip
