"""The OS probe as a Xen domU: Linux on the PV console (hvc0) with a PV disk, judged by what Xen gives a guest.

Verdicts from lines a real domU printed (xen/u-boot, 2026-12-04), a harness failure that must stay an error, and
real boots in the nested Xen host: Debian's kernel boots through U-Boot (fixed) and sees its PV disk; through
EDK2 ArmVirtXen it stops in xen_guest_init (the firmware leaves Xen's shared_info page mapped), a finding; a domU
that powered off with its PV disk connected leaves nothing that stops the next one's disk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vmconform import config
from vmconform.osprobe import run as osrun
from vmconform.osprobe.facts import OsFacts
from vmconform.probe.protocol import format_line, parse_line
from vmconform.verdicts import osprobe as vos
from vmconform.vm import VmShape

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20

DOMU = [
    ("OSBOOT", [], {"arch": "aarch64", "release": "6.1.0-57-arm64", "acpi": "no", "dt": "yes", "cmdline": "a"}),
    ("OSCPU", [], {"online": "0-3", "present": "0-3", "count": "4"}),
    ("OSPSCI", [], {"text": "[,0.000000],psci:,PSCIv1.1,detected,in,firmware."}),
    ("OSSMP", [], {"secondaries": "3", "failed": "0", "brought": "Brought,up,1,node,4,CPUs"}),
    ("OSMEM", [], {"memtotal_kb": "487216", "system_ram": "536772608"}),
    ("OSPCI", [], {"count": "0", "devices": ""}),
    ("OSDEV", [], {"uart": "none", "console": "hvc0", "virtio": "", "xen": "vbd-51712/vbd/vbd", "gic": "GICv3",
                   "irqchip": "GICv3", "timer": "virt", "clocksource": "arch_sys_counter"}),
    ("END", [], {"uptime": "2.3"}),
]  # fmt: skip


def _lines(nonce, items):
    return [parse_line(format_line(nonce, key, args, fields)) for key, args, fields in items]


def _boot(lines, *, acpi=False, reason="matched", tail="", status=0):
    r = dataclasses.make_dataclass("R", ["stop", "transcript", "exit_status", "foreign", "tail", "command"])
    s = dataclasses.make_dataclass("S", ["reason", "detail", "line"])
    result = r(s(reason, "the VM process ended" if reason == "exited" else "", ""), Path("t.log"), status, (), tail,
               ("xl", "create", "-F", "domu.cfg"))  # fmt: skip
    return osrun.OsBoot(result, OsFacts.from_lines(lines), acpi, "facts", "", None, (995.0, 1005.0))  # type: ignore[arg-type]


def _without_disk():
    out = [(k, a, dict(f)) for k, a, f in DOMU]
    out[6][2]["xen"] = ""
    return out


def test_a_domu_is_described_by_its_pv_console_and_pv_disk():
    b = _boot(_lines("x1", DOMU))
    assert b.facts.xen == (("vbd", "vbd"),) and b.facts.boot_disk_driver == "xen-blkfront"
    ok, evidence = vos.described_boot(b)
    assert ok, evidence
    assert "console hvc0 (Xen PV console)" in evidence and "Xen PV vbd:vbd" in evidence
    plat1 = next(v for v in vos.platform(b, VmShape(4, 512 * MiB), (995.0, 1005.0), "2.0") if v.clause == "PLAT-1")
    assert plat1.status == "pass" and "xenbus: vbd-51712/vbd/vbd" in plat1.evidence, plat1.evidence


def test_a_domu_without_its_pv_disk_fails_with_the_reason():
    b = _boot(_lines("x2", _without_disk()))
    ok, evidence = vos.described_boot(b)
    assert not ok and "the boot disk (bound to virtio_blk, or xen-blkfront" in evidence, evidence
    (v,) = vos.description({"dt": b}, "arm", "2.0")  # one DT boot: judged alone
    assert v.status == "fail"


def test_a_domu_that_xl_could_not_create_is_an_error_never_a_fail():
    tail = "xl: dom0: create failed: xl create failed: libxl: error: ...: Domain 5:Destruction of domain failed"
    failed = _boot([], reason="exited", tail=tail, status=1)
    good = _boot(_lines("x3", DOMU))
    (v25,) = vos.description({"acpi": failed, "dt": good}, "aarch64", "2.0")
    assert v25.status == "error" and "Linux never reached /init" in v25.evidence, v25
    statuses = {v.clause: v.status for v in vos.platform(failed, VmShape(4, 512 * MiB), (995.0, 1005.0), "2.0")}
    assert statuses == dict.fromkeys(("PLAT-1", "V2-3", "PLAT-5", "FW-9"), "error")


# --- real boots in the nested Xen host ------------------------------------------------------------------------


@pytest.mark.boot
def test_linux_boots_as_a_domu_through_u_boot_and_stops_in_xen_guest_init_through_edk2(xen, tmp_path):
    from vmconform.osprobe.assets import parts

    p = parts("aarch64")
    uboot = config.resolve_firmware(xen.entry, "u-boot", "aarch64")
    vm = osrun.OsProbeVm(xen, p, uboot, tmp_path / "u", tmp_path / "u-out", 600, tag=f"{tmp_path}/u")
    b = osrun.boot_os(vm, "xenos1", acpi=False)
    assert b.facts.finished and "console=hvc0" in b.cmdline, b.result.describe()
    assert b.facts.cpus_online == (0, 1, 2, 3) and ("vbd", "vbd") in b.facts.xen, b.facts
    ok, evidence = vos.described_boot(b)
    assert ok, evidence
    # that domU powered off with its PV disk connected: the next domU's disk (the same loop device) must attach
    edk2 = config.resolve_firmware(xen.entry, "edk2", "aarch64")
    vm = osrun.OsProbeVm(xen, p, edk2, tmp_path / "e", tmp_path / "e-out", 600, tag=f"{tmp_path}/e")
    e = osrun.boot_os(vm, "xenos2", acpi=False)
    assert e.result.stop.reason == "dead-end" and "panicked" in e.result.stop.detail, e.result.describe()
    assert "kernel BUG at arch/arm64/xen/../../arm/xen/enlighten.c" in e.result.transcript.read_text()
    (hw2,) = vos.description({"dt": e}, "aarch64", "1.0")
    assert hw2.status == "fail" and "Linux never reached /init" in hw2.evidence, hw2


@pytest.mark.boot
def test_a_pv_disk_and_a_vif_hot_plugged_into_a_running_domu_appear_and_go(xen, tmp_path, monkeypatch):
    """PLAT-6 on Xen: xl block-attach / network-attach while Linux runs in the domU (U-Boot fixed), the guest sees
    xvdb and eth0 appear and go; nothing of the disk stays in dom0; xl's refusal is the hypervisor's, in its words."""
    from vmconform.assets.xen_host import b64
    from vmconform.hypervisors import HotplugRefused
    from vmconform.osprobe.assets import parts

    controls = []
    make = xen.hotplug

    def keep(*args):
        variant, control = make(*args)
        controls.append(control)
        return variant, control

    monkeypatch.setattr(xen, "hotplug", keep)
    uboot = config.resolve_firmware(xen.entry, "u-boot", "aarch64")
    vm = osrun.OsProbeVm(xen, parts("aarch64"), uboot, tmp_path / "w", tmp_path / "out", 600, tag=f"{tmp_path}/hp")
    o = osrun.hotplug_flow(vm, "xenhp1")
    (v,) = vos.hotplug(o, "2.0")
    assert v.status == "pass", v.evidence
    assert "xl block-attach" in v.evidence and "xl network-attach" in v.evidence and "mac=00:16:3e:" in v.evidence
    assert "the guest saw block xvdb, network eth0" in v.evidence and "left none, none" in v.evidence, v.evidence
    assert o.removed == ("vmc-hp-blk", "vmc-hp-net") and not o.refused and not o.broken
    host = xen._host.vm
    msg = host.channel.request("run", b64("losetup -a; ls /work"), timeout=60)
    left = msg.payload.decode()
    assert "vmc-hp-blk" not in left, left
    # the domU is gone now: xl refuses a device for it, and the control says so as a refusal, not a broken channel
    with pytest.raises(HotplugRefused, match="network-attach|plug") as refused:
        controls[0].add("net", "vmc-late", 1)
    assert "dom0: plug failed: xl: " in str(refused.value) and "(xl list: " in str(refused.value), refused.value
    # a request the agent refuses to pass on is the harness's fault: an OSError (error), never a refusal (fail)
    with pytest.raises(OSError, match="plug: want blk /dev/loopN") as bad:
        controls[0]._ask("plug", "1", "blk", "/etc/passwd", "xvdq")
    assert not isinstance(bad.value, HotplugRefused)


def test_a_broken_hot_plug_control_is_an_error_and_a_refusal_a_fail():
    """The channel to the hypervisor broke (a fault made up here: a real one needs the host to die mid-request)."""
    ready = ("OSHOTPLUG", ["ready"], {"blk": "xvda", "net": "", "pci": "", "slots": ""})
    b = _boot(_lines("x4", [*DOMU[:-1], ready, DOMU[-1]]))
    where = "Xen PV devices (xl block-attach / network-attach into the running domU; no PCI ports involved)"
    broken = osrun.HotplugOutcome(b, 2, (), "", (), where, "", "dom0 did not answer plug within 120 s")
    (v,) = vos.hotplug(broken, "2.0")
    assert v.status == "error" and "the harness's hot-plug control failed: dom0 did not answer" in v.evidence
    refused = dataclasses.replace(broken, refused="dom0: plug failed: libxl: error: device add failed", broken="")
    (v,) = vos.hotplug(refused, "2.0")
    assert v.status == "fail" and v.evidence.startswith(where + ": the hypervisor refused: dom0: plug failed")
