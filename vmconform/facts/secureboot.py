"""The SECUREBOOT fact: the firmware's Secure Boot state as the probe read it (UEFI §32.3, §3.3).

The probe prints, for each mode variable (`SecureBoot`, `SetupMode`, `AuditMode`, `DeployedMode`: one byte
each), `<Name>=<status> <Name>_attr= <Name>_size=` and `<Name>_data=` when it was read; for each key
database (`PK`, `KEK`, `db`, `dbx`) `<Name>=<status> <Name>_attr= <Name>_size=` from a GetVariable with
DataSize 0, where EFI_BUFFER_TOO_SMALL means "set, this big" and EFI_NOT_FOUND "not set". See
`vmconform.probe.program.secureboot`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmconform.probe.protocol import ProbeLine

from .status import EfiStatus, FactError, bytes_field, hex_field, status_field

__all__ = ["VariableReading", "SecureBootFact", "MODE_VARIABLES", "KEY_VARIABLES"]

MODE_VARIABLES = ("SecureBoot", "SetupMode", "AuditMode", "DeployedMode")
KEY_VARIABLES = ("PK", "KEK", "db", "dbx")
_BUFFER_TOO_SMALL = 5
_NOT_FOUND = 14


@dataclass(frozen=True)
class VariableReading:
    """One GetVariable as the probe reported it: status, attributes, size and (mode variables) the bytes."""

    name: str
    status: EfiStatus
    attributes: int
    size: int
    data: bytes | None  # None: not read (a key database, or the call failed)

    @classmethod
    def from_line(cls, line: ProbeLine, name: str) -> VariableReading:
        data = bytes_field(line, f"{name}_data") if f"{name}_data" in line.fields else None
        return cls(name, status_field(line, name), hex_field(line, f"{name}_attr"), hex_field(line, f"{name}_size"),
                   data)  # fmt: skip

    @property
    def present(self) -> bool:
        """The variable exists: it was read, or it is bigger than the buffer the probe gave."""
        return self.status.ok or (self.status.is_error and self.status.code == _BUFFER_TOO_SMALL)

    @property
    def absent(self) -> bool:
        """The firmware said EFI_NOT_FOUND."""
        return self.status.is_error and self.status.code == _NOT_FOUND

    @property
    def value(self) -> int | None:
        """A mode variable's value (its one byte), or None when it was not read or is not one byte."""
        return self.data[0] if self.data is not None and len(self.data) == 1 else None

    def describe(self) -> str:
        """`SecureBoot=1`, `PK set (1234 bytes)`, `AuditMode absent`, or `KEK: EFI_DEVICE_ERROR`."""
        if self.value is not None:
            return f"{self.name}={self.value}"
        if self.present and self.data is None and self.status.code == _BUFFER_TOO_SMALL:
            return f"{self.name} set ({self.size} bytes)"
        if self.present:
            return f"{self.name} read ({(self.data or b'').hex() or 'empty'})"
        return f"{self.name} absent" if self.absent else f"{self.name}: {self.status.name}"


@dataclass(frozen=True)
class SecureBootFact:
    """The four mode variables and the four key databases (`VariableReading` each)."""

    secure_boot: VariableReading
    setup_mode: VariableReading
    audit_mode: VariableReading
    deployed_mode: VariableReading
    pk: VariableReading
    kek: VariableReading
    db: VariableReading
    dbx: VariableReading

    @classmethod
    def from_line(cls, line: ProbeLine) -> SecureBootFact:
        names = (*MODE_VARIABLES, *KEY_VARIABLES)
        missing = [name for name in names if name not in line.fields]
        if missing:
            raise FactError(f"SECUREBOOT line without {', '.join(missing)}: {line.raw!r}")
        return cls(*(VariableReading.from_line(line, name) for name in names))

    @property
    def readings(self) -> tuple[VariableReading, ...]:
        return (self.secure_boot, self.setup_mode, self.audit_mode, self.deployed_mode, self.pk, self.kek, self.db,
                self.dbx)  # fmt: skip

    @property
    def enforcing(self) -> bool:
        """The firmware verifies images: SecureBoot = 1 (which UEFI allows only in user or deployed mode)."""
        return self.secure_boot.value == 1

    @property
    def setup(self) -> bool:
        """Setup mode (no PK): any image runs and the keys can be enrolled without authentication."""
        return self.setup_mode.value == 1

    @property
    def mode(self) -> str:
        """The Secure Boot mode of UEFI §32.3: setup, audit, user or deployed (unknown when unreadable)."""
        if self.audit_mode.value == 1:
            return "audit"
        if self.deployed_mode.value == 1:
            return "deployed"
        if self.setup_mode.value in (0, 1):
            return "setup" if self.setup_mode.value == 1 else "user"
        return "unknown"

    @property
    def keys(self) -> tuple[str, ...]:
        """The key databases that are set, of PK, KEK, db, dbx."""
        return tuple(r.name for r in (self.pk, self.kek, self.db, self.dbx) if r.present)

    def summary(self) -> str:
        """One line, e.g. `Secure Boot enforcing (user mode; PK, KEK, db, dbx set)`."""
        state = "enforcing" if self.enforcing else "not enforcing"
        keys = ", ".join(self.keys) + " set" if self.keys else "no keys"
        return f"Secure Boot {state} ({self.mode} mode; {keys})"
