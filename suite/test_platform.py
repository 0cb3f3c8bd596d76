"""VM platform (spec v1.0 "VM Platform", clauses.md §1.5, §1.8): timer and counter, exception level, GICs.

- PLAT-5 (V2-8, MUST in spec 2.0): CNTFRQ is non-zero and CNTVCT advances by about CNTFRQ across a 1 s Stall.
- V2-2: the application runs at EL1 (AArch64 CurrentEL) or in a PL1 mode (AArch32).
- V2-7: the VM boots with GICv2 and with GICv3 (the versions the entry lists under `gic_versions`, e.g.
  QEMU's `-machine virt,gic-version=N`) and describes that GIC (MADT GICD version or DT compatible).
"""

import pytest

from fixtures.boot import BootCase
from fixtures.judge import Judge
from vmconform.case_run import CaseRun
from vmconform.cases import Case
from vmconform.hypervisors import GicUnsupported

REFERENCE = pytest.mark.cases(layout="reference", defect="none")


@REFERENCE
@pytest.mark.clause("PLAT-5")
def test_counter(case: Case, boot_case: BootCase, judge: Judge) -> None:
    run = boot_case(facts=("cpu",))
    judge.counter(run)
    run.result.expect_clean_poweroff()


@REFERENCE
@pytest.mark.clause("V2-2")
def test_exception_level(case: Case, boot_case: BootCase, judge: Judge) -> None:
    run = boot_case(facts=("cpu",))
    judge.exception_level(run)
    run.result.expect_clean_poweroff()


@REFERENCE
@pytest.mark.clause("V2-7")
def test_gic_versions(case: Case, boot_case: BootCase, judge: Judge) -> None:
    runs: dict[int, CaseRun | str] = {}
    for version in judge.gic_versions_offered:
        try:
            runs[version] = boot_case(facts=("tables", "dump"), gic_version=version, label=f"gic{version}")
        except GicUnsupported as e:
            runs[version] = str(e)
    judge.gic_versions(runs)
