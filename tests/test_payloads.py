"""Real boot loaders (vmconform.payloads): the images built from Debian's packages, their console decisions on
recorded console text, and real boots through the suite: GRUB, the Linux EFI stub and systemd-boot on edk2 for both
arches, shim with the signed GRUB on edk2-ms; every boot decided by its own marker, none by the timeout."""

from __future__ import annotations

from pathlib import Path

import pefile
import pytest
from run_records import read_results
from test_suite_run import REPO, run_pytest

from vmconform import console, payloads

DECIDED = {
    "test_grub": "GRUB reached its command line (grub>)",
    "test_linux_efi_stub": "the kernel ran and panicked for want of a root file system",
    "test_systemd_boot": "systemd-boot shows its menu",
    "test_shim_grub": "GRUB reached its command line (grub>)",
}


def first_match(payload: payloads.Payload, text: str, partial: bool = False) -> str | None:
    """The meaning of the first decision (the payload's, then the firmware's dead ends) that `text` matches."""
    for de in (*(d for d, _ in payload.decisions("n1")), *console.DEAD_ENDS):
        if (de.partial or not partial) and de.pattern.search(text):
            return de.meaning
    return None


def test_decisions_on_console_text() -> None:
    grub, linux, sdboot, shim = (payloads.PAYLOADS[n] for n in ("grub", "linux", "systemd-boot", "shim"))
    assert first_match(grub, "grub> ", partial=True) == DECIDED["test_grub"]
    assert first_match(grub, "   Minimal BASH-like line editing is supported.") is None
    panic = "[    1.95] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"
    assert first_match(linux, panic) == DECIDED["test_linux_efi_stub"]
    other = "[    0.5] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009"
    assert first_match(linux, other) == "the Linux kernel panicked"  # a dead end: the kernel failed
    assert first_match(sdboot, "   VMCONFORM-PAYLOAD n1 systemd-boot   ") == DECIDED["test_systemd_boot"]
    assert first_match(sdboot, "   VMCONFORM-PAYLOAD n2 systemd-boot   ") is None  # another image's menu
    assert first_match(shim, "Verification failed: (0x1A) Security Violation") == "shim refused the next stage"
    assert first_match(grub, "Boot Maintenance Manager") == "the firmware shows its front page"
    # an ordinary probe case ends at any kernel panic too
    assert any(de.pattern.search(other) for de in console.DEAD_ENDS)


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_payload_images_hold_debian_loaders(arch: str) -> None:
    machine = {"aarch64": 0xAA64, "arm": 0x01C2}[arch]
    for name in ("grub", "linux", "systemd-boot"):
        files = {f.path: f.data for f in payloads.esp_files(payloads.PAYLOADS[name], arch, "n1")}
        boot = files[f"EFI/BOOT/{'BOOTAA64' if arch == 'aarch64' else 'BOOTARM'}.EFI"]
        assert pefile.PE(data=boot, fast_load=True).FILE_HEADER.Machine == machine, name
    grub = dict((f.path, f.data) for f in payloads.esp_files(payloads.PAYLOADS["grub"], arch, "n1"))
    assert b"VMCONFORM-PAYLOAD n1 grub" in next(v for k, v in grub.items() if k.endswith("grub.cfg"))


def test_shim_image_holds_the_microsoft_signed_shim_and_debian_signed_grub(tmp_path: Path) -> None:
    files = {f.path: f.data for f in payloads.esp_files(payloads.PAYLOADS["shim"], "aarch64", "n1")}
    for path in ("EFI/BOOT/BOOTAA64.EFI", "EFI/BOOT/grubaa64.efi"):
        pe = pefile.PE(data=files[path], fast_load=True)
        security = pe.OPTIONAL_HEADER.DATA_DIRECTORY[4]
        assert security.Size > 0, f"{path} carries no Authenticode signature"
        assert b"Microsoft Corporation UEFI CA 2011" in files[path] or b"Debian Secure Boot" in files[path], path


