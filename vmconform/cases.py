"""The case catalogue: which reference images exist and what a conforming VM must do with each.

A case is data: architecture, layout, defect, the expected outcome and the spec
clauses it evidences (IDs as in ``shared/spec/clauses.md``). The suite, the CLI
(``vmconform gen``) and the docs all read this one catalogue.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from vmconform.image import DiskSpec, EspFile, SparseImage, build_disk
from vmconform.probe import PROBE_ARCHES, build_probe, removable_media_path

ARCH_NAMES = ("aarch64", "arm")


@dataclass(frozen=True)
class Case:
    arch: str
    layout: str = "reference"
    defect: str = "none"
    expect: str = "boots"  # "boots" | later: "falls-through", "recovers"
    clauses: tuple[str, ...] = ()
    summary: str = ""

    @property
    def name(self) -> str:
        """``<arch>-<layout>[-<defect>]``: the part of a test ID after the hypervisor."""
        base = f"{self.arch}-{self.layout}"
        return base if self.defect == "none" else f"{base}-{self.defect}"


REMOVABLE_BOOT_CLAUSES = ("IMG-1", "IMG-2", "IMG-3", "IMG-4", "IMG-5", "IMG-6", "FW-1", "FW-7")


def catalogue() -> tuple[Case, ...]:
    """Every case, in a stable order."""
    return tuple(
        Case(
            arch=arch,
            layout="reference",
            clauses=REMOVABLE_BOOT_CLAUSES,
            summary="GPT + protective MBR, one FAT32 ESP at 1 MiB, probe at the removable-media path",
        )
        for arch in ARCH_NAMES
    )


def find(arch: str, layout: str = "reference", defect: str = "none") -> Case:
    for case in catalogue():
        if (case.arch, case.layout, case.defect) == (arch, layout, defect):
            return case
    known = ", ".join(c.name for c in catalogue())
    raise KeyError(f"no case {arch}-{layout}" + ("" if defect == "none" else f"-{defect}") + f"; known: {known}")


def has_probe(arch: str) -> bool:
    return arch in PROBE_ARCHES


def new_nonce() -> str:
    """A fresh per-boot nonce: a probe line carrying any other value comes from a stale image."""
    return secrets.token_hex(6)


def default_nonce(case: Case) -> str:
    """The nonce ``vmconform gen`` uses when none is given: derived from the case, so output is stable."""
    return hashlib.sha256(case.name.encode()).hexdigest()[:12]


def build_image(case: Case, nonce: str) -> SparseImage:
    """The case's disk image with a probe carrying ``nonce``; same inputs, same bytes."""
    if not has_probe(case.arch):
        raise ValueError(f"case {case.name}: no probe for {case.arch} yet (have: {', '.join(PROBE_ARCHES)})")
    probe = build_probe(arch=case.arch, nonce=nonce)
    spec = DiskSpec(files=(EspFile(removable_media_path(case.arch), probe),), seed=f"{case.name}:{nonce}")
    return build_disk(spec)


def write_image(case: Case, nonce: str, path: Path) -> Path:
    build_image(case, nonce).save(path)
    return path
