"""Run one case end to end: its probe and disks, a fresh variable-store copy, the boot, the observed outcome.

A case that may fall through gets a second, valid disk after its own (the fallback, with its own nonce),
so a firmware that skips the bad disk is seen reaching it at once. Disks and the vars copy go to a private
work folder, the console transcript to the case's report folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from vmconform import cases as casemod
from vmconform import outcomes
from vmconform.firmware import Firmware, copy_vars_template
from vmconform.hypervisors import Backend
from vmconform.runner import BootResult, boot
from vmconform.vm import Disk

__all__ = ["CaseRun", "PrepareError", "run_case"]


class PrepareError(Exception):
    """The work folder could not take a case's files (a full disk, say); the message is one line."""


@dataclass(frozen=True)
class CaseRun:
    """One boot of a case: what the probe(s) said, and the outcome in the catalogue's words."""

    case: casemod.Case
    result: BootResult
    nonce: str
    fallback_nonce: str | None
    observed: str  # an Outcome: boots | recovers | falls-through | no-probe | wrong-probe
    gpt_changed: tuple[str, ...]
    disks: tuple[Disk, ...]
    probe_mode: str = "boot"
    probe_facts: tuple[str, ...] = ()
    gic_version: int | None = None
    probe_variant: str = "unsigned"  # vmconform.secureboot.VARIANTS: how the case's probe was signed

    def describe(self) -> str:
        changed = f"; GPT rewritten: {', '.join(self.gpt_changed)}" if self.gpt_changed else ""
        return f"observed {self.observed}{changed}"

    @property
    def probe_ran(self) -> bool:
        """Whether this case's own probe reported at all (its BOOT line reached the harness)."""
        return any(line.key == "BOOT" for line in self.result.lines)


def run_case(
    backend: Backend,
    case: casemod.Case,
    firmware: Firmware,
    workdir: Path,
    out_dir: Path,
    timeout: float,
    *,
    nonce: str | None = None,
    mode: str = "boot",
    facts: Collection[str] = (),
    gic_version: int | None = None,
    tag: str = "",
    echo: Callable[[bytes], None] | None = None,
    probe_variant: str | None = None,
) -> CaseRun:
    """Build `case`'s disks with fresh nonces (a probe of `mode` with `facts`), boot them on `backend` with a fresh
    vars copy, and say what happened. `gic_version` boots a VM with that GIC (``Backend.with_gic``, which raises
    GicUnsupported when the backend cannot set it). `probe_variant` (`vmconform.secureboot.VARIANTS`, default:
    signed on a Secure Boot firmware of vmconform's, else unsigned) says how the probe is signed (the fallback's:
    signed whenever the firmware is a Secure Boot one). PrepareError when the work folder cannot take the files
    (nothing is left behind then)."""
    from vmconform import secureboot

    nonce = nonce or casemod.new_nonce()
    fb_nonce = casemod.new_nonce() if case.needs_fallback else None
    variant = probe_variant or secureboot.probe_variant(firmware.secure_boot)
    probe = fb_probe = None
    if (mode, tuple(facts), variant) != ("boot", (), secureboot.UNSIGNED):
        from vmconform.probe import build_probe

        probe = secureboot.prepare_probe(build_probe(case.arch, nonce, mode=mode, facts=facts), variant)
        if fb_nonce is not None and firmware.secure_boot:
            fb_probe = secureboot.prepare_probe(build_probe(case.arch, fb_nonce), secureboot.SIGNED)
    if gic_version is not None:
        backend = backend.with_gic(case.arch, gic_version)
    try:
        disks = casemod.write_disks(case, nonce, workdir / "disks", fb_nonce, probe, fb_probe)
        vars_copy = copy_vars_template(firmware, workdir / "vars.fd")
    except OSError as e:
        shutil.rmtree(workdir / "disks", ignore_errors=True)
        (workdir / "vars.fd").unlink(missing_ok=True)
        raise PrepareError(
            f"cannot prepare the case in {workdir}: {e.strerror} ({e.filename}); free space there or choose "
            f"another --basetemp"
        ) from None
    expect_nonce = None if fb_nonce else nonce  # with a fallback disk, either probe may legitimately run
    dead_ends = None
    if fb_nonce is not None and firmware.secure_boot:  # a refused image is followed by the next boot option (E-21)
        from vmconform.console import DEAD_ENDS

        dead_ends = tuple(d for d in DEAD_ENDS if not d.meaning.startswith("the firmware refused the image"))
    result = boot(backend, case.arch, disks, firmware, expect_nonce, out_dir, timeout, vars_path=vars_copy, tag=tag,
                  echo=echo, dead_ends=dead_ends)  # fmt: skip
    seen = tuple(dict.fromkeys(line.nonce for line in result.lines))
    changed = outcomes.gpt_changes(casemod.build_image(case, nonce, probe), disks[0].path, case.sector_size)
    observed = outcomes.observed_outcome(nonce, fb_nonce, seen, changed)
    return CaseRun(case, result, nonce, fb_nonce, observed, changed, disks, mode, tuple(facts), gic_version, variant)
