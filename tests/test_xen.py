"""The xen backend, for real: cases booted as domUs of the nested Xen-on-Arm host (built by scripts/setup.sh test
into the cache), on EDK2 ArmVirtXen and U-Boot xenguest; a domU that hangs is destroyed; a host that cannot
start is an error with its own words, never a fail; a Xen host reached over ssh (the nested host's dom0 given
an ssh server and a NIC: no fake) runs the reference case as the nested channel does and keeps nothing."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from run_records import read_results

from vmconform import cases, config, reaper, runner
from vmconform.assets import cache
from vmconform.assets.xen_host import b64
from vmconform.hypervisors import backend_for
from vmconform.hypervisors.xen import XenBackend
from vmconform.hypervisors.xen_hosts import HostVM
from vmconform.image import DiskSpec, EspFile, build_disk
from vmconform.verdicts import boot_failure

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.boot]


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
    vm = xen._host.vm
    assert vm is not None and vm.alive()
    listing = vm.channel.request("run", b64("xl list"), timeout=60)
    domains = listing.payload.decode()
    assert "vmc" not in domains, domains  # only Domain-0 is left
    loops = vm.channel.request("run", b64("losetup -a"), timeout=60).payload.decode()
    assert "noboot" not in loops and not list(vm.share.iterdir()), loops


def test_a_host_that_cannot_start_is_an_error_with_its_words(xen, tmp_path):
    """A host build whose disk is gone: QEMU refuses at once; the boot is the hypervisor's error, never a fail."""
    build = dataclasses.replace(xen.xen_host(), folder=tmp_path / "no-such-host")
    broken = XenBackend(xen.entry)
    broken._host.build = build
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


def _ssh_key() -> Path:
    """A throwaway ed25519 key for the ssh test host, generated once into the asset cache (ssh-keygen)."""
    key = cache.cache_dir() / "xen" / "ssh-test-key" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        tmp = key.with_name("new")
        tmp.unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmconform-test", "-f", tmp], check=True)
        tmp.with_suffix(".pub").rename(key.with_suffix(".pub"))
        tmp.rename(key)
    return key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SSH_ENTRY = """
default: xen-ssh
hypervisors:
  xen-ssh:
    backend: xen
    xen_host: ssh -p {port} -i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1
    workdir: /var/tmp/vmconform
    accel: tcg
    timeout: 300
    arches:
      aarch64: {{binary: qemu-system-aarch64, machine: virt, cpu: cortex-a57, memory: 512M, gic_versions: [3]}}
    firmwares:
      edk2:
        aarch64: {{xen_domu: edk2, path: /usr/lib/vmconform/firmware/edk2.bin}}
"""


def test_a_xen_host_over_ssh_runs_the_reference_case_as_the_nested_channel_does(xen, tmp_path):
    key = _ssh_key()
    port = _free_port()
    vm = HostVM(xen.xen_host(), f"{tmp_path}/ssh-host", ssh_port=port)
    try:
        vm.serve_ssh(key.with_suffix(".pub").read_text().strip())
        # the reference case through the nested channel, in the same dom0
        nested = XenBackend(xen.entry)
        nested._host.build, nested._host.vm = xen.xen_host(), vm
        fw = config.resolve_firmware(xen.entry, "edk2", "aarch64")
        disk = cases.write_image(cases.find("aarch64"), "xennested", tmp_path / "nested.img")
        r = runner.boot(nested, "aarch64", (disk,), fw, "xennested", tmp_path / "nested", 300, tag=f"{tmp_path}/n")
        assert r.stop.reason == "matched", r.describe()
        fw_nested = r.facts["FW"].raw.split(" FW ", 1)[1]
        # the same case through an entry that reaches that dom0 over ssh only
        (tmp_path / "hv.yaml").write_text(SSH_ENTRY.format(port=port, key=key))
        p = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_boot.py", "-k", "removable",
             f"--hypervisors-file={tmp_path / 'hv.yaml'}", "--hypervisor=xen-ssh", f"--reports-dir={tmp_path}/r"],
            cwd=REPO, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert p.returncode == 0, p.stdout[-4000:]
        doc = read_results(tmp_path / "r")
        assert doc["hypervisor_version"].startswith(f"Xen {vm.xen_version} on aarch64"), doc["hypervisor_version"]
        assert "over ssh" in doc["hypervisor_version"], doc["hypervisor_version"]
        (case,) = doc["results"]
        fw_ssh = next(ln for ln in case["probe"] if " FW " in ln).split(" FW ", 1)[1]
        assert fw_ssh == fw_nested and "vendor=EDK II" in fw_ssh, (fw_ssh, fw_nested)
        assert not doc["orphan_vms_killed"]
        # nothing left on the host: no domU, no loop device, no work folder
        left = vm.channel.request("run", b64("xl list; losetup -a; ls -A /var/tmp/vmconform"), timeout=60)
        out = left.payload.decode()
        assert "vmr" not in out and "/var/tmp/vmconform/" not in out and "vmc-" not in out, out
    finally:
        vm.stop()


def test_a_xen_host_over_ssh_that_cannot_be_reached_is_one_line_with_ssh_s_words(tmp_path):
    port = _free_port()  # nothing listens there
    (tmp_path / "hv.yaml").write_text(SSH_ENTRY.format(port=port, key=tmp_path / "no-key"))
    backend = backend_for(config.load(tmp_path / "hv.yaml").get("xen-ssh"))
    with pytest.raises(config.ConfigError) as err:
        backend.preflight()
    msg = str(err.value)
    assert "xen_host ssh " in msg and "Connection refused" in msg and "\n" not in msg, msg


VUART_ENTRY = """
default: xen-vuart
hypervisors:
  xen-vuart:
    backend: xen
    vuart: sbsa_uart
    timeout: 300
    arches:
      aarch64: {binary: qemu-system-aarch64, machine: virt, cpu: cortex-a57, memory: 512M, gic_versions: [3]}
    firmwares:
      edk2:
        aarch64: {xen_domu: edk2}
"""


def test_vuart_sbsa_uart_gives_the_domu_a_uart_its_dt_names(tmp_path):
    """`vuart: sbsa_uart` (xl's vuart=): the domU's DT has Xen's SBSA UART, so V2-6 and PLAT-3 are judged with it
    (the default entry, Xen's toolstack default of no vuart, fails them: no UART in the DT)."""
    (tmp_path / "hv.yaml").write_text(VUART_ENTRY)
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_hwdesc.py",
         f"--hypervisors-file={tmp_path / 'hv.yaml'}", "--hypervisor=xen-vuart", f"--reports-dir={tmp_path}/r"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    doc = read_results(tmp_path / "r")
    clauses = {c["clause"]: c for c in doc["clauses"]}
    for cid in ("V2-6", "PLAT-3"):
        assert clauses[cid]["status"] == "pass", (clauses[cid], p.stdout[-3000:])
    assert "compatible 'arm,sbsa-uart'" in " ".join(clauses["V2-6"]["evidence"]), clauses["V2-6"]
    assert len(doc["results"]) == 1, doc["results"]
