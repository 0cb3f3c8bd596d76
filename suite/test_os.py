"""The OS probe (clauses.md §1.4, §1.5, §1.8): what only an operating system can see, from a real Linux guest.

Debian's kernel (arm64; armmp for arm) boots from the reference layout's removable-media path with a small
busybox initramfs whose /init prints ``VMCONFORM <nonce> ...`` lines (`vmconform.osprobe`), on a VM with 4
vCPUs. The UEFI probe stays the primary probe; these tests judge the same clauses end to end:

- `test_os_probe`: HW-2 / V2-5 (booted with ``acpi=off`` on the DT and, on aarch64, with ACPI; the UART,
  virtio, GIC and timer probed from each), PLAT-1 (vCPUs online, memory, PCI), V2-3 (PSCI version, every
  secondary brought up), PLAT-5 / V2-8 (virtual timer interrupts counted), FW-9 (rtc-efi's time).
- `test_os_hotplug`: PLAT-6 / V2-9: a virtio-blk and a virtio-net device hot-plugged onto pcie-root-ports
  appear in the guest, then are unplugged (backends with a hot-plug control; the armmp kernel has no PCIe
  hot-plug driver, so arm is not judged).
- `test_os_runtime_variables`: FW-5 at runtime: a variable written through efivarfs survives a power-off.
"""

import pytest

from fixtures.judge import Judge
from fixtures.osprobe import OsProbe
from vmconform.cases import Case
from vmconform.enums import Arch
from vmconform.verdicts import ERROR, Verdict
from vmconform.verdicts import osprobe as vos

REFERENCE = pytest.mark.cases(layout="reference", defect="none")
pytestmark = pytest.mark.os_probe  # not collected where the OS probe cannot run (the run notes why, once)


def _cannot_run(os_probe: OsProbe, judge: Judge, clauses: tuple[str, ...]) -> bool:
    """On a backend the OS probe does not run on, every clause of the test is an error saying so."""
    if os_probe.cannot_run:
        judge.record([Verdict(c, ERROR, os_probe.cannot_run, judge.label) for c in clauses])
    return bool(os_probe.cannot_run)


@REFERENCE
@pytest.mark.clause("HW-2", "V2-5", "PLAT-1", "V2-3", "PLAT-5", "FW-9")
def test_os_probe(case: Case, os_probe: OsProbe, judge: Judge) -> None:
    if _cannot_run(os_probe, judge, ("HW-2", "V2-5", "PLAT-1", "V2-3", "PLAT-5", "FW-9")):
        return
    boots = os_probe.boots(("acpi", "dt") if case.arch == Arch.AARCH64 else ("dt",))
    verdicts = vos.description(boots, case.arch, judge.spec, judge.label)
    finished = [b for b in boots.values() if b.facts.finished] or list(boots.values())
    main = finished[0]
    verdicts += vos.platform(main, os_probe.shape, main.host_times, judge.spec, judge.label)
    judge.record(verdicts, main.result)


@REFERENCE
@pytest.mark.clause("PLAT-6")
def test_os_hotplug(case: Case, os_probe: OsProbe, judge: Judge) -> None:
    if _cannot_run(os_probe, judge, ("PLAT-6",)):
        return
    if case.arch != Arch.AARCH64:
        config = os_probe.parts.kernel.config.read_text()
        if "CONFIG_HOTPLUG_PCI=y" not in config:
            kernel = os_probe.parts.kernel.package.name
            why = (f"not judged on {case.arch}: Debian's {kernel} has no PCIe hot-plug driver "
                   f"(CONFIG_HOTPLUG_PCI is not set), so the guest cannot take a hot-plugged device")  # fmt: skip
            judge.record([Verdict("PLAT-6", ERROR, why, judge.label)])
            return
    judge.record(vos.hotplug(os_probe.hotplug(), judge.spec, judge.label))


@REFERENCE
@pytest.mark.clause("FW-5")
def test_os_runtime_variables(case: Case, os_probe: OsProbe, judge: Judge) -> None:
    if _cannot_run(os_probe, judge, ("FW-5",)):
        return
    nonce, outcome = os_probe.variables()
    judge.record(vos.runtime_variables(outcome, nonce, judge.spec, judge.label), outcome.set_boot.result)
