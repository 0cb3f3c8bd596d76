"""Building a probe image: program -> lowering -> assembly (with the nonce in the data area) -> PE file."""

from __future__ import annotations

from collections.abc import Collection

from .arches import PROBE_ARCHES, probe_arch
from .asm import Assembled, Assembler
from .pe import PeImage, write_pe
from .program import ENTRY_LABEL, DataArea, probe_program

__all__ = ["assemble_probe", "build_probe"]


def assemble_probe(arch: str, nonce: str, *, mode: str = "boot", facts: Collection[str] = ()) -> Assembled:
    """The probe's `.text` contents (code, then data area) with labels and listing, for `arch`."""
    spec = probe_arch(arch)
    if spec.lowering is None:
        raise ValueError(f"no probe for {arch!r} yet; probes exist for: {', '.join(PROBE_ARCHES)}")
    program = probe_program(spec.name, spec.pointer_size, mode, tuple(facts))
    data = DataArea(program)
    asm = Assembler()
    spec.lowering(program, data, asm)
    data.emit(asm, nonce)  # validates the nonce
    return asm.assemble()


def build_probe(arch: str, nonce: str, *, mode: str = "boot", facts: Collection[str] = ()) -> bytes:
    """The probe as a PE/COFF EFI application for `arch`, printing `nonce` in every line.

    `mode` (see `program.MODES`): "boot" reports and shuts down; "warm", "cold", "power" run the NVRAM
    persistence flow; "bootnext" writes a Boot#### option for `program.NEXT_PATH` and BootNext; "next" is
    the probe placed at NEXT_PATH. `facts` adds fact groups (`program.FACTS`: "tables", "time", "cpu",
    "dump"). Raises ValueError for an unknown architecture, one without a probe, an unknown mode or fact,
    or a nonce that is not 1..32 characters from [0-9A-Za-z_-]. Same inputs give identical bytes.
    """
    spec = probe_arch(arch)
    assembled = assemble_probe(arch, nonce, mode=mode, facts=facts)
    return write_pe(PeImage(spec.machine, spec.pe_format, assembled.code, assembled.offset_of(ENTRY_LABEL)))
