"""Real boots under QEMU TCG with Debian's AAVMF: the reference image, and controls that must fail."""

from pathlib import Path

import pytest

from vmconform import cases, config, runner
from vmconform.hypervisors import backend_for
from vmconform.image import DiskSpec, EspFile, build_disk

pytestmark = pytest.mark.boot
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def qemu():
    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    config.check_ready(entry, ["aarch64"], ["edk2"])
    return backend_for(entry), config.resolve_firmware(entry, "edk2", "aarch64")


def test_reference_image_boots_and_reports_the_firmware(qemu, tmp_path):
    backend, fw = qemu
    case = cases.find("aarch64")
    nonce = cases.new_nonce()
    disk = cases.write_image(case, nonce, tmp_path / "disk.img")
    r = runner.boot(backend, "aarch64", (disk,), fw, nonce, tmp_path / "run", timeout=60)
    assert r.stop.reason == "matched", r.describe()
    r.expect("BOOT", "aarch64")
    fwline = r.expect("FW")
    r.expect("END", "shutdown")
    r.expect_clean_poweroff()
    assert [ln.key for ln in r.lines] == ["BOOT", "FW", "SECUREBOOT", "END"]
    assert fwline.fields["st_sig"] == "5453595320494249"  # "IBI SYST"
    assert fwline.fields["rt_sig"] == "56524553544E5552"  # "RUNTSERV"
    assert int(fwline.fields["uefi_rev"], 16) >= 0x00020028  # UEFI 2.4 or later
    assert fwline.fields["vendor"] == "EDK II"
    assert (tmp_path / "run" / "console.log").read_text().count(f"VMCONFORM {nonce} ") == 4
    assert "-nic none" in (tmp_path / "run" / "command.sh").read_text()
    t = r.timings
    assert (
        0 <= t["vm_started"] < t["first_output"] < t["first_probe_line"] <= t["probe_end"] <= t["exited"] <= t["total"]
    )


def test_a_wrong_nonce_expectation_fails(qemu, tmp_path):
    """The negative control: an image whose probe carries another nonce must never pass."""
    backend, fw = qemu
    disk = cases.write_image(cases.find("aarch64"), "aaaaaaaaaaaa", tmp_path / "disk.img")
    r = runner.boot(backend, "aarch64", (disk,), fw, "bbbbbbbbbbbb", tmp_path / "run", timeout=60)
    assert r.lines == () and r.foreign[0].nonce == "aaaaaaaaaaaa"
    assert r.exit_status is None, "a stale probe ends the case at once; the harness kills the VM"
    with pytest.raises(runner.CaseFailure, match="the probe that ran is another case's"):
        r.expect("BOOT", "aarch64")


def test_no_boot_file_is_a_dead_end_not_a_timeout(qemu, tmp_path):
    backend, fw = qemu
    disk = tmp_path / "disk.img"
    build_disk(DiskSpec(files=(EspFile("EFI/README.TXT", b"no loader here\n"),), seed="no-loader")).save(disk)
    r = runner.boot(backend, "aarch64", (disk,), fw, "cccccccccccc", tmp_path / "run", timeout=60)
    assert r.stop.reason == "dead-end", r.describe()
    assert "UEFI Shell" in r.stop.detail
    assert r.elapsed < 30
    with pytest.raises(runner.CaseFailure, match="the firmware reached a dead end"):
        r.expect("BOOT", "aarch64")


def test_u_boot_boots_the_reference_image_from_the_removable_media_path(tmp_path):
    """A second UEFI implementation (Debian's u-boot-qemu, loaded with -bios, no pflash store)."""
    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    fw = config.resolve_firmware(entry, "u-boot", "aarch64")
    assert fw.mapping == "bios" and fw.vars_template is None
    nonce = cases.new_nonce()
    disk = cases.write_image(cases.find("aarch64"), nonce, tmp_path / "disk.img")
    r = runner.boot(backend_for(entry), "aarch64", (disk,), fw, nonce, tmp_path / "run", timeout=60)
    r.expect("BOOT", "aarch64")
    assert r.expect("FW").fields["vendor"] == "Das U-Boot"
    r.expect_clean_poweroff()
    cmd = (tmp_path / "run" / "command.sh").read_text()
    assert "-bios /usr/lib/u-boot/qemu_arm64/u-boot.bin" in cmd and "pflash" not in cmd
