"""Verdicts of suite/test_boot.py: a conforming image boots from the removable-media path (IMG-*, FW-1/2/3/7,
PLAT-2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vmconform import secureboot
from vmconform.enums import Arch
from vmconform.runner import BootResult
from vmconform.verdicts import (
    ERROR,
    FAIL,
    MIN_UEFI_REVISION,
    PASS,
    RUNTIME_SERVICES_SIGNATURE,
    SYSTEM_TABLE_SIGNATURE,
    Verdict,
    _boot_failure,
    boot_evidence,
    collector,
    uefi_revision_text,
)

__all__ = ["IMAGE_CLAUSES", "image_clauses", "removable_media_boot"]

IMAGE_CLAUSES = ("IMG-1", "IMG-2", "IMG-3", "IMG-4", "IMG-5", "IMG-6")
"""Requirements on the image: judged from the image itself (vmconform check) and what the firmware saw of it."""


def image_clauses(rows: Iterable[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    """IMG-* verdicts from `vmconform check`'s rows (id, clause, verdict) of the case's image: pass when every
    rule of the clause holds, fail naming the rules that do not, error naming those a budget stopped."""
    by_clause: dict[str, list[tuple[str, str]]] = {}
    for rule, clause, verdict in rows:
        if clause in IMAGE_CLAUSES:
            by_clause.setdefault(clause, []).append((rule, verdict))
    out: dict[str, tuple[str, str]] = {}
    for clause in IMAGE_CLAUSES:
        rules = by_clause.get(clause, [])
        bad = [rule for rule, verdict in rules if verdict == FAIL]
        undecided = [rule for rule, verdict in rules if verdict == ERROR]
        if bad:
            out[clause] = (FAIL, f"vmconform check: the image breaks {', '.join(bad)}")
        elif undecided:
            out[clause] = (ERROR, f"vmconform check could not decide {', '.join(undecided)} (a budget stopped it)")
        else:
            n = len(rules)
            out[clause] = (PASS, f"vmconform check: the image holds {'its' if n == 1 else f'all {n}'} "
                                 f"rule{'' if n == 1 else 's'} of {clause}")  # fmt: skip
    return out


def removable_media_boot(
    result: BootResult,
    arch: str,
    spec: str,
    firmware_mapping: str,
    case: str = "",
    image: Mapping[str, tuple[str, str]] | None = None,
    layout: str = "reference",
    secure_boot_keys: str = "",
) -> list[Verdict]:
    """Verdicts from booting a conforming image with a fresh variable store.

    When the probe reports Secure Boot enforcing (SECUREBOOT), FW-1's evidence says so in one line, with the keys
    (`secure_boot_keys`: those vmconform enrolled, `Firmware.secure_boot`) and what follows for unsigned images.

    `image` holds the IMG-* verdicts from the image itself (`image_clauses`). When the probe did not run, the
    image clauses keep those verdicts (an image that `vmconform check` passes has not broken them) and the
    VM's clauses (FW-1, FW-7, PLAT-2) carry the failure, naming the layout.
    """
    out, v = collector(spec, case)
    boot = next((ln for ln in result.lines if ln.key == "BOOT"), None)
    if boot is None:
        status, evidence = _boot_failure(result)
        for c in IMAGE_CLAUSES:
            if image is not None and c in image:
                v(c, *image[c])
            else:
                v(c, ERROR, f"the probe did not run and the image was not checked: {evidence}")
        why = f"the firmware must boot the {layout} layout from its removable-media path; {evidence}"
        if result.stop.reason == "dead-end" and result.stop.detail.startswith("the firmware refused the image"):
            why += ("; the VM enforces Secure Boot, so portable unsigned images do not boot on it (a firmware given as "
                    "secure_boot: in hypervisors.yaml is tested with signed probes)")  # fmt: skip
        for c in ("FW-1", "FW-7", *(("PLAT-2",) if arch == Arch.ARM else ())):
            v(c, status, why)
        return out
    for c in IMAGE_CLAUSES:
        checked = f" ({image[c][1]})" if image is not None and c in image else ""
        v(c, image[c][0] if image is not None and c in image else PASS, boot_evidence(boot) + checked)
    v("FW-7", PASS, boot_evidence(boot))
    if arch == Arch.ARM:
        v("PLAT-2", PASS, boot_evidence(boot))

    fw = result.facts.get("FW")
    if fw is None:
        v("FW-1", FAIL, "the probe started but printed no FW line")
        v("FW-3", ERROR, "no FW line: the UEFI revision is unknown")
    else:
        st, rt = fw.fields.get("st_sig", ""), fw.fields.get("rt_sig", "")
        ok = st == SYSTEM_TABLE_SIGNATURE and rt == RUNTIME_SERVICES_SIGNATURE
        sb = secureboot.fact_of(result.lines)
        enforced = f"; {secureboot.enforcement_line(sb, secure_boot_keys)}" if sb is not None and sb.enforcing else ""
        v("FW-1", PASS if ok else FAIL, fw.raw.strip() + enforced)
        try:
            rev = int(fw.fields.get("uefi_rev", ""), 16)
        except ValueError:
            v("FW-3", ERROR, f"unreadable uefi_rev in {fw.raw.strip()!r}")
        else:
            need = MIN_UEFI_REVISION[spec]
            status = PASS if rev >= need else FAIL
            v("FW-3", status, f"UEFI {uefi_revision_text(rev)} (need {uefi_revision_text(need)}): {fw.raw.strip()}")
    how = {"flash": "firmware on pflash (CODE read-only, per-VM VARS)", "bios": "firmware as the boot ROM (-bios)"}
    v("FW-2", PASS, how.get(firmware_mapping, firmware_mapping))
    return out
