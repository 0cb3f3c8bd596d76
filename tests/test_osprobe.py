"""The OS probe: unified kernel images (read back with pefile), its lines decoded, its verdicts on crafted lines,
and real boots under QEMU TCG on both arches: the facts on ACPI and on the DT, hot-plug with root ports and the
negative control without, runtime variables on a pflash store and the negative control where they are lost."""

import dataclasses
import hashlib
from pathlib import Path

import pefile
import pytest

from vmconform import config, nvram
from vmconform.hypervisors import backend_for
from vmconform.osprobe import run as osrun
from vmconform.osprobe.facts import OsFacts, cpu_list
from vmconform.osprobe.uki import UkiError, pe_sections, unified_kernel_image
from vmconform.probe import build_probe
from vmconform.probe.protocol import format_line, parse_line
from vmconform.verdicts import osprobe as vos
from vmconform.vm import VmShape

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20


# --- unified kernel images -------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_sections_are_added_to_a_pe_and_read_back_by_pefile(arch):
    stub = build_probe(arch, "uki")  # a PE with room in its headers, as the aarch64 stub has
    image = unified_kernel_image(stub, [(".cmdline", b"console=ttyAMA0\0"), (".linux", b"K" * 5000)])
    pe = pefile.PE(data=image)
    names = [s.Name.rstrip(b"\0").decode() for s in pe.sections]
    assert names == [".text", ".cmdline", ".linux"]
    assert pe_sections(image)[".linux"] == b"K" * 5000
    assert pe.FILE_HEADER.Machine == pefile.PE(data=stub).FILE_HEADER.Machine
    last = pe.sections[-1]
    assert pe.OPTIONAL_HEADER.SizeOfImage >= last.VirtualAddress + last.Misc_VirtualSize
    assert image == unified_kernel_image(stub, [(".cmdline", b"console=ttyAMA0\0"), (".linux", b"K" * 5000)])


def test_a_stub_without_room_is_wrapped_whole_at_a_page():
    stub = bytearray(build_probe("arm", "uki"))
    pe = pefile.PE(data=bytes(stub))
    entry = pe.OPTIONAL_HEADER.AddressOfEntryPoint
    # shrink SizeOfHeaders to the end of the section table, as the gnu-efi armhf stub has it
    end = pe.sections[-1].get_file_offset() + 40
    stub[pe.OPTIONAL_HEADER.get_file_offset() + 60 : pe.OPTIONAL_HEADER.get_file_offset() + 64] = end.to_bytes(
        4, "little"
    )
    image = unified_kernel_image(bytes(stub), [(".cmdline", b"x"), (".linux", b"L" * 10), (".initrd", b"I" * 10)])
    out = pefile.PE(data=image)
    text = out.sections[0]
    assert [s.Name.rstrip(b"\0") for s in out.sections] == [b".text", b".cmdline", b".linux", b".initrd"]
    assert text.VirtualAddress == 0x1000 and text.get_data()[: len(stub)] == bytes(stub)
    assert out.OPTIONAL_HEADER.AddressOfEntryPoint == 0x1000 + entry


@pytest.mark.parametrize(
    ("stub", "sections", "why"),
    [
        (b"not a pe" * 10, [(".linux", b"")], "no MZ header"),
        (b"MZ" + bytes(62), [(".linux", b"")], "no PE signature"),
        (None, [("linux", b"")], "must start with '.'"),
        (None, [(".toolongname", b"")], "at most 8 bytes"),
    ],
)
def test_bad_input_is_one_line(stub, sections, why):
    with pytest.raises(UkiError, match=why) as e:
        unified_kernel_image(stub or build_probe("aarch64", "x"), sections)
    assert "\n" not in str(e.value)


# --- lines and verdicts ------------------------------------------------------------------------------------


def _lines(nonce, *items):
    return [parse_line(format_line(nonce, key, args, fields)) for key, args, fields in items]


