"""Outcomes: what the UEFI specification requires of a case's boot, what a boot showed, and whether that conforms.

- ``boots``: the probe on this disk runs (and the disk is not written).
- ``recovers``: the probe on this disk runs; the firmware may (UEFI: should) rewrite the damaged GPT
  copy, so such cases boot a throw-away copy and the host reports what changed (`gpt_changes`).
- ``falls-through``: the firmware must not run this disk's boot file; it moves on to the next boot
  option, the *fallback disk* (the reference image with its own nonce), whose probe must run.
- ``either``: the UEFI specification allows booting this disk or falling through; the VM must do
  one of them (reach a probe), never hang or crash. Run with the fallback disk.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmconform.cases import Case
    from vmconform.image import SparseImage

BOOTS = "boots"
RECOVERS = "recovers"
FALLS_THROUGH = "falls-through"
EITHER = "either"
OUTCOMES = (BOOTS, RECOVERS, FALLS_THROUGH, EITHER)


def gpt_changes(image: SparseImage, path: Path, sector_size: int = 512) -> tuple[str, ...]:
    """Which GPT structures differ between the image as built and the disk file after a boot.

    Names: "protective MBR", "primary header", "primary entries", "backup header", "backup entries".
    The entry arrays are located through the built image's headers (intact ones; a corrupted header
    still names its array).
    """
    ss = sector_size
    last = image.size // ss - 1
    regions = [("protective MBR", 0, ss), ("primary header", ss, ss), ("backup header", last * ss, ss)]
    for name, lba in (("primary entries", 1), ("backup entries", last)):
        header = image.read(lba * ss, ss)
        if header[:8] == b"EFI PART":
            array_lba, count, size = struct.unpack_from("<QII", header, 72)
            regions.append((name, array_lba * ss, min(count * size, 1 << 20)))
    changed = []
    with path.open("rb") as f:
        for name, offset, length in regions:
            if offset < 0 or offset + length > image.size:
                continue
            f.seek(offset)
            if f.read(length).ljust(length, b"\0") != image.read(offset, length):
                changed.append(name)
    return tuple(changed)


def observed_outcome(
    case_nonce: str, fallback_nonce: str | None, nonces_seen: tuple[str, ...], gpt_changed: tuple[str, ...]
) -> str:
    """What a boot showed, in the catalogue's outcome words, from the probe nonces that printed (in order)
    and `gpt_changes` of the case's disk: boots | recovers | falls-through | no-probe | wrong-probe."""
    if not nonces_seen:
        return "no-probe"
    first = nonces_seen[0]
    if first == case_nonce:
        return RECOVERS if gpt_changed else BOOTS
    if fallback_nonce is not None and first == fallback_nonce:
        return FALLS_THROUGH
    return "wrong-probe"


def conforms(case: Case, observed: str) -> bool:
    """Whether an observed outcome is one the UEFI specification allows for this case."""
    allowed = {
        BOOTS: {BOOTS},
        RECOVERS: {BOOTS, RECOVERS},
        FALLS_THROUGH: {FALLS_THROUGH},
        EITHER: {BOOTS, RECOVERS, FALLS_THROUGH},
    }[case.expect]
    return observed in allowed
