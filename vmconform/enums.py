"""The names vmconform compares: architectures, verdict statuses, boot outcomes, variable-store kinds.

Each is a ``StrEnum``, so a member equals its string (``Arch.AARCH64 == "aarch64"``) and JSON, YAML and
pytest IDs keep the plain words, while the code names them once, here.
"""

from __future__ import annotations

from enum import StrEnum


class Arch(StrEnum):
    """Guest architectures the spec covers and vmconform has a probe for."""

    AARCH64 = "aarch64"
    ARM = "arm"


class Status(StrEnum):
    """A clause verdict: pass, fail (evidence that the VM did wrong), not-supported (declared by the
    hypervisor entry, with a reason), error (the harness or host could not decide), and, in a run's roll-up
    only, not-tested."""

    PASS = "pass"
    FAIL = "fail"
    NOT_SUPPORTED = "not-supported"
    ERROR = "error"
    NOT_TESTED = "not-tested"


class Outcome(StrEnum):
    """What UEFI requires of a case's image (the first four) and what a boot was seen to do (all)."""

    BOOTS = "boots"
    RECOVERS = "recovers"  # boots from the intact GPT copy (and may rewrite the damaged one)
    FALLS_THROUGH = "falls-through"  # skips the disk; the next boot option (the fallback disk) runs
    EITHER = "either"  # booting and falling through both conform
    NO_PROBE = "no-probe"  # observed only: no probe line reached the harness
    WRONG_PROBE = "wrong-probe"  # observed only: a probe of neither this case nor its fallback ran


class StoreKind(StrEnum):
    """Where a VM's firmware keeps its non-volatile UEFI variables (FW-4, FW-5, FW-6)."""

    PFLASH_FILE = "pflash-file"  # a per-VM writable flash image on the host (EDK2 VARS): read by the host
    RAM = "ram"  # nowhere persistent: lost at every reset (EDK2 as -bios, ArmVirtXen)
    ESP_FILE = "esp-file"  # a file on the guest's own ESP (U-Boot's \ubootefi.var): inside the image
    BOOT_ROM = "boot-rom"  # a -bios ROM with no separate store: RAM or a file on the ESP, seen by FW-6
