"""Verdicts of suite/test_firmware.py: RTC (FW-9), persistent variables (FW-4, FW-5), where they live (FW-6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from vmconform.facts import ProbeFacts
from vmconform.verdicts import ERROR, FAIL, PASS, Verdict, collector

if TYPE_CHECKING:
    from vmconform.hypervisors import VariableStore

__all__ = [
    "FLOW_CLAUSES",
    "STALL_SECONDS",
    "flows_on_image_store",
    "instance_store",
    "nvram_flow",
    "nvram_preflight",
    "rtc",
]

STALL_SECONDS = 1.0  # the probe's Stall between the two GetTime / counter reads
COUNTER_TOLERANCE = (0.5, 2.0)  # counter seconds across the Stall, as a factor of STALL_SECONDS
MEMORY_TOLERANCE = 0.10  # described memory within 10 % of the configured size


def rtc(facts: ProbeFacts, spec: str, case: str = "") -> list[Verdict]:
    """FW-9: GetTime succeeds with an EFI_TIME in range, twice, advancing across the Stall; SetTime succeeds."""
    out, v = collector(spec, case)
    t = facts.time
    if t is None:
        v("FW-9", ERROR, "the probe printed no TIME line (it stopped before the time services were called)")
        return out
    problems = []
    for name, status in (("GetTime #1", t.get0), ("GetTime #2", t.get1)):
        if not status.ok:
            problems.append(f"{name} returned {status} (required EFI_SUCCESS)")
    for name, when in (("first", t.t0), ("second", t.t1)):
        bad = when.problems()
        if bad:
            problems.append(f"the {name} EFI_TIME is invalid: {'; '.join(bad)} (UEFI §8.3 ranges)")
    advanced = t.advanced
    if not t.stall.ok:
        problems.append(f"Stall(1 s) returned {t.stall}")
    elif advanced is not None and not 0 < advanced <= 5 * STALL_SECONDS:
        problems.append(
            f"the time moved {advanced:+.0f} s across a {STALL_SECONDS:.0f} s Stall (required: it "
            f"advances, by about {STALL_SECONDS:.0f} s)"
        )
    if not t.set.ok:
        problems.append(f"SetTime(the time just read) returned {t.set} (required EFI_SUCCESS)")
    seen = f"GetTime {t.t0} then {t.t1} (TimeZone {t.t0.time_zone:#x}), SetTime {t.set}"
    if problems:
        v("FW-9", FAIL, f"{'; '.join(problems)}; seen: {seen}")
    else:
        v("FW-9", PASS, f"{seen}: valid, advanced {advanced:.0f} s across the {STALL_SECONDS:.0f} s Stall")
    return out


FLOW_CLAUSES = {"warm": ("FW-5",), "cold": ("FW-5",), "power": ("FW-4", "FW-5"), "bootnext": ("FW-4", "FW-5")}


def nvram_preflight(
    store: VariableStore,
    args: Sequence[str],
    vars_copy_writable: bool | None,
    pair_problem: str | None,
    firmware: str,
    own_store_required: bool = True,
) -> list[tuple[str, str]]:
    """What stops an NVRAM test before it boots: (status for FW-4/FW-5, message) per problem found.

    `store` is the backend's word for where the VM keeps its variables (`Backend.variable_store`): only a per-VM
    file of the host (`StoreKind.PFLASH_FILE`) is a persistent store of the VM's own; with `own_store_required`
    (FW-4/FW-5; FW-6 boots any store, to see where variables go) any other kind is a failure in the backend's
    words. `args` is every extra argument the VM gets, `vars_copy_writable` whether the per-test copy of the vars
    template can be written (None: there is no template), `pair_problem` why CODE and VARS do not belong together
    (None: they do).
    """
    from vmconform.enums import StoreKind

    problems: list[tuple[str, str]] = []
    own = store.kind == StoreKind.PFLASH_FILE
    if own_store_required and not own:
        problems.append(
            (
                FAIL,
                f"pre-flight: the VM gives firmware {firmware} no persistent variable store of its own "
                f"({store.kind}): {store.description}; declare FW-4/FW-5 under not_supported: with the reason if "
                f"that is by design",
            )
        )
    snap = [a for a in args if a == "-snapshot" or "snapshot=on" in a]
    if snap:
        problems.append(
            (
                FAIL,
                f"pre-flight: the vars store is ephemeral: extra_args has {snap[0]!r}, so QEMU "
                f"drops every write to the vars pflash when it exits; remove it",
            )
        )
    if own and vars_copy_writable is False:
        problems.append(
            (
                ERROR,
                "pre-flight: the per-test copy of the vars template is not writable; "
                "check the permissions of the base temp folder",
            )
        )
    if pair_problem:
        problems.append((ERROR, f"pre-flight: CODE and VARS do not belong together: {pair_problem}"))
    return problems


def flows_on_image_store(store: VariableStore, problems: list[tuple[str, str]]) -> bool:
    """Whether an NVRAM flow still boots although pre-flight found `problems`: only when the one problem is that
    the firmware's store is no store of the VM's own but may sit inside the image (U-Boot's ``\\ubootefi.var`` on
    the ESP, or a boot ROM that may keep one there). FW-4/FW-5 fail either way; the flow gives the failure what
    the VM did and what the host found in that file (`nvram_flow` with `not_own`)."""
    from vmconform.enums import StoreKind

    return store.kind in (StoreKind.ESP_FILE, StoreKind.BOOT_ROM) and len(problems) == 1 and problems[0][0] == FAIL


def nvram_flow(
    mode: str,
    passed: bool,
    message: str,
    transcript: str,
    spec: str,
    case: str = "",
    probe_ran: bool = True,
    not_own: str = "",
    host_store: str = "",
) -> list[Verdict]:
    """FW-4/FW-5 from one NVRAM flow (`vmconform.nvram.run_flow`); when the probe never ran (a refusal, a dead
    end) nothing about persistence was seen, so the verdict is error with that reason.

    `host_store` is what the host found of the flow's variable in the image's ``\\ubootefi.var`` ("" with a vars
    file); `not_own` the pre-flight's failure when the store is no store of the VM's own (`flows_on_image_store`):
    then the verdict is fail whatever the flow did, with the flow's result and the host's finding as evidence.
    """
    out, v = collector(spec, case)
    first = message.strip().splitlines()[0] if message.strip() else f"{mode}: no message"
    evidence = first if passed else f"{first} (transcript: {transcript})"
    status = PASS if passed else FAIL if probe_ran else ERROR
    if not probe_ran:
        evidence = f"the flow's probe never ran, so persistence could not be judged: {evidence}"
    if host_store:
        evidence = f"{evidence}; {host_store}"
    if not_own:
        status, evidence = FAIL, f"{not_own}; the flow on the store it has: {evidence}"
    for clause in FLOW_CLAUSES[mode]:
        v(clause, status, evidence)
    return out


def instance_store(
    before: str,
    after: str,
    set_status: str | None,
    records: int | None,
    vars_name: str,
    image_store: str,
    spec: str,
    case: str = "",
    esp_store: str = "",
) -> list[Verdict]:
    """FW-6 after a VM set an NV variable: the disk image is byte-identical, the variable is in the instance's store.

    `before`/`after` are the disk image's sha256, `set_status` the SetVariable(NV|BS|RT) status name (None: never
    called), `records` how many records of the variable the instance's vars file holds (None: there is no vars
    file), `image_store` what `vmconform check` found stored in the image after the run ("" when nothing),
    `esp_store` what the host read of the variable in the image's ``\\ubootefi.var`` ("" when not looked for).
    """
    out, v = collector(spec, case)
    host = f"; {esp_store}" if esp_store else ""
    if set_status is None:
        v("FW-6", ERROR, "the probe never reached SetVariable(NV|BS|RT): where variables are kept is unknown")
        return out
    if set_status != "EFI_SUCCESS":
        v("FW-6", ERROR, f"SetVariable(NV|BS|RT) returned {set_status}: no variable was stored to look for")
        return out
    if after != before:
        found = f" ({image_store})" if image_store else ""
        v(
            "FW-6",
            FAIL,
            f"setting a UEFI variable wrote into the portable disk image{found}: sha256 {before[:16]}… before, "
            f"{after[:16]}… after; variables must live in a store of the VM instance, not in the image{host}",
        )
        return out
    if records is None:
        v(
            "FW-6",
            PASS,
            f"the disk image is byte-identical (sha256 {before[:16]}…) after the VM set a variable: the firmware "
            f"keeps variables outside the image (with no store file of the instance: in RAM; see FW-4/FW-5){host}",
        )
    elif records == 0:
        v(
            "FW-6",
            ERROR,
            f"the disk image is byte-identical (sha256 {before[:16]}…) but the variable never reached "
            f"the instance's {vars_name}: the store is not persistent (see FW-5)",
        )
    else:
        v(
            "FW-6",
            PASS,
            f"the disk image is byte-identical after the VM set a variable (sha256 {before[:16]}…); "
            f"the variable is in the instance's {vars_name}",
        )
    return out
