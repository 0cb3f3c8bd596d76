"""What every fact line shares: EFI_STATUS values and reading typed fields out of a probe line.

EFI_STATUS names are those of UEFI Specification 2.10 Appendix D; a status is printed as a UINTN (8 hex
digits on 32-bit firmware, 16 on 64-bit), errors with the top bit set.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmconform.probe.protocol import ProbeLine

__all__ = ["STATUS_NAMES", "FactError", "EfiStatus", "hex_field", "bytes_field", "status_field"]

STATUS_NAMES = {
    0: "EFI_SUCCESS", 1: "EFI_LOAD_ERROR", 2: "EFI_INVALID_PARAMETER", 3: "EFI_UNSUPPORTED",
    4: "EFI_BAD_BUFFER_SIZE", 5: "EFI_BUFFER_TOO_SMALL", 6: "EFI_NOT_READY", 7: "EFI_DEVICE_ERROR",
    8: "EFI_WRITE_PROTECTED", 9: "EFI_OUT_OF_RESOURCES", 10: "EFI_VOLUME_CORRUPTED", 11: "EFI_VOLUME_FULL",
    12: "EFI_NO_MEDIA", 13: "EFI_MEDIA_CHANGED", 14: "EFI_NOT_FOUND", 15: "EFI_ACCESS_DENIED",
    16: "EFI_NO_RESPONSE", 17: "EFI_NO_MAPPING", 18: "EFI_TIMEOUT", 19: "EFI_NOT_STARTED",
    20: "EFI_ALREADY_STARTED", 21: "EFI_ABORTED", 26: "EFI_SECURITY_VIOLATION", 27: "EFI_CRC_ERROR",
}  # fmt: skip


class FactError(ValueError):
    """A probe line does not have the shape its key promises (names the line)."""


def hex_field(line: ProbeLine, name: str) -> int:
    """The hex number in field `name`."""
    try:
        return int(line.fields[name], 16)
    except (KeyError, ValueError):
        raise FactError(f"{line.key} line without a hex {name}= field: {line.raw!r}") from None


def bytes_field(line: ProbeLine, name: str) -> bytes:
    """The bytes printed as hex in field `name`."""
    try:
        return bytes.fromhex(line.fields[name])
    except (KeyError, ValueError):
        raise FactError(f"{line.key} line without a hex-bytes {name}= field: {line.raw!r}") from None


@dataclass(frozen=True)
class EfiStatus:
    """An EFI_STATUS as printed: `digits` hex digits, 8 on 32-bit firmware, 16 on 64-bit."""

    value: int
    digits: int = 16

    @classmethod
    def parse(cls, text: str) -> EfiStatus:
        return cls(int(text, 16), len(text))

    @property
    def is_error(self) -> bool:
        return bool(self.value >> (4 * self.digits - 1))

    @property
    def code(self) -> int:
        return self.value & ~(1 << (4 * self.digits - 1))

    @property
    def ok(self) -> bool:
        return self.value == 0

    @property
    def name(self) -> str:
        if self.is_error:
            return STATUS_NAMES.get(self.code, f"EFI error {self.code:#x}")
        return "EFI_SUCCESS" if self.value == 0 else f"EFI warning {self.value:#x}"

    def __str__(self) -> str:
        return self.name


def status_field(line: ProbeLine, name: str) -> EfiStatus:
    """The EFI_STATUS in field `name`."""
    if name not in line.fields:
        raise FactError(f"{line.key} line without a status {name}= field: {line.raw!r}")
    try:
        return EfiStatus.parse(line.fields[name])
    except ValueError:
        raise FactError(f"{line.key} line: {name}={line.fields[name]!r} is not hex") from None
