"""Verdicts of suite/test_payloads.py: a real boot loader at the removable-media path runs (FW-1, FW-7).

A payload passes when its own marker reached the console (the nonce its ``grub.cfg`` echoes, systemd-boot's
menu entry, the kernel's EFI stub) and then its own success decided the boot: a GRUB prompt, a boot menu, the
kernel's panic for want of a root file system. Anything else (the firmware's front page or shell, a refusal, an
exception, another panic, the timeout) fails FW-1 with the deciding console line, and FW-7 too unless the payload's
marker shows the firmware did start it from the removable-media path (e.g. the kernel's EFI stub ran, then the
kernel stopped: in a Xen domU whose firmware left Xen's shared_info page mapped).
"""

from __future__ import annotations

from vmconform.payloads import PayloadRun
from vmconform.probe import removable_media_path
from vmconform.verdicts import FAIL, PASS, Verdict, _boot_failure, collector

__all__ = ["payload_boot"]


def payload_boot(run: PayloadRun, spec: str, case: str = "") -> list[Verdict]:
    """FW-1 and FW-7 from one payload boot."""
    out, v = collector(spec, case)
    stop, payload = run.result.stop, run.payload
    path = removable_media_path(run.arch)
    if run.succeeded and run.marker_seen:
        evidence = f"{payload.summary}: {payload.marker(run.nonce)!r}, then {stop.detail}: {stop.line.strip()!r}"
        v("FW-1", PASS, evidence)
        v("FW-7", PASS, f"{path} ({payload.name}) started from a fresh variable store")
        return out
    status: str
    if run.succeeded:
        status, why = FAIL, f"{stop.detail}, but {payload.marker(run.nonce)!r} never appeared before it"
    else:
        status, why = _boot_failure(run.result)
    evidence = f"the firmware must run {payload.summary.split(',')[0]} from {path}; {why}"
    if run.marker_seen and not run.succeeded:  # it started (its marker is on the console), then went wrong
        v("FW-1", status, f"{evidence} (after {payload.marker(run.nonce)!r})")
        v("FW-7", PASS, f"{path} ({payload.name}) started from a fresh variable store: {payload.marker(run.nonce)!r}")
        return out
    v("FW-1", status, evidence)
    v("FW-7", status, evidence)
    return out
