"""Verdicts of suite/test_malformed.py: a malformed image gets the outcome UEFI requires, never a hang."""

from __future__ import annotations

from collections.abc import Sequence

from vmconform import outcomes
from vmconform.cases import Case
from vmconform.runner import BootResult
from vmconform.verdicts import FAIL, PASS, Verdict, _boot_failure, short

__all__ = ["malformed_image"]


def malformed_image(
    result: BootResult, case: Case, observed: str, gpt_changed: Sequence[str], label: str = ""
) -> list[Verdict]:
    """Verdicts from booting a malformed image: the firmware must reach an outcome UEFI allows, never hang."""
    allowed = {
        outcomes.BOOTS: "boot from it",
        outcomes.RECOVERS: "boot from it (repairing the GPT from its intact copy)",
        outcomes.FALLS_THROUGH: "skip it and boot the next option",
        outcomes.EITHER: "boot from it or skip it",
    }[case.expect]
    what = {
        outcomes.BOOTS: "it booted from the image",
        outcomes.RECOVERS: f"it booted from the image and rewrote {', '.join(gpt_changed)}",
        outcomes.FALLS_THROUGH: "it skipped the image and booted the fallback disk",
        "wrong-probe": "a probe of neither this case nor its fallback ran",
    }
    if observed in what:
        evidence = f"UEFI: the firmware must {allowed}; {what[observed]}"
        evidence += f" ({short(result.lines[0].raw)})" if result.lines else ""
        status: str = PASS if outcomes.conforms(case, observed) else FAIL
    else:  # no probe ran at all
        status, why = _boot_failure(result)
        evidence = f"UEFI: the firmware must {allowed}; instead {why}"
    if status == FAIL and observed == case.edk2 and case.edk2_evidence.startswith("observed"):
        evidence += f" [known EDK2 behaviour: {case.edk2_evidence}]"
    return [Verdict(c, status, evidence, label) for c in case.clauses]
