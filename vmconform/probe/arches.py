"""Architectures the probe knows: PE machine and format, pointer size, removable-media boot file, lowering.

The boot file names are those of UEFI §3.5.1.1 (removable media boot behaviour): the firmware loads
`\\EFI\\BOOT\\BOOT<arch>.EFI` from the ESP when no boot option applies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .pe import MACHINE_ARM64, MACHINE_ARMTHUMB_MIXED, PeFormat

if TYPE_CHECKING:
    from .asm import Assembler
    from .program import DataArea, Program

__all__ = ["Lowering", "ProbeArch", "ARCHES", "PROBE_ARCHES", "probe_arch", "removable_media_path"]

Lowering = Callable[["Program", "DataArea", "Assembler"], None]
"""Appends the machine code for a program to the assembler, entry point at `program.ENTRY_LABEL`."""


@dataclass(frozen=True)
class ProbeArch:
    name: str
    machine: int
    pe_format: PeFormat
    boot_file: str
    lowering_module: str | None  # the module whose lower() writes the probe (imported on use); None: no probe yet
    pointer_size: int = 8  # UINTN / pointer width of the firmware (selects UEFI structure offsets)

    @property
    def lowering(self) -> Lowering | None:
        """The lowering of the probe program to this architecture's machine code (imports the encoder)."""
        if self.lowering_module is None:
            return None
        lower: Lowering = importlib.import_module(self.lowering_module).lower
        return lower

    @property
    def removable_media_path(self) -> str:
        return f"EFI/BOOT/{self.boot_file}"


ARCHES: dict[str, ProbeArch] = {
    arch.name: arch
    for arch in (
        # pointer sizes as lower_a64.POINTER_SIZE / lower_a32.POINTER_SIZE (tests/probe checks they agree)
        ProbeArch("aarch64", MACHINE_ARM64, PeFormat.PE32_PLUS, "BOOTAA64.EFI", "vmconform.probe.lower_a64", 8),
        # A32 code in a PE32 image; the entry point is entered in ARM state when even.
        ProbeArch("arm", MACHINE_ARMTHUMB_MIXED, PeFormat.PE32, "BOOTARM.EFI", "vmconform.probe.lower_a32", 4),
    )
}

PROBE_ARCHES: tuple[str, ...] = tuple(name for name, arch in ARCHES.items() if arch.lowering_module is not None)


def probe_arch(arch: str) -> ProbeArch:
    """The architecture named `arch`, or ValueError naming the known ones."""
    try:
        return ARCHES[arch]
    except (KeyError, TypeError):
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHES)}") from None


def removable_media_path(arch: str) -> str:
    """The ESP path the firmware boots from removable media, e.g. "EFI/BOOT/BOOTAA64.EFI"."""
    return probe_arch(arch).removable_media_path
