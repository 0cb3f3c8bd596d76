"""The xen backend, for real: cases booted as domUs of the nested Xen-on-Arm host (built by scripts/setup.sh test
into the cache), on EDK2 ArmVirtXen and U-Boot xenguest; a domU that hangs is destroyed; a host that cannot
start is an error with its own words, never a fail."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from run_records import read_results

from vmconform import cases, config, reaper, runner
from vmconform.hypervisors import backend_for
from vmconform.hypervisors.xen import XenBackend
from vmconform.image import DiskSpec, EspFile, build_disk
from vmconform.verdicts import boot_failure

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.boot]


@pytest.fixture(scope="module")
def xen() -> XenBackend:
    """The xen entry's backend; its host VM is started by the first boot and powered off after the module."""
    entry = config.load(REPO / "hypervisors.yaml").get("xen")
    backend = backend_for(entry)
    assert isinstance(backend, XenBackend)
    try:
        backend.preflight()
    except config.ConfigError as e:
        pytest.fail(f"{e} (scripts/setup.sh test builds the Xen host)", pytrace=False)
    yield backend
    backend.close()


def test_the_reference_case_runs_on_both_domu_firmwares_through_the_suite(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_boot.py", "-k", "removable",
         "--hypervisor=xen", "--firmware", "edk2", "--firmware", "u-boot", f"--reports-dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-4000:]
    doc = read_results(tmp_path)
    assert doc["hypervisor_version"].startswith("Xen 4.17"), doc["hypervisor_version"]
    vendors = {r["firmware"]: next(ln for ln in r["probe"] if " FW " in ln) for r in doc["results"]}
    assert "vendor=EDK II" in vendors["edk2"] and "vendor=Das U-Boot" in vendors["u-boot"], vendors
    assert not doc["orphan_vms_killed"]
    html = (tmp_path / "latest" / "report.html").read_text()
    assert "Xen 4.17" in html and "EDK II" in html and "Das U-Boot" in html


def test_a_domu_that_hangs_is_destroyed_and_leaves_nothing(xen, tmp_path):
    """A disk without a boot file: EDK2 falls back to its shell (a dead end); the domU must be destroyed."""
    disk = tmp_path / "noboot.img"
    build_disk(DiskSpec(files=(EspFile("EFI/README.TXT", b"no loader\n"),), seed="xen-noboot")).save(disk)
    fw = config.resolve_firmware(xen.entry, "edk2", "aarch64")
    r = runner.boot(xen, "aarch64", (disk,), fw, None, tmp_path / "run", 180, tag=f"{tmp_path}/case")
    assert r.stop.reason in ("dead-end", "timeout"), r.describe()
    assert r.exit_status is None  # killed by the harness: xl destroy
    vm = xen._vm
    assert vm is not None and vm.alive()
    from vmconform.assets.xen_host import b64

    listing = vm.channel.request("run", b64("xl list"), timeout=60)
    domains = listing.payload.decode()
    assert "vmc" not in domains, domains  # only Domain-0 is left
    loops = vm.channel.request("run", b64("losetup -a"), timeout=60).payload.decode()
    assert "noboot" not in loops and not list(vm.share.iterdir()), loops


def test_a_host_that_cannot_start_is_an_error_with_its_words(xen, tmp_path):
    """A host build whose disk is gone: QEMU refuses at once; the boot is the hypervisor's error, never a fail."""
    build = dataclasses.replace(xen.xen_host(), folder=tmp_path / "no-such-host")
    broken = XenBackend(xen.entry)
    broken._build = build
    disk = cases.write_image(cases.find("aarch64"), "xenbroken", tmp_path / "disk.img")
    fw = config.resolve_firmware(xen.entry, "edk2", "aarch64")
    tag = f"{tmp_path}/case"
    try:
        r = runner.boot(broken, "aarch64", (disk,), fw, "xenbroken", tmp_path / "run", 180, tag=tag)
    finally:
        broken.close()
    status, evidence = boot_failure(r)
    assert status == "error", evidence
    assert "the hypervisor could not run the VM" in evidence and "QEMU exited" in evidence, evidence
    assert not reaper.find(str(tmp_path)), "the failed host VM was left running"
