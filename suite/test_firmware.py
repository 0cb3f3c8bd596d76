"""Virtual firmware (spec v1.0 "Virtual Firmware", clauses.md §1.3): RTC, persistent variables, where they live.

The UEFI revision (FW-3) is judged in test_boot. Here, on each arch's reference image:

- FW-9: GetTime returns a valid EFI_TIME, twice around a 1 s Stall, and advances; SetTime succeeds.
- FW-5 / FW-4: the NVRAM flows of `vmconform.nvram`, one test each: a NV|BS|RT variable survives a warm
  reset, a cold reset and a power cycle (a new VM on the same vars file), a volatile one does not; a Boot####
  option with BootNext is booted after a reset. Each first passes the pre-flight checks (a writable vars
  copy, CODE and VARS of one build, no snapshot=on / -snapshot, a separate variable store at all: a -bios
  boot ROM has none), each failing with its own message.
- FW-6: after the VM set a variable the portable disk image is byte-identical (sha256 before and after) and
  the variable is in the instance's vars file. U-Boot keeps EFI variables in ubootefi.var on the ESP, so
  this fails there, with the file as evidence.
"""

from pathlib import Path

import pytest

from fixtures.boot import BootCase, NvramRuns
from fixtures.judge import Judge
from vmconform.cases import Case

REFERENCE = pytest.mark.cases(layout="reference", defect="none")


@REFERENCE
@pytest.mark.clause("FW-9")
def test_rtc(case: Case, boot_case: BootCase, judge: Judge) -> None:
    """FW-9: the UEFI time services work."""
    run = boot_case(facts=("time",))
    judge.rtc(run)
    run.result.expect_clean_poweroff()


def _flow(mode: str, judge: Judge, nvram_runs: NvramRuns, tmp_path: Path) -> None:
    from vmconform.verdicts.firmware import FLOW_CLAUSES

    if judge.nvram_preflight(FLOW_CLAUSES[mode], tmp_path):
        judge.nvram_flow(mode, nvram_runs.flow(mode))


@REFERENCE
@pytest.mark.clause("FW-5")
def test_nvram_warm_reset(case: Case, judge: Judge, nvram_runs: NvramRuns, tmp_path: Path) -> None:
    """FW-5: a non-volatile variable survives ResetSystem(EfiResetWarm); the volatile one does not."""
    _flow("warm", judge, nvram_runs, tmp_path)


@REFERENCE
@pytest.mark.clause("FW-5")
def test_nvram_cold_reset(case: Case, judge: Judge, nvram_runs: NvramRuns, tmp_path: Path) -> None:
    """FW-5: a non-volatile variable survives ResetSystem(EfiResetCold); the volatile one does not."""
    _flow("cold", judge, nvram_runs, tmp_path)


@REFERENCE
@pytest.mark.clause("FW-4", "FW-5")
def test_nvram_power_cycle(case: Case, judge: Judge, nvram_runs: NvramRuns, tmp_path: Path) -> None:
    """FW-4, FW-5: a non-volatile variable survives a power cycle (a new VM on the same vars file)."""
    _flow("power", judge, nvram_runs, tmp_path)


@REFERENCE
@pytest.mark.clause("FW-4", "FW-5")
def test_nvram_bootnext(case: Case, judge: Judge, nvram_runs: NvramRuns, tmp_path: Path) -> None:
    """FW-4, FW-5: a Boot#### option and BootNext written before a reset are honoured after it."""
    _flow("bootnext", judge, nvram_runs, tmp_path)


@REFERENCE
@pytest.mark.clause("FW-6")
def test_variables_not_in_image(case: Case, judge: Judge, nvram_runs: NvramRuns, tmp_path: Path) -> None:
    """FW-6: the VM sets a variable; the disk image stays byte-identical and the variable is in the vars file."""
    if judge.nvram_preflight(("FW-6",), tmp_path, separate_store=False):
        judge.instance_store(nvram_runs.store())
