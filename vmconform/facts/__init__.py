"""The host side of the probe's facts: typed values from its lines, and decoders for what it dumps.

ProbeFacts.from_lines(lines)  BOOT, FW, TABLES, TIME, CPU, SECUREBOOT facts and the DUMP blobs of one probe run
facts.fdt()                   the DTB (vmconform.facts.fdt), facts.acpi() the ACPI tables
facts.smbios3()               the SMBIOS 3 entry point and structures
"""

from .probe import (
    AcpiFacts,
    BootFact,
    CpuFact,
    Dump,
    EfiStatus,
    EfiTime,
    FactError,
    FirmwareFact,
    ProbeFacts,
    TablesFact,
    TimeFact,
)
from .secureboot import SecureBootFact, VariableReading

__all__ = [
    "AcpiFacts", "BootFact", "CpuFact", "Dump", "EfiStatus", "EfiTime", "FactError", "FirmwareFact", "ProbeFacts",
    "SecureBootFact", "TablesFact", "TimeFact", "VariableReading",
]  # fmt: skip
