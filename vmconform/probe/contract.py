"""What the probe and the host agree on, without the probe's code: its modes and facts, the variables the NVRAM
flows use, the BootNext option and where its second probe lives.

Light on purpose: the host side (NVRAM flows, the CLI's options) reads these without importing the
assembler or the program (`vmconform.probe.program`), which import them from here.
"""

from __future__ import annotations

from uuid import UUID

__all__ = [
    "BOOTNEXT_OPTION", "DEFAULT_FACTS", "FACTS", "MODES", "NEXT_DESCRIPTION", "NEXT_PATH", "NV_VARIABLE_PREFIX",
    "VENDOR_GUID", "VOLATILE_VARIABLE_PREFIX",
]  # fmt: skip

MODES = ("boot", "warm", "cold", "power", "bootnext", "next")
"""boot: report and shut down. warm/cold/power: the NVRAM persistence flows (phase 1 sets the variables, then
ResetSystem(EfiResetWarm/EfiResetCold/EfiResetShutdown); phase 2 checks and cleans up). bootnext: phase 1 writes
a Boot#### option for NEXT_PATH and BootNext, then resets cold. next: the probe at NEXT_PATH (reports BootCurrent,
deletes the option)."""

FACTS = ("tables", "time", "cpu", "dump", "secureboot")
"""Optional fact groups: TABLES, TIME (+ the 1 s stall), CPU, DUMP of the DTB, ACPI and SMBIOS3 tables, and
SECUREBOOT (also in every boot-mode probe: DEFAULT_FACTS)."""

DEFAULT_FACTS = {"boot": ("secureboot",)}
"""Facts a mode reports even when not asked: the boot-mode probe (the one every case boots) says whether the
firmware enforces Secure Boot, for 8 GetVariable calls and one line."""

VENDOR_GUID = UUID("0B0E5D1C-7A2E-4C5F-9B1D-766D636F6E66")  # vmconform's own variable vendor GUID
NV_VARIABLE_PREFIX = "VmcNv-"
VOLATILE_VARIABLE_PREFIX = "VmcVol-"
BOOTNEXT_OPTION = 0x5643
NEXT_PATH = "\\EFI\\VMCONFORM\\NEXT.EFI"
NEXT_DESCRIPTION = "vmconform NEXT"
