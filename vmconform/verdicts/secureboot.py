"""Verdicts of suite/test_secureboot.py: on a firmware that enforces Secure Boot the signed probe runs (FW-1 and the
image clauses as for any portable image, FW-1's evidence saying what the VM enforces), and an unsigned probe, one
changed after signing, and one signed by a key in dbx are refused at once (FW-1 pass: UEFI §32.5 requires the
refusal, clauses.md E-21). The image clauses are judged from the image itself (`vmconform check`), never from the
refusal: a portable image needs no signature, so none of them fails because the VM would not run it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vmconform import secureboot
from vmconform.runner import BootResult
from vmconform.verdicts import ERROR, FAIL, PASS, Verdict, _boot_failure, collector
from vmconform.verdicts.boot import IMAGE_CLAUSES, image_clauses

__all__ = ["REFUSAL_MEANING", "checked_image", "refused"]

REFUSAL_MEANING = "the firmware refused the image"
"""How `vmconform.console`'s Secure Boot dead end begins its meaning."""

_WHAT = {
    secureboot.UNSIGNED: "the unsigned probe",
    secureboot.TAMPERED: "the probe changed after signing",
    secureboot.REVOKED: "the probe signed by a key in dbx",
}


def checked_image(path: Path, arch: str, sector_size: int = 512) -> dict[str, tuple[str, str]]:
    """IMG-* verdicts from `vmconform check` on the case's disk (error verdicts when it cannot be read)."""
    from vmconform.check import DiskError, check_image

    try:
        report = check_image(path, arch, sector_size)
    except DiskError as e:
        return {c: (ERROR, f"vmconform check could not read the image: {e}") for c in IMAGE_CLAUSES}
    return image_clauses((r.id, r.clause, r.verdict) for r in report.rows)


def refused(
    result: BootResult, variant: str, image: Mapping[str, tuple[str, str]], spec: str, case: str = "",
    firmware_keys: str = "",
) -> list[Verdict]:  # fmt: skip
    """A probe prepared as `variant` (not signed by a trusted key) on a Secure Boot firmware: the refusal, read off
    the console, passes FW-1; the probe running fails it (when the probe says Secure Boot is enforced) or errs (the
    firmware does not enforce it: the set-up is not what the entry says)."""
    out, v = collector(spec, case)
    for c in IMAGE_CLAUSES:
        if c in image:
            v(c, *image[c])
    what = _WHAT.get(variant, f"the {variant} probe")
    keys = f" (keys: {secureboot.KEYS[firmware_keys]})" if firmware_keys in secureboot.KEYS else ""
    stop = result.stop
    if any(ln.key == "BOOT" for ln in result.lines):
        fact = secureboot.fact_of(result.lines)
        if fact is not None and not fact.enforcing:
            v("FW-1", ERROR, f"{what} ran: the firmware does not enforce Secure Boot ({fact.summary()}), so the "
                             f"refusal could not be tested; check the entry's secure_boot: set-up")  # fmt: skip
        else:
            state = fact.summary() if fact is not None else "no SECUREBOOT line"
            v("FW-1", FAIL, f"{what} ran although the firmware must refuse it under Secure Boot{keys} ({state})")
        return out
    if stop.reason == "dead-end" and stop.detail.startswith(REFUSAL_MEANING):
        v("FW-1", PASS, f"the VM enforces Secure Boot{keys}: {what} was refused after {stop.elapsed:.1f} s: "
                        f"{stop.line.strip()!r}; portable unsigned images do not boot on this VM")  # fmt: skip
        return out
    status, evidence = _boot_failure(result)
    v("FW-1", status, f"{what} must be refused with the firmware's own words (Access Denied / Security Violation); "
                      f"instead {evidence}")  # fmt: skip
    return out
