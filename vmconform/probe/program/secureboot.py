"""The SECUREBOOT fact: the Secure Boot mode variables' values and whether the key databases are set.

UEFI §3.3 (globally defined variables) and §32.3 (Secure Boot modes): `SecureBoot`, `SetupMode`, `AuditMode`
and `DeployedMode` are one-byte variables of EFI_GLOBAL_VARIABLE; the probe reads each into a small buffer
and prints its status, attributes, size and, when it was read, its bytes. `PK` and `KEK` (global) and `db`,
`dbx` (EFI_IMAGE_SECURITY_DATABASE_GUID, §32.6.1) are signature lists of any size: the probe asks with
DataSize 0 and Data NULL, so a variable that is set answers EFI_BUFFER_TOO_SMALL with its size, and one
that is not answers EFI_NOT_FOUND. The host side is `vmconform.facts.secureboot`.
"""

from __future__ import annotations

from uuid import UUID

from ..uefi import EFI_BUFFER_TOO_SMALL, EFI_SUCCESS, GLOBAL_VARIABLE_GUID, IMAGE_SECURITY_DATABASE_GUID
from .common import Target, guid_blob
from .ir import AddrOf, Buf, Comment, Cond, Const, HexBytes, If, Set, Step, Text, Var
from .lines import LINE_END, line_items, line_start

__all__ = ["secureboot", "MODE_VARIABLES", "KEY_VARIABLES", "MODE_VALUE_MAX"]

MODE_VARIABLES = ("SecureBoot", "SetupMode", "AuditMode", "DeployedMode")  # UINT8 each, EFI_GLOBAL_VARIABLE
KEY_VARIABLES: tuple[tuple[str, UUID], ...] = (
    ("PK", GLOBAL_VARIABLE_GUID),
    ("KEK", GLOBAL_VARIABLE_GUID),
    ("db", IMAGE_SECURITY_DATABASE_GUID),
    ("dbx", IMAGE_SECURITY_DATABASE_GUID),
)
MODE_VALUE_MAX = 8  # the mode variables' buffer: one byte is expected, a few more are shown if a firmware has them

_GUID_LABELS = {GLOBAL_VARIABLE_GUID: "global_variable", IMAGE_SECURITY_DATABASE_GUID: "image_security_database"}


def secureboot(fw: Target) -> tuple[Step, ...]:
    """SECUREBOOT <Mode>= <Mode>_attr= <Mode>_size= [<Mode>_data=] ... <Key>= <Key>_attr= <Key>_size= ..."""
    value, status = Buf("secureboot_value", MODE_VALUE_MAX), Var("st_secureboot")
    glob = guid_blob(_GUID_LABELS[GLOBAL_VARIABLE_GUID], GLOBAL_VARIABLE_GUID)
    size = Var("var_size")  # what get_variable passes as DataSize and var_fields prints
    steps: list[Step] = [
        Comment("the Secure Boot mode variables, each read into a small buffer"),
        line_start("SECUREBOOT"),
    ]
    for name in MODE_VARIABLES:
        steps += [
            *fw.get_variable(Text(name), glob, status, value),
            Comment("var_size means something only when the variable is there"),
            If(Cond("ne", status, Const(EFI_SUCCESS)), (
                If(Cond("ne", status, fw.error(EFI_BUFFER_TOO_SMALL)), (Set(size, Const(0)),)),
            )),
            line_items(*fw.var_fields(name, status, None)),
            If(Cond("eq", status, Const(EFI_SUCCESS)), (
                line_items((f"{name}_data", HexBytes(AddrOf(value), size))),
            )),
        ]  # fmt: skip
    steps.append(Comment("the key databases: size 0 and no buffer, so a set variable answers EFI_BUFFER_TOO_SMALL"))
    for name, guid in KEY_VARIABLES:
        steps += [
            *fw.get_variable(Text(name), guid_blob(_GUID_LABELS[guid], guid), status, None),
            line_items(*fw.var_fields(name, status, None)),
        ]
    steps.append(LINE_END)
    return tuple(steps)
