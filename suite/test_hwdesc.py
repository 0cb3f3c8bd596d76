"""Hardware description (spec v1.0 "Hardware Description", clauses.md §1.4, §1.5, §1.8).

One boot of each arch's reference image with a probe that lists the configuration table and dumps the DTB,
the ACPI tables and SMBIOS 3. Judged from them: HW-1 (ACPI or a DTB is there), HW-2 (spec 1.0: a DTB that
describes the VM: /cpus = the configured vCPUs, memory as configured, a GIC, a PL011/SBSA UART, the
architected timer, PSCI 0.2+ with its conduit), V2-5 (spec 2.0: ACPI *and* a DTB, both describing the VM),
PLAT-1 (CPU count and memory), PLAT-3 (a serial console), PLAT-4 (a GIC), V2-3 (PSCI 0.2+), V2-6 (an SBSA
UART).

On QEMU `virt` EDK2 publishes ACPI only, or the DTB only with `acpi=off` (`--hypervisor qemu-dt`); AAVMF32
and U-Boot publish a DTB and no ACPI: V2-5 fails in every QEMU configuration, with the GUIDs as evidence.
"""

import pytest

from fixtures.boot import BootCase
from fixtures.judge import Judge
from vmconform.cases import Case


@pytest.mark.cases(layout="reference", defect="none")
@pytest.mark.clause("HW-1", "HW-2", "V2-5", "PLAT-1", "PLAT-3", "PLAT-4", "V2-3", "V2-6")
def test_hardware_description(case: Case, boot_case: BootCase, judge: Judge) -> None:
    run = boot_case(facts=("tables", "dump"))
    judge.hardware_description(run)
    run.result.expect_clean_poweroff()