GOOD = [
    ("OSBOOT", [], {"arch": "aarch64", "release": "6.1.0-57-arm64", "acpi": "yes", "dt": "no", "cmdline": "a,b"}),
    ("OSCPU", [], {"online": "0-3", "present": "0-3", "count": "4"}),
    ("OSPSCI", [], {"text": "[,0.000000],psci:,PSCIv1.1,detected,in,firmware."}),
    ("OSSMP", [], {"secondaries": "3", "failed": "0", "brought": "Brought,up,1,node,4,CPUs"}),
    ("OSMEM", [], {"memtotal_kb": "477484", "system_ram": str(505 * MiB)}),
    ("OSPCI", [], {"count": "2",
                   "devices": "0000:00:00.0/1b36:0008/060000/none,0000:00:01.0/1af4:1001/010000/virtio-pci"}),
    ("OSDEV", [], {"uart": "sbsa-uart", "virtio": "virtio0/0x0002/virtio_blk", "gic": "GICv2", "timer": "virt",
                   "clocksource": "arch_sys_counter"}),
    ("OSRTC", [], {"name": "rtc-efi", "driver": "rtc-efi", "epoch0": "1000", "epoch1": "1002"}),
    ("OSTIMER", [], {"irq": "10", "count0": "100", "count1": "900", "line": "10:,1,2,3,4,GIC-0,27,Level,arch_timer"}),
    ("END", [], {"uptime": "3.0"}),
]  # fmt: skip


def _boot(lines, acpi=True, reason="matched", tail="", command=()):
    result = dataclasses.make_dataclass("R", ["stop", "transcript", "exit_status", "foreign", "tail", "command"])(
        dataclasses.make_dataclass("S", ["reason", "detail", "line"])(reason, "", ""),
        Path("t.log"),
        0,
        (),
        tail,
        command,
    )
    return osrun.OsBoot(result, OsFacts.from_lines(lines), acpi, "facts", "", None, (995.0, 1005.0))  # type: ignore[arg-type]


def test_facts_decode_the_lines():
    f = OsFacts.from_lines(_lines("n1", *GOOD))
    assert f.cpus_online == (0, 1, 2, 3) and cpu_list("0-1,3") == (0, 1, 3) and cpu_list("x") == ()
    assert f.psci_version == (1, 1) and f.memory == 505 * MiB and f.timer_intid == 27
    assert f.description == "ACPI" and f.virtio == (("block", "virtio_blk"),)
    assert [d.driver for d in f.pci] == ["none", "virtio-pci"]


def test_platform_verdicts_pass_on_good_lines_and_fail_with_the_reason():
    shape = VmShape(4, 512 * MiB)
    good = {v.clause: v for v in vos.platform(_boot(_lines("n", *GOOD)), shape, (995.0, 1005.0), "2.0")}
    assert {c: v.status for c, v in good.items()} == {
        "PLAT-1": "pass",
        "V2-3": "pass",
        "PLAT-5": "pass",
        "FW-9": "pass",
    }
    lines = [(k, a, dict(f)) for k, a, f in GOOD]
    lines[1][2]["online"] = "0-2"
    lines[2][2]["text"] = "psci:,PSCIv0.1,detected"
    lines[6][2]["timer"] = "phys"
    lines[7][2]["epoch0"] = "5"
    got = {v.clause: v for v in vos.platform(_boot(_lines("n", *lines)), shape, (995.0, 1005.0), "2.0")}
    assert got["PLAT-1"].status == "fail" and "3 CPUs online, 4 configured" in got["PLAT-1"].evidence
    assert got["V2-3"].status == "fail" and "PSCIv0.1" in got["V2-3"].evidence
    assert got["PLAT-5"].status == "fail" and "phys" in got["PLAT-5"].evidence
    assert got["FW-9"].status == "fail" and "host clock" in got["FW-9"].evidence


