"""The OS probe on QEMU's U-Boot (Debian's u-boot-qemu): on aarch64 U-Boot starts the unified kernel image from
the removable-media path and Linux boots on U-Boot's DT, where it finds no UEFI time services at runtime (FW-9
fails: rtc0 is the PL031, a true finding); on arm GRUB starts the armmp kernel, whose PE header the OS probe
makes declare its decompressor's heap (`vmconform.osprobe.zimage`): with Debian's header as it is, that heap
overwrites the start of GRUB's initrd on U-Boot and Linux panics (the negative control)."""

from pathlib import Path

import pytest

from fixtures.osprobe import cannot_run
from vmconform import config
from vmconform.hypervisors import backend_for
from vmconform.osprobe import run as osrun
from vmconform.verdicts import osprobe as vos

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("fw", ["u-boot", "u-boot-2023.01", "u-boot-2025.01"])
def test_the_family_is_collected_on_u_boot_for_both_arches(fw):
    assert cannot_run("qemu", fw, "", "arm") == cannot_run("qemu", fw, "", "aarch64") == ""


@pytest.mark.boot
def test_the_os_probe_on_u_boot_boots_linux_on_its_dt_and_finds_no_runtime_rtc(tmp_path):
    from vmconform.osprobe.assets import parts

    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    config.check_ready(entry, ["aarch64"], ["u-boot"])
    backend, fw = backend_for(entry), config.resolve_firmware(entry, "u-boot", "aarch64")
    vm = osrun.OsProbeVm(backend, parts("aarch64"), fw, tmp_path, tmp_path / "out", 180)
    b = osrun.boot_os(vm, "osuboot1", acpi=False)
    assert "U-Boot" in b.result.transcript.read_text(errors="replace")
    _judged_on_u_boots_dt(b, "aarch64")


def _judged_on_u_boots_dt(b: osrun.OsBoot, arch: str) -> None:
    """Linux finished on U-Boot's DT: described by it, PLAT-1/V2-3/PLAT-5 pass, FW-9 fails (rtc-pl031)."""
    assert b.result.exit_status == 0 and b.facts.finished, b.result.describe()
    ok, evidence = vos.described_boot(b)
    assert ok and "described by DT" in evidence and "uart-pl011" in evidence, evidence
    backend = backend_for(config.load(REPO / "hypervisors.yaml").get("qemu"))
    shape = backend.with_cpus(arch, osrun.OS_CPUS).shape(arch)
    verdicts = {v.clause: v for v in vos.platform(b, shape, b.host_times, "2.0")}
    assert {c: verdicts[c].status for c in ("PLAT-1", "V2-3", "PLAT-5")} == dict.fromkeys(
        ("PLAT-1", "V2-3", "PLAT-5"), "pass"
    ), verdicts
    assert verdicts["FW-9"].status == "fail" and "rtc-pl031" in verdicts["FW-9"].evidence, verdicts["FW-9"]


def _arm_boot(tmp_path: Path, fwname: str, nonce: str) -> osrun.OsBoot:
    from vmconform.osprobe.assets import parts

    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    config.check_ready(entry, ["arm"], [fwname])
    backend, fw = backend_for(entry), config.resolve_firmware(entry, fwname, "arm")
    vm = osrun.OsProbeVm(backend, parts("arm"), fw, tmp_path, tmp_path / "out", 300)
    return osrun.boot_os(vm, nonce, acpi=False)  # the DT boot: AArch32 Linux has no ACPI


@pytest.mark.boot
@pytest.mark.parametrize("fw", ["u-boot", "u-boot-2025.01"])
def test_arm_on_u_boot_boots_the_armmp_kernel_through_grub_on_the_dt(fw, tmp_path):
    b = _arm_boot(tmp_path, fw, "osubarm1")
    text = b.result.transcript.read_text(errors="replace")
    assert "U-Boot" in text and "Welcome to GRUB" in text and "Initramfs unpacking failed" not in text
    _judged_on_u_boots_dt(b, "arm")


@pytest.mark.boot
def test_without_the_declared_heap_the_initrd_is_overwritten_on_u_boot(tmp_path, monkeypatch):
    """The negative control: Debian's zImage as it is, GRUB's initrd right above U-Boot's copy of it."""
    from vmconform.osprobe import assets

    monkeypatch.setattr(assets, "declare_heap", lambda image: image)
    b = _arm_boot(tmp_path, "u-boot", "osubarm2")
    text = b.result.transcript.read_text(errors="replace")
    assert b.result.stop.reason == "dead-end" and "Kernel panic" in b.result.stop.line, b.result.describe()
    assert "Initramfs unpacking failed: invalid magic at start of compressed archive" in text
    assert not b.facts.finished and "Welcome to GRUB" in text
