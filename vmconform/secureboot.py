"""Secure Boot in a run: which probe a case boots, and what the VM's enforcement means for portable images.

A firmware that enforces Secure Boot runs only images signed by a key in its db, so an unsigned portable image
(the image the VM spec describes: nothing in IMG-1..IMG-6 asks for a signature) cannot boot there, by design.
A run on such a firmware (`Firmware.secure_boot` set: ``edk2-sb``, ``edk2-ms`` in hypervisors.yaml) therefore
boots every case with its probe signed by vmconform's test key (`vmconform.signing`), and the Secure Boot cases
(``suite/test_secureboot.py``) boot the probe in each `VARIANTS`: signed (runs), unsigned, changed after signing,
signed by the key in dbx (each refused, the firmware's own words the evidence).

`enforcement_line` is the one line a report, ``vmconform boot`` and FW-1's evidence give: whether the VM enforces
Secure Boot, with which keys (the probe's SECUREBOOT fact, and the keys vmconform enrolled), and what follows for
portable unsigned images.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vmconform.facts.secureboot import SecureBootFact
from vmconform.facts.status import FactError
from vmconform.probe.protocol import ProbeLine, parse_line

__all__ = [
    "KEYS",
    "VARIANTS",
    "boot_line",
    "enforcement_line",
    "fact_of",
    "prepare_probe",
    "probe_variant",
    "run_lines",
]

SIGNED, UNSIGNED, TAMPERED, REVOKED = "signed", "unsigned", "tampered", "revoked"
VARIANTS = (SIGNED, UNSIGNED, TAMPERED, REVOKED)
"""How a probe is prepared: signed by the trusted test key; as built; signed, then a byte of .text changed;
signed by the revoked test key (in db and in dbx: dbx wins)."""

KEYS = {
    "test-key": "vmconform's test key in PK, KEK and db, a revoked one in dbx",
    "microsoft": "Debian's Microsoft-keys store (AAVMF_VARS.ms.fd), vmconform's test key added to db",
}
"""`Firmware.secure_boot` -> the keys vmconform's vars template enrolls, in words."""

TAMPER_OFFSET = 0x400
"""The byte changed in a signed probe: in .text (raw data from 0x200), covered by the Authenticode hash."""


def probe_variant(firmware_keys: str) -> str:
    """The variant an ordinary case boots: signed on a Secure Boot firmware of vmconform's, else as built."""
    return SIGNED if firmware_keys else UNSIGNED


def prepare_probe(image: bytes, variant: str) -> bytes:
    """`image` (a probe PE) as `variant` (`VARIANTS`); SigningError (one line) when sbsign is missing."""
    from vmconform import signing

    if variant == UNSIGNED:
        return image
    if variant == SIGNED:
        return signing.sign(image)
    if variant == TAMPERED:
        signed = bytearray(signing.sign(image))
        signed[TAMPER_OFFSET] ^= 0x01
        return bytes(signed)
    if variant == REVOKED:
        return signing.sign(image, signing.signing_key(signing.REVOKED_KEY))
    raise ValueError(f"unknown probe variant {variant!r}; known: {', '.join(VARIANTS)}")


def fact_of(lines: Iterable[ProbeLine | str]) -> SecureBootFact | None:
    """The SECUREBOOT fact among probe lines (parsed ones or raw text), None when there is none (or unreadable)."""
    for item in lines:
        line = parse_line(item) if isinstance(item, str) else item
        if line is not None and line.key == "SECUREBOOT":
            try:
                return SecureBootFact.from_line(line)
            except FactError:
                return None
    return None


def enforcement_line(fact: SecureBootFact, firmware_keys: str = "") -> str:
    """One line: the state and keys, and what follows for portable unsigned images."""
    keys = f"; keys: {KEYS[firmware_keys]}" if firmware_keys in KEYS else ""
    if fact.enforcing:
        return (f"the VM enforces Secure Boot ({fact.mode} mode; {', '.join(fact.keys) or 'no key databases'} set"
                f"{keys}): it runs only images signed by a key in its db, so portable unsigned images do not boot "
                f"on it")  # fmt: skip
    return f"the VM does not enforce Secure Boot ({fact.summary().split('(', 1)[1]}: portable unsigned images boot"


def boot_line(lines: Iterable[ProbeLine], stop_detail: str, firmware_keys: str = "") -> str | None:
    """What ``vmconform boot`` says after a boot: the enforcement line when the probe reported SECUREBOOT, else,
    when the firmware refused the image, that it enforces Secure Boot and what that means; None otherwise."""
    fact = fact_of(lines)
    if fact is not None:
        return enforcement_line(fact, firmware_keys)
    if stop_detail.startswith("the firmware refused the image"):
        keys = f" (keys: {KEYS[firmware_keys]})" if firmware_keys in KEYS else ""
        return (
            f"the VM enforces Secure Boot{keys}: it refused this image, and portable unsigned images do not boot "
            f"on it; `vmconform gen --signed` writes a probe signed by vmconform's test key (in db on edk2-sb)"
        )
    return None


def run_lines(rows: Iterable[tuple[str, str, str, Sequence[str]]]) -> list[str]:
    """ "name/arch: <enforcement line>" per firmware and arch of a run, from its cases' (firmware, arch, keys
    vmconform enrolled or "", probe lines): the first SECUREBOOT fact of each."""
    seen: dict[str, str] = {}
    for firmware, arch, keys, probe in rows:
        key = f"{firmware}/{arch}"
        if key not in seen and (fact := fact_of(probe)) is not None:
            seen[key] = enforcement_line(fact, keys)
    return [f"{k}: {v}" for k, v in sorted(seen.items())]
