"""The fault table: each fault ends in its exact verdict or one-line error, never a pass or a traceback."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vmconform import config, firmware, reaper, runner
from vmconform.hypervisors import backend_for
from vmconform.verdicts import boot as vboot

REPO = Path(__file__).resolve().parent.parent
AAVMF = Path("/usr/share/AAVMF")


def hv_file(tmp_path: Path, binary: str = "qemu-system-aarch64", fw: str = "auto", extra: str = "") -> Path:
    p = tmp_path / "hypervisors.yaml"
    p.write_text(
        "hypervisors:\n  q:\n    backend: qemu\n    timeout: 20\n"
        f"    arches:\n      aarch64: {{binary: {binary}, machine: virt, cpu: cortex-a57, memory: 512M{extra}}}\n"
        f"    firmwares:\n      edk2:\n        aarch64: {fw}\n"
    )
    return p


def ready_error(path: Path) -> str:
    entry = config.load(path).get(None)
    with pytest.raises(config.ConfigError) as ei:
        config.check_ready(entry, ["aarch64"], ["edk2"])
    assert "\n" not in str(ei.value)
    return str(ei.value)


def test_firmware_for_the_wrong_architecture(tmp_path):
    msg = ready_error(hv_file(tmp_path, fw=f"{{code: {AAVMF}/AAVMF32_CODE.fd, vars: {AAVMF}/AAVMF32_VARS.fd}}"))
    assert msg.endswith(
        "AAVMF32_CODE.fd holds arm code, but it is configured for aarch64; point aarch64 at aarch64 firmware"
    )


def test_vars_template_smaller_than_code(tmp_path):
    small = tmp_path / "VARS.fd"
    small.write_bytes((AAVMF / "AAVMF_VARS.fd").read_bytes()[: 1 << 20])
    msg = ready_error(hv_file(tmp_path, fw=f"{{code: {AAVMF}/AAVMF_CODE.fd, vars: {small}}}"))
    assert f"vars {small} is 1048576 bytes but code {AAVMF}/AAVMF_CODE.fd is 67108864" in msg


def test_code_architecture_reads_te_and_pe_headers():
    assert firmware.code_architecture(AAVMF / "AAVMF_CODE.fd") == "aarch64"
    assert firmware.code_architecture(AAVMF / "AAVMF32_CODE.fd") == "arm"
    assert firmware.code_architecture(Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")) == "aarch64"
    assert firmware.code_architecture(Path("/usr/lib/u-boot/qemu_arm/u-boot.bin")) == "arm"


def boot_with(tmp_path: Path, hv: Path, timeout: float = 20, kill_after: float | None = None) -> runner.BootResult:
    entry = config.load(hv).get(None)
    fw = config.resolve_firmware(entry, "edk2", "aarch64")
    from vmconform import cases

    disk = cases.write_image(cases.find("aarch64"), "faultcase", tmp_path / "disk.img")
    tag = f"{tmp_path}/run/case"
    if kill_after is not None:

        def killer() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                vms = reaper.find(f"{tmp_path}/run")
                if vms:
                    time.sleep(kill_after)
                    os.kill(vms[0].pid, signal.SIGKILL)
                    return
                time.sleep(0.01)

        threading.Thread(target=killer, daemon=True).start()
    return runner.boot(backend_for(entry), "aarch64", (disk,), fw, "faultcase", tmp_path / "run", timeout, tag=tag)


@pytest.mark.boot
def test_hypervisor_refusing_the_vm_is_an_error_with_its_message(tmp_path):
    r = boot_with(tmp_path, hv_file(tmp_path, extra=", extra_args: [-device, no-such-device]"))
    (v,) = [v for v in vboot.removable_media_boot(r, "aarch64", "2.0", "flash") if v.clause == "FW-1"]
    assert v.status == "error"
    assert "; the hypervisor could not run the VM (exit status 1): qemu-system-aarch64: -device" in v.evidence


@pytest.mark.boot
def test_vm_killed_from_outside_mid_boot_is_an_error_never_a_pass(tmp_path):
    r = boot_with(tmp_path, hv_file(tmp_path), kill_after=0.3)
    (v,) = [v for v in vboot.removable_media_boot(r, "aarch64", "2.0", "flash") if v.clause == "FW-1"]
    assert v.status == "error", v.evidence
    # killed mid-boot, or (on a loaded machine) before its first byte: an error either way, never a pass
    assert v.evidence.endswith(
        (
            "; the VM process was killed by signal 9 before the probe finished",
            "; the VM process ended with status -9 before printing anything",
        )
    ), v.evidence


def fake_console(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-vm"
    script.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_console_printing_garbage_times_out_with_its_tail(tmp_path):
    """A console that never speaks the protocol (a fake VM: the fault cannot be produced with real firmware)."""
    body = (
        "sys.stdout.buffer.write(bytes(range(256)) * 4 + b'\\r\\nlast words\\r\\n'); sys.stdout.flush(); time.sleep(60)"
    )
    r = boot_with(tmp_path, hv_file(tmp_path, binary=fake_console(tmp_path, body)), timeout=2)
    assert r.stop.reason == "timeout" and r.exit_status is None
    (v,) = [v for v in vboot.removable_media_boot(r, "aarch64", "2.0", "flash") if v.clause == "FW-1"]
    assert v.status == "fail" and v.evidence.endswith("last console line 'last words'")


def test_silent_console_is_an_error(tmp_path):
    r = boot_with(tmp_path, hv_file(tmp_path, binary=fake_console(tmp_path, "time.sleep(60)")), timeout=2)
    (v,) = [v for v in vboot.removable_media_boot(r, "aarch64", "2.0", "flash") if v.clause == "FW-1"]
    assert v.status == "error" and "no console output at all" in v.evidence
    deadline = time.monotonic() + 5  # killed a moment ago: give it time to finish dying
    while reaper.find(f"{tmp_path}/run") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not reaper.find(f"{tmp_path}/run")


@pytest.mark.boot
def test_full_work_folder_is_a_clean_error_and_leaves_nothing(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")  # pragma: no cover
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(small)], check=True)
    try:
        p = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_boot.py", "suite/test_firmware.py",
             "--case", "aarch64-reference", f"--basetemp={small}/bt", f"--reports-dir={tmp_path}/reports"],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        left = [p for p in small.rglob("*") if p.is_file()]
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert p.returncode == 1
    assert "cannot prepare the case in" in p.stdout and "No space left on device" in p.stdout
    assert "Traceback" not in p.stdout
    assert left == [], left