def test_description_needs_both_boots_on_aarch64_and_the_dt_alone_on_arm():
    acpi = _boot(_lines("a", *GOOD))
    dt_lines = [(k, a, dict(f)) for k, a, f in GOOD]
    dt_lines[0][2].update(acpi="no", dt="yes")
    dt = _boot(_lines("d", *dt_lines), acpi=False)
    assert {v.clause: v.status for v in vos.description({"acpi": acpi, "dt": dt}, "aarch64", "1.0")} == {"HW-2": "pass"}
    assert [v.status for v in vos.description({"acpi": acpi, "dt": dt}, "aarch64", "2.0")] == ["pass"]
    no_dt = _boot([], acpi=False, reason="dead-end")
    v25 = vos.description({"acpi": acpi, "dt": no_dt}, "aarch64", "2.0")[0]
    assert v25.status == "fail" and "never reached /init" in v25.evidence
    arm = vos.description({"dt": dt}, "arm", "2.0")[0]
    assert arm.status == "pass" and "AArch32 Linux has no ACPI" in arm.evidence
    # the ACPI boot that the kernel took from the DT does not show ACPI
    assert vos.described_boot(_boot(_lines("a", *dt_lines)))[0] is False


# --- real boots --------------------------------------------------------------------------------------------


def _setup(name, arch):
    from vmconform.osprobe.assets import parts

    entry = config.load(REPO / "hypervisors.yaml").get(name)
    config.check_ready(entry, [arch], ["edk2"])
    return entry, backend_for(entry), config.resolve_firmware(entry, "edk2", arch), parts(arch)


@pytest.mark.boot
@pytest.mark.parametrize(("arch", "entry", "acpi"), [("aarch64", "qemu-dt", False)])  # ACPI and arm: the suite below
def test_the_os_probe_boots_and_its_facts_pass(arch, entry, acpi, tmp_path):
    e, backend, fw, parts = _setup(entry, arch)
    b = osrun.boot_os(osrun.OsProbeVm(backend, parts, fw, tmp_path, tmp_path / "out", 120), "osfacts1", acpi=acpi)
    assert b.result.exit_status == 0 and b.facts.finished, b.result.describe()
    ok, evidence = vos.described_boot(b)
    assert ok, evidence
    assert ("sbsa-uart" if acpi else "uart-pl011") in evidence
    verdicts = vos.platform(b, backend.with_cpus(arch, osrun.OS_CPUS).shape(arch), b.host_times, "2.0")
    assert {v.clause: v.status for v in verdicts} == {c: "pass" for c in ("PLAT-1", "V2-3", "PLAT-5", "FW-9")}, verdicts


@pytest.mark.boot
def test_a_dt_boot_without_a_dtb_from_the_firmware_fails_at_once(tmp_path):
    _, backend, fw, parts = _setup("qemu", "aarch64")  # AAVMF on an ACPI virt publishes no DTB
    b = osrun.boot_os(osrun.OsProbeVm(backend, parts, fw, tmp_path, tmp_path / "out", 120), "osnodtb1", acpi=False)
    assert b.result.stop.reason == "dead-end" and "no device tree" in b.result.stop.detail
    assert b.result.elapsed < 60
    ok, evidence = vos.described_boot(b)
    assert not ok and "Generating empty DTB" in evidence


@pytest.mark.boot
@pytest.mark.parametrize("ports", [0])  # with root ports: the suite below
def test_hotplug_passes_with_root_ports_and_fails_without(ports, tmp_path):
    _, backend, fw, parts = _setup("qemu", "aarch64")
    o = osrun.hotplug_flow(
        osrun.OsProbeVm(backend, parts, fw, tmp_path, tmp_path / "out", 120), f"oshp{ports}", ports=ports
    )
    (v,) = vos.hotplug(o, "2.0")
    if ports:
        assert v.status == "pass", v.evidence
        assert "the guest saw block vdb, network eth0" in v.evidence and "left none, none" in v.evidence
    else:
        assert v.status == "fail" and "does not support hotplugging" in v.evidence, v.evidence