@pytest.mark.boot
def test_payloads_boot_on_edk2_both_arches_and_shim_on_edk2_ms(tmp_path: Path) -> None:
    p = run_pytest("suite/test_payloads.py", "--firmware", "edk2", "--firmware", "edk2-ms", "-n", "2",
                   f"--reports-dir={tmp_path}")  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    rows = {r["test"].split("::")[-1]: r for r in read_results(tmp_path)["results"]}
    assert sorted(rows) == sorted(
        [f"{t}[qemu-edk2-{a}-reference]" for t in ("test_grub", "test_linux_efi_stub", "test_systemd_boot")
         for a in ("aarch64", "arm")] + ["test_shim_grub[qemu-edk2-ms-aarch64-reference]"]
    )  # fmt: skip
    for test, row in rows.items():
        assert (row["outcome"], row["stop"]) == ("passed", "matched"), row  # decided, never a timeout
        assert row["stop_detail"] == DECIDED[test.split("[")[0]], row
        fw1 = next(v for v in row["verdicts"] if v["clause"] == "FW-1")
        assert fw1["status"] == "pass", fw1
    linux = rows["test_linux_efi_stub[qemu-edk2-arm-reference]"]
    log = (tmp_path / "latest" / linux["transcript"]).read_text()
    assert "EFI stub: Booting Linux Kernel" in log and "Kernel panic - not syncing: VFS" in log
    assert rows["test_shim_grub[qemu-edk2-ms-aarch64-reference]"]["payload"] == "shim"


@pytest.mark.boot
def test_the_firmware_front_page_is_a_decision(tmp_path: Path) -> None:
    """systemd-boot with no loader.conf and no entry boots its one automatic entry, "Reboot Into Firmware
    Interface": EDK2 then shows its front page (UiApp), which ends the boot at once, not at the timeout."""
    from vmconform import config, runner
    from vmconform.hypervisors import backend_for
    from vmconform.image import DiskSpec, EspFile, build_disk

    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    (fw,) = config.check_ready(entry, ["aarch64"], ["edk2"]).values()
    loader = payloads._package("arm64", "systemd-boot-efi") / "usr/lib/systemd/boot/efi/systemd-bootaa64.efi"
    disk = tmp_path / "disk.img"
    build_disk(DiskSpec(files=(EspFile("EFI/BOOT/BOOTAA64.EFI", loader.read_bytes()),), seed="front")).save(disk)
    result = runner.boot(backend_for(entry), "aarch64", (disk,), fw, None, tmp_path / "run", timeout=120)
    assert (result.stop.reason, result.stop.detail) == ("dead-end", "the firmware shows its front page"), result.tail
    assert 'starting Boot0000 "UiApp"' in result.stop.line


def test_a_loader_that_started_then_failed_passes_fw7_and_fails_fw1_with_what_happened() -> None:
    import dataclasses

    from vmconform.console import Stop
    from vmconform.verdicts.payloads import payload_boot

    linux = payloads.PAYLOADS["linux"]
    line = "[    0.06] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b"
    result = dataclasses.make_dataclass("R", ["stop", "foreign", "tail", "command", "exit_status"])(
        Stop("dead-end", "the Linux kernel panicked", line), (), line, ("xl",), None
    )
    run = dataclasses.make_dataclass("P", ["payload", "arch", "result", "nonce", "succeeded", "marker_seen"])(
        linux, "aarch64", result, "n1", False, True
    )
    fw1, fw7 = payload_boot(run, "2.0")  # type: ignore[arg-type]
    assert (fw1.clause, fw1.status) == ("FW-1", "fail") and "Attempted to kill init" in fw1.evidence, fw1
    assert "after 'EFI stub: Booting Linux Kernel'" in fw1.evidence
    assert (fw7.clause, fw7.status) == ("FW-7", "pass") and "EFI stub" in fw7.evidence, fw7
    run = dataclasses.replace(run, marker_seen=False)  # nothing of the loader ran: both clauses carry it
    assert [v.status for v in payload_boot(run, "2.0")] == ["fail", "fail"]  # type: ignore[arg-type]
