"""The guest-side probe: a tiny EFI application generated in Python, and the host side of its protocol.

    build_probe(arch, nonce) -> bytes        PE/COFF image to place at removable_media_path(arch)
    PROBE_ARCHES                             architectures with a probe
    parse_line(text) -> ProbeLine | None     parse one console line printed by the probe
"""

from .arches import PROBE_ARCHES, removable_media_path
from .build import assemble_probe, build_probe
from .protocol import ProbeLine, parse_line, parse_lines, validate_nonce

__all__ = [
    "PROBE_ARCHES", "ProbeLine", "assemble_probe", "build_probe", "parse_line", "parse_lines",
    "removable_media_path", "validate_nonce",
]