@pytest.mark.boot
@pytest.mark.parametrize("ephemeral", [True])  # on a pflash store: the suite below
def test_runtime_variables_persist_on_pflash_and_are_lost_with_snapshot(ephemeral, tmp_path):
    entry, backend, fw, parts = _setup("qemu", "aarch64")
    if ephemeral:
        backend = backend_for(nvram.ephemeral_vars(entry))
    nonce = "osvar" + ("lost" if ephemeral else "kept")
    o = osrun.runtime_variable_flow(osrun.OsProbeVm(backend, parts, fw, tmp_path, tmp_path / "out", 120), nonce)
    (v,) = vos.runtime_variables(o, nonce, "2.0")
    if ephemeral:
        assert v.status == "fail" and "does not have it" in v.evidence, v.evidence
        assert o.host_data is None
    else:
        assert v.status == "pass", v.evidence
        assert o.host_data == nonce.encode() and f"reads '{nonce}'" in v.evidence


def test_parts_are_the_same_bytes_when_built_again(tmp_path):
    from vmconform.assets.debian import Archive
    from vmconform.osprobe import assets

    p = assets.parts("aarch64")
    again = tmp_path / "again"
    again.mkdir()
    assets._build(Archive("bookworm", p.kernel.package.debian_arch), again, p)
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    assert digest(again / "initrd.img") == digest(p.initrd)
    assert p.uki("a b") == p.uki("a b") and p.uki("a b") != p.uki("a c")


@pytest.mark.boot
def test_the_os_suite_on_both_arches(tmp_path):
    """suite/test_os.py as a user runs it, both arches on `qemu` (Debian's AAVMF/AAVMF32): every clause as the
    guest saw it, the one true finding (V2-5: no DTB from AAVMF on an ACPI virt) and a valid results.json."""
    import subprocess
    import sys

    from run_records import read_results

    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_os.py", "-n", "2",
            f"--reports-dir={tmp_path}"]  # fmt: skip
    p = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    doc = read_results(tmp_path)  # validates against results.schema.json
    outcome = {r["test"].split("::")[1]: r["outcome"] for r in doc["results"]}
    verdicts = {(r["test"].split("::")[1], v["clause"]): v for r in doc["results"] for v in r["verdicts"]}
    assert outcome == {
        "test_os_probe[qemu-edk2-aarch64-reference]": "failed",
        "test_os_probe[qemu-edk2-arm-reference]": "passed",
        "test_os_hotplug[qemu-edk2-aarch64-reference]": "passed",
        "test_os_hotplug[qemu-edk2-arm-reference]": "passed",
        "test_os_runtime_variables[qemu-edk2-aarch64-reference]": "passed",
        "test_os_runtime_variables[qemu-edk2-arm-reference]": "passed",
    }, p.stdout[-3000:]
    assert p.returncode == 1 and "MUST clauses failing: V2-5" in p.stdout
    v25 = verdicts[("test_os_probe[qemu-edk2-aarch64-reference]", "V2-5")]
    assert v25["status"] == "fail" and "described by ACPI" in v25["evidence"] and "empty DTB" in v25["evidence"]
    for arch in ("aarch64", "arm"):
        t = f"test_os_probe[qemu-edk2-{arch}-reference]"
        assert {c: verdicts[(t, c)]["status"] for c in ("PLAT-1", "V2-3", "PLAT-5", "FW-9")} == dict.fromkeys(
            ("PLAT-1", "V2-3", "PLAT-5", "FW-9"), "pass"
        )
        fw5 = verdicts[(f"test_os_runtime_variables[qemu-edk2-{arch}-reference]", "FW-5")]
        assert fw5["status"] == "pass" and "the host's store: data=" in fw5["evidence"]
    assert verdicts[("test_os_probe[qemu-edk2-arm-reference]", "V2-5")]["status"] == "pass"
    hp = verdicts[("test_os_hotplug[qemu-edk2-aarch64-reference]", "PLAT-6")]
    assert hp["status"] == "pass" and "vdb" in hp["evidence"] and "eth0" in hp["evidence"]
    arm_hp = verdicts[("test_os_hotplug[qemu-edk2-arm-reference]", "PLAT-6")]
    assert arm_hp["status"] == "error" and "CONFIG_HOTPLUG_PCI" in arm_hp["evidence"]
    row = next(r for r in doc["results"] if r["test"].endswith("test_os_hotplug[qemu-edk2-aarch64-reference]"))
    assert row["os_probe"]["hotplug_actions"][0].startswith("device_add virtio-blk-pci")


