"""The OS probe on QEMU's U-Boot (Debian's u-boot-qemu): on aarch64 U-Boot starts the unified kernel image from
the removable-media path and Linux boots on U-Boot's DT, where it finds no UEFI time services at runtime (FW-9
fails: rtc0 is the PL031, a true finding); on arm the family is not collected, with the reason the run's notes
give (GRUB's initrd reaches the armmp kernel damaged; the cause is not known, so no clause is judged)."""

from pathlib import Path

import pytest

from fixtures.osprobe import cannot_run
from vmconform import config
from vmconform.hypervisors import backend_for
from vmconform.osprobe import run as osrun
from vmconform.verdicts import osprobe as vos

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("fw", ["u-boot", "u-boot-2023.01", "u-boot-2025.01"])
def test_arm_on_u_boot_is_not_collected_and_says_why(fw):
    why = cannot_run("qemu", fw, "", "arm")
    assert "Initramfs unpacking failed" in why and "no clause is judged" in why and "\n" not in why
    assert cannot_run("qemu", fw, "", "aarch64") == ""
    assert cannot_run("qemu", "edk2", "", "arm") == ""


@pytest.mark.boot
def test_the_os_probe_on_u_boot_boots_linux_on_its_dt_and_finds_no_runtime_rtc(tmp_path):
    from vmconform.osprobe.assets import parts

    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    config.check_ready(entry, ["aarch64"], ["u-boot"])
    backend, fw = backend_for(entry), config.resolve_firmware(entry, "u-boot", "aarch64")
    vm = osrun.OsProbeVm(backend, parts("aarch64"), fw, tmp_path, tmp_path / "out", 180)
    b = osrun.boot_os(vm, "osuboot1", acpi=False)
    assert b.result.exit_status == 0 and b.facts.finished, b.result.describe()
    assert "U-Boot" in b.result.transcript.read_text(errors="replace")
    ok, evidence = vos.described_boot(b)
    assert ok and "described by DT" in evidence and "uart-pl011" in evidence, evidence
    shape = backend.with_cpus("aarch64", osrun.OS_CPUS).shape("aarch64")
    verdicts = {v.clause: v for v in vos.platform(b, shape, b.host_times, "2.0")}
    assert {c: verdicts[c].status for c in ("PLAT-1", "V2-3", "PLAT-5")} == dict.fromkeys(
        ("PLAT-1", "V2-3", "PLAT-5"), "pass"
    ), verdicts
    assert verdicts["FW-9"].status == "fail" and "rtc-pl031" in verdicts["FW-9"].evidence, verdicts["FW-9"]