@pytest.mark.boot
@pytest.mark.libvirt
def test_the_os_probe_on_libvirt_gets_4_vcpus_and_hot_plugs_through_virsh(tmp_path):
    """The family on the libvirt backend: -smp 4 through qemu:commandline, devices attached and detached live."""
    _, backend, fw, parts = _setup("libvirt", "aarch64")
    backend.preflight()  # one line when libvirtd does not answer (scripts/start-libvirt)
    o = osrun.hotplug_flow(osrun.OsProbeVm(backend, parts, fw, tmp_path, tmp_path / "out", 150), "oslibvirt")
    assert o.boot.facts.field("OSCPU", "online") == "0-3", o.boot.result.describe()
    (v,) = vos.hotplug(o, "2.0")
    assert v.status == "pass", v.evidence
    assert "virsh attach-device --live virtio disk" in v.evidence and "left none, none" in v.evidence


def test_the_shared_kernel_keeps_the_image_and_the_asked_modules_with_their_dependencies():
    from vmconform.assets.cache import AssetError
    from vmconform.assets.kernel import BASE_MODULES, kernel
    from vmconform.osprobe.assets import MODULES

    k = kernel("aarch64", MODULES)
    assert k.image.read_bytes()[:2] == b"MZ" and "CONFIG_EFI_STUB=y" in k.config.read_text()
    assert set(MODULES) <= set(BASE_MODULES) and "virtio_net" in k.modules and "pci_host_generic" in k.builtin()
    kept = {p.name for p in k.folder.rglob("*.ko")}
    assert {"virtio_net.ko", "net_failover.ko", "failover.ko"} <= kept and len(kept) < 20  # deps, and only those
    assert kernel("aarch64").folder == k.folder  # the payloads' call shares the folder
    with pytest.raises(AssetError, match="no Debian kernel for arch 'x86_64'") as e:
        kernel("x86_64")
    assert "\n" not in str(e.value)


@pytest.mark.boot
def test_on_a_secure_boot_firmware_the_os_probe_is_signed_and_unsigned_it_is_refused(tmp_path):
    """edk2-sb (vmconform's test key in db): the kernel and the UKI are signed with it and Linux runs; the same
    image unsigned is refused at once (the firmware's own Access Denied line)."""
    from vmconform.firmware import copy_vars_template
    from vmconform.runner import boot

    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    fw = config.resolve_firmware(entry, "edk2-sb", "aarch64")
    backend = backend_for(entry)
    from vmconform.osprobe.assets import parts

    p = parts("aarch64")
    b = osrun.boot_os(
        osrun.OsProbeVm(backend, p, fw, tmp_path / "s", tmp_path / "s" / "out", 120), "ossigned", mode="var"
    )
    assert b.facts.phase("OSVAR", "set") is not None and b.result.exit_status == 0, b.result.describe()
    disk = osrun.write_os_disk(p, p.cmdline("osunsigned"), tmp_path / "u" / "os.img")  # signed=False
    r = boot(backend.with_cpus("aarch64", 4), "aarch64", (disk,), fw, "osunsigned", tmp_path / "u" / "out", 120,
             vars_path=copy_vars_template(fw, tmp_path / "u" / "vars.fd"))  # fmt: skip
    assert r.stop.reason == "dead-end" and "Access Denied" in r.stop.line, r.describe()
