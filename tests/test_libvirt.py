"""The libvirt backend: the domain XML it generates, its configuration keys, and real boots through libvirtd.

Real boots (markers ``boot`` and ``libvirt``) need libvirt's daemon on qemu:///system (scripts/start-libvirt);
they fail, naming the fix, when it does not answer.
"""

import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from host_tools import require
from run_records import read_results

from vmconform import cases, config, reaper, runner
from vmconform.firmware import Firmware, copy_vars_template
from vmconform.hypervisors import BootRequest, Disk, GicUnsupported, backend_for
from vmconform.hypervisors import libvirt as lv
from vmconform.image import DiskSpec, EspFile, build_disk

REPO = Path(__file__).resolve().parent.parent
QEMU_NS = "{http://libvirt.org/schemas/domain/qemu/1.0}"

ENTRY = """\
default: lv
hypervisors:
  lv:
    backend: libvirt
    accel: tcg
    timeout: 30
    arches:
      aarch64: {binary: qemu-system-aarch64, machine: virt, cpu: cortex-a57, memory: 512M}
    firmwares:
      edk2:
        aarch64: auto
"""

CODE = Path("/vendor/fw/CODE.fd")
TEMPLATE = Path("/vendor/fw/VARS.fd")
EDK2 = Firmware("edk2", "aarch64", CODE, TEMPLATE, source="test")
ROM = Firmware("u-boot", "aarch64", Path("/vendor/u-boot.bin"), None, source="test", mapping="bios")


def entry(tmp_path: Path, text: str = ENTRY) -> config.HypervisorEntry:
    p = tmp_path / "hypervisors.yaml"
    p.write_text(text)
    return config.load(p).get(None)


def request(tmp_path: Path, fw: Firmware = EDK2, disks=None, tag: str = "run-1/case-a") -> BootRequest:
    work = tmp_path / "work"
    disks = disks if disks is not None else (tmp_path / "disk.img",)
    vars_path = work / "vars.fd" if fw.vars_template is not None else None
    return BootRequest("aarch64", tuple(disks), fw, work, vars_path, tag=tag)


def xml_of(e: config.HypervisorEntry, req: BootRequest, run_as=(1000, 1001)) -> ET.Element:
    return ET.fromstring(lv.domain_xml(e, req, "/usr/bin/qemu-system-aarch64", run_as))


# --- the domain XML ------------------------------------------------------------------------


def test_domain_xml_edk2_two_disks(tmp_path):
    e = entry(tmp_path)
    second = Disk(tmp_path / "fallback.img", logical_block_size=4096, read_only=True)
    req = request(tmp_path, disks=(tmp_path / "disk.img", second))
    dom = xml_of(e, req)
    assert dom.tag == "domain" and dom.get("type") == "qemu"
    assert dom.findtext("name") == lv.domain_name(req) and dom.findtext("name").startswith("vmconform-")
    assert dom.find(f"metadata/{{{lv.METADATA_NS}}}boot").get("tag") == "run-1/case-a"
    assert "VMCONFORM_TAG=run-1/case-a" in dom.findtext("description")
    assert dom.find("memory").attrib == {"unit": "MiB"} and dom.findtext("memory") == "512"
    assert dom.find("os/type").attrib == {"arch": "aarch64", "machine": "virt"}
    loader = dom.find("os/loader")
    assert loader.text == str(CODE) and loader.get("readonly") == "yes" and loader.get("type") == "pflash"
    nvram = dom.find("os/nvram")
    assert nvram.text == str(req.vars_path) and nvram.get("template") is None  # the per-boot copy, never the vendor's
    assert str(TEMPLATE) not in lv.domain_xml(e, req, "/usr/bin/qemu-system-aarch64", None)
    assert dom.find("os/bootmenu").attrib == {"enable": "yes", "timeout": "0"}
    assert dom.find("os/boot") is None  # per-disk boot order instead
    assert dom.find("features/acpi") is not None
    assert dom.find("cpu/model").text == "cortex-a57" and dom.find("cpu").get("mode") == "custom"
    assert [dom.findtext(x) for x in ("on_poweroff", "on_reboot", "on_crash")] == ["destroy", "restart", "destroy"]
    assert dom.findtext("devices/emulator") == "/usr/bin/qemu-system-aarch64"

    # no network, no graphics, no USB, no balloon; one pty serial console
    for absent in ("interface", "graphics", "video", "input", "sound", "channel", "hostdev", "redirdev"):
        assert dom.find(f".//{absent}") is None, absent
    assert dom.find("devices/controller[@type='usb']").get("model") == "none"
    assert dom.find("devices/memballoon").get("model") == "none"
    assert dom.find("devices/serial").get("type") == "pty"
    assert dom.find("devices/console/target").attrib == {"type": "serial", "port": "0"}

    d1, d2 = dom.findall("devices/disk")
    assert d1.find("source").get("file") == str(tmp_path / "disk.img") and d2.find("source").get("file") == str(
        second.path
    )
    assert [d.find("target").attrib for d in (d1, d2)] == [
        {"dev": "vda", "bus": "virtio"},
        {"dev": "vdb", "bus": "virtio"},
    ]
    assert [d.find("driver").get("type") for d in (d1, d2)] == ["raw", "raw"]
    assert [d.find("boot").get("order") for d in (d1, d2)] == ["1", "2"]
    assert d1.find("blockio") is None and d1.find("readonly") is None
    assert d2.find("blockio").attrib == {"logical_block_size": "4096", "physical_block_size": "4096"}
    assert d2.find("readonly") is not None

    label = dom.find("seclabel")
    assert (
        label.attrib == {"type": "static", "model": "dac", "relabel": "no"} and label.findtext("label") == "+1000:+1001"
    )
    assert dom.find(f"{QEMU_NS}commandline/{QEMU_NS}env").attrib == {"name": "VMCONFORM_TAG", "value": "run-1/case-a"}


def test_domain_xml_boot_rom_has_no_nvram_and_no_acpi(tmp_path):
    dom = xml_of(entry(tmp_path), request(tmp_path, fw=ROM))
    assert dom.find("os/loader").attrib == {"type": "rom"} and dom.find("os/loader").text == "/vendor/u-boot.bin"
    assert dom.find("os/nvram") is None
    assert dom.find("features") is None  # libvirt allows ACPI only with UEFI on pflash


def test_domain_xml_follows_the_entry(tmp_path):
    text = (
        ENTRY.replace("accel: tcg", "accel: kvm")
        .replace("machine: virt,", "machine: 'virt,acpi=off,gic-version=3',")
        .replace("cpu: cortex-a57", "cpu: 'host,pmu=off'")
        .replace("memory: 512M", "memory: 2G, extra_args: [-smp, '2']")
    )
    dom = xml_of(entry(tmp_path, text), request(tmp_path), run_as=None)
    assert dom.get("type") == "kvm"
    assert dom.find("features/acpi") is None and dom.find("features/gic").get("version") == "3"
    assert dom.find("cpu").get("mode") == "host-passthrough"
    assert dom.find("cpu/feature").attrib == {"policy": "disable", "name": "pmu"}
    assert dom.find("memory").attrib == {"unit": "GiB"} and dom.findtext("memory") == "2"
    assert [a.get("value") for a in dom.iter(f"{QEMU_NS}arg")] == ["-smp", "2"]
    assert dom.find("seclabel") is None  # run_as: libvirt -> libvirt's own user and labels


def test_domain_names_are_unique_per_boot_and_stable(tmp_path):
    a, b = request(tmp_path / "a"), request(tmp_path / "b")
    assert lv.domain_name(a) == lv.domain_name(request(tmp_path / "a")) != lv.domain_name(b)
    assert lv.domain_name(a) != lv.domain_name(request(tmp_path / "a", tag="run-2/case-a"))


def test_command_starts_a_transient_paused_domain_with_its_console(tmp_path):
    require("virsh")
    req = request(tmp_path)
    argv = backend_for(entry(tmp_path)).command(req)
    assert argv[1:] == ["-c", "qemu:///system", "create", "--paused", "--console", "--autodestroy",
                        str(req.workdir / "domain.xml")]  # fmt: skip
    assert "define" not in argv


@pytest.mark.parametrize(
    ("events", "clean"),
    [
        (["Started Booted", "Suspended Paused", "Resumed Unpaused", "Shutdown Finished after guest request"], True),
        (["Started Booted", "Resumed Unpaused", "Stopped Shutdown"], True),
        (["Started Booted", "Shutdown Finished after host request", "Stopped Destroyed"], False),
        (["Started Booted", "Shutdown Finished after host request", "Stopped Shutdown"], False),
        (["Started Booted", "Stopped Crashed"], False),
        (["Started Booted", "Stopped Failed"], False),
        (["Started Booted", "Resumed Unpaused"], None),
    ],
)
def test_lifecycle_events_decide_a_clean_power_off(events, clean):
    text = "".join(f"event 'lifecycle' for domain 'vmconform-x': {e}\n" for e in events)
    text += "event 'lifecycle' for domain 'other': Stopped Destroyed\n"
    assert lv.lifecycle_events(text, "vmconform-x") == events
    assert lv.guest_powered_off(events) is clean


# --- configuration -----------------------------------------------------------------------


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(config.ConfigError) as ei:
        backend_for(entry(tmp_path, text))
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def test_libvirt_keys_have_defaults(tmp_path):
    e = entry(tmp_path)
    assert e.backend == "libvirt" and e.options == {"uri": "qemu:///system", "run_as": "caller"}
    e = entry(tmp_path, ENTRY.replace("accel: tcg", "accel: tcg\n    uri: qemu+ssh://lab/system\n    run_as: libvirt"))
    assert e.options == {"uri": "qemu+ssh://lab/system", "run_as": "libvirt"}
    assert backend_for(e).uri == "qemu+ssh://lab/system"


def test_unknown_key_in_a_libvirt_entry(tmp_path):
    msg = load_error(tmp_path, ENTRY.replace("accel: tcg", "accel: tcg\n    urii: qemu:///system"))
    assert msg.startswith(f"{tmp_path / 'hypervisors.yaml'}:6: hypervisors.lv.urii: unknown key; allowed here: ")
    assert "run_as" in msg and "uri" in msg


def test_libvirt_keys_are_unknown_to_a_qemu_entry(tmp_path):
    text = ENTRY.replace("backend: libvirt", "backend: qemu").replace(
        "accel: tcg", "accel: tcg\n    uri: qemu:///system"
    )
    msg = load_error(tmp_path, text)
    assert ":6: hypervisors.lv.uri: unknown key; allowed here: " in msg and "run_as" not in msg


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("accel: tcg", "accel: tcg\n    uri: ''"), ":6: hypervisors.lv.uri: must be a non-empty string"),
        (
            ("accel: tcg", "accel: tcg\n    run_as: me"),
            ":6: hypervisors.lv.run_as: 'me' is not one of: caller, libvirt",
        ),
        (("machine: virt,", "machine: 'virt,highmem=off',"), "aarch64.machine: machine option 'highmem=off' has no"),
        (("memory: 512M", "memory: lots"), "hypervisors.lv.arches.aarch64.memory: memory 'lots' is not a size"),
        (("cpu: cortex-a57", "cpu: 'cortex-a57,sve'"), "hypervisors.lv.arches.aarch64.cpu: cpu option 'sve' is not"),
    ],
)
def test_bad_libvirt_settings_give_one_line(tmp_path, change, expected):
    assert expected in load_error(tmp_path, ENTRY.replace(*change))


def test_repository_entry_loads_and_resolves():
    e = config.load(REPO / "hypervisors.yaml").get("libvirt")
    assert e.backend == "libvirt" and e.accel == "tcg" and set(e.arches) == {"aarch64", "arm"}
    assert e.options["uri"] == "qemu:///system" and list(e.firmwares) == ["edk2", "u-boot", "edk2-sb", "edk2-ms"]
    assert config.resolve_firmware(e, "edk2", "aarch64").code.name == "AAVMF_CODE.fd"
    assert config.resolve_firmware(e, "u-boot", "aarch64").mapping == "bios"


# --- real boots through libvirtd -------------------------------------------------------------

URI = "qemu:///system"


def virsh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True, timeout=60)


def live_domains() -> set[str]:
    return set(virsh("list", "--all", "--name").stdout.split())


@pytest.fixture(scope="module")
def libvirt():
    e = config.load(REPO / "hypervisors.yaml").get("libvirt")
    if shutil.which("virsh") is None:
        pytest.fail("virsh not found: install libvirt-daemon-system libvirt-clients, then run scripts/start-libvirt",
                    pytrace=False)  # fmt: skip
    backend = backend_for(e)
    try:
        backend.preflight()
        config.check_ready(e, ["aarch64"], ["edk2"])
    except config.ConfigError as err:
        pytest.fail(str(err), pytrace=False)
    return backend


@pytest.fixture
def tag(libvirt, tmp_path):
    """This test's boot tag, ``<run id>/case``; afterwards the run's sweep must find no domain left behind."""
    yield f"{tmp_path}/case"
    assert libvirt.sweep(str(tmp_path)) == [], "a domain outlived its boot"
    assert not [log for log in lv.QEMU_LOG_DIR.glob("vmconform-*.log") if str(tmp_path) in log.read_text()]


def no_loader_disk(path: Path) -> Path:
    build_disk(DiskSpec(files=(EspFile("EFI/README.TXT", b"no loader here\n"),), seed="no-loader")).save(path)
    return path


def reference_boot(libvirt, tmp_path: Path, tag: str, fwname: str = "edk2", nonce: str | None = None, timeout=60.0):
    fw = config.resolve_firmware(libvirt.entry, fwname, "aarch64")
    nonce = nonce or cases.new_nonce()
    disk = cases.write_image(cases.find("aarch64"), nonce, tmp_path / "disk.img")
    r = runner.boot(libvirt, "aarch64", (disk,), fw, nonce, tmp_path / "run", timeout=timeout, tag=tag)
    return r, lv.domain_name(BootRequest("aarch64", (disk,), fw, tmp_path / "run", None, tag=tag))


@pytest.mark.boot
@pytest.mark.libvirt
def test_reference_image_boots_through_libvirt(libvirt, tmp_path, tag):
    r, name = reference_boot(libvirt, tmp_path, tag)
    assert r.stop.reason == "matched", r.describe()
    r.expect("BOOT", "aarch64")
    assert r.expect("FW").fields["vendor"] == "EDK II"
    r.expect("END", "shutdown")
    r.expect_clean_poweroff()
    log = (tmp_path / "run" / "console.log").read_text()
    assert log.count(f"VMCONFORM {r.nonce} ") == 4  # BOOT, FW, SECUREBOOT, END
    assert log.index("Escape character is") < log.index("UEFI firmware")  # attached before the firmware ran
    assert name not in live_domains()
    qemu_cmd = (tmp_path / "run" / "libvirt-qemu.log").read_text()  # the QEMU command line libvirt generated
    assert "-boot menu=on,splash-time=0" in qemu_cmd and "-no-acpi" not in qemu_cmd
    assert str(tmp_path / "run" / "vars.fd") in qemu_cmd and "AAVMF_VARS.fd" not in qemu_cmd
    assert "-netdev" not in qemu_cmd and "-nic " not in qemu_cmd
    assert not (lv.QEMU_LOG_DIR / f"{name}.log").exists()  # moved into the work folder


@pytest.mark.boot
@pytest.mark.libvirt
def test_u_boot_boots_through_libvirt_as_a_rom(libvirt, tmp_path, tag):
    r, _ = reference_boot(libvirt, tmp_path, tag, fwname="u-boot")
    r.expect("BOOT", "aarch64")
    assert r.expect("FW").fields["vendor"] == "Das U-Boot"
    r.expect_clean_poweroff()
    assert "-bios /usr/lib/u-boot/qemu_arm64/u-boot.bin" in (tmp_path / "run" / "libvirt-qemu.log").read_text()


@pytest.mark.boot
@pytest.mark.libvirt
def test_a_timed_out_boot_leaves_no_domain(libvirt, tmp_path, tag):
    r, name = reference_boot(libvirt, tmp_path, tag, timeout=0.05)
    assert r.stop.reason == "timeout" and r.exit_status is None
    assert name not in live_domains() and not [d for d in lv.our_domains(URI) if d.tag == tag]


@pytest.mark.boot
@pytest.mark.libvirt
def test_a_dead_end_is_killed_and_its_domain_destroyed(libvirt, tmp_path, tag):
    fw = config.resolve_firmware(libvirt.entry, "edk2", "aarch64")
    disk = no_loader_disk(tmp_path / "disk.img")
    r = runner.boot(libvirt, "aarch64", (disk,), fw, "cccccccccccc", tmp_path / "run", timeout=60, tag=tag)
    assert r.stop.reason == "dead-end" and "UEFI Shell" in r.stop.detail, r.describe()
    assert r.exit_status is None
    assert not [d for d in lv.our_domains(URI) if d.tag == tag]


def start_shell_boot(libvirt, tmp_path: Path, tag: str):
    """A domain that never powers off by itself (the firmware ends in the UEFI Shell)."""
    fw = config.resolve_firmware(libvirt.entry, "edk2", "aarch64")
    work = tmp_path / "run"
    work.mkdir()
    req = BootRequest("aarch64", (no_loader_disk(tmp_path / "disk.img"),), fw, work,
                      copy_vars_template(fw, work / "vars.fd"), tag=tag)  # fmt: skip
    return req, libvirt.start(req)


@pytest.mark.boot
@pytest.mark.libvirt
def test_a_domain_destroyed_from_outside_is_not_a_clean_power_off(libvirt, tmp_path, tag):
    req, console = start_shell_boot(libvirt, tmp_path, tag)
    with console:
        assert lv.domain_name(req) in live_domains()
        assert virsh("destroy", lv.domain_name(req)).returncode == 0
        assert console.wait_exit(15) == 1
    log = console.log_path.read_text()
    assert "vmconform: libvirt: domain" in log and "stopped without a guest power-off" in log
    assert "Stopped Destroyed" in log


@pytest.mark.boot
@pytest.mark.libvirt
def test_sweep_destroys_the_runs_leftover_domains_only(libvirt, tmp_path, tag):
    run_id = str(tmp_path)
    req, console = start_shell_boot(libvirt, tmp_path, tag)
    with console:
        name = lv.domain_name(req)
        assert libvirt.sweep(f"{run_id}-other") == [] and name in live_domains()
        # The process sweep sees the virsh console and, through <qemu:env>, the domain's QEMU.
        assert any("qemu-system-aarch64" in p.command for p in reaper.find(run_id))
        assert libvirt.sweep(run_id) == [lv.LeftoverDomain(name, tag)]
        assert name not in live_domains()
        assert console.wait_exit(15) == 1
    deadline = time.monotonic() + 10
    while reaper.find(run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reaper.find(run_id) == []


@pytest.mark.libvirt
def test_sweep_removes_only_the_runs_qemu_logs(libvirt, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "vmconform-0000000000000001.log").write_text(f"LC_ALL=C \\\nVMCONFORM_TAG={tmp_path}/run/a \\\n")
    (logs / "vmconform-0000000000000002.log").write_text(f"LC_ALL=C \\\nVMCONFORM_TAG={tmp_path}/other/a \\\n")
    (logs / "someone-else.log").write_text(f"VMCONFORM_TAG={tmp_path}/run/a\n")
    assert lv.sweep(URI, f"{tmp_path}/run", log_dir=logs) == []
    assert sorted(p.name for p in logs.iterdir()) == ["someone-else.log", "vmconform-0000000000000002.log"]


@pytest.mark.boot
@pytest.mark.libvirt
def test_a_domain_libvirt_refuses_is_an_exit_with_libvirts_error(libvirt, tmp_path, tag):
    fw = config.resolve_firmware(libvirt.entry, "edk2", "aarch64")
    disk = tmp_path / "missing.img"  # libvirt cannot start QEMU on a disk that does not exist
    r = runner.boot(libvirt, "aarch64", (disk,), fw, "eeeeeeeeeeee", tmp_path / "run", timeout=60, tag=tag)
    assert r.stop.reason == "exited" and r.exit_status == 1, r.describe()
    assert "error: Failed to create domain" in r.tail and str(disk) in r.tail


def test_with_gic_sets_the_domains_gic_version(tmp_path):
    backend = backend_for(entry(tmp_path))
    assert backend.gic_versions("aarch64") == backend.entry.arches["aarch64"].gic_versions
    for version in (2, 3):
        root = xml_of(backend.with_gic("aarch64", version).entry, request(tmp_path))
        assert root.find("features/gic").get("version") == str(version)
    with pytest.raises(GicUnsupported, match="takes 2, 3 or 4"):
        backend.with_gic("aarch64", 5)


@pytest.mark.boot
@pytest.mark.libvirt
def test_v2_7_boots_each_gic_version_through_libvirt(libvirt, tmp_path):
    """V2-7 on libvirt (an `error` before backends declared GIC variants): one domain per GIC version."""
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_platform.py", "-k", "gic",
         "--hypervisor=libvirt", "--arch", "aarch64", f"--reports-dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:]
    doc = read_results(tmp_path)
    (v2_7,) = [c for c in doc["clauses"] if c["clause"] == "V2-7"]
    assert v2_7["status"] == "pass", v2_7
    assert "gic-version=2" in v2_7["evidence"][0] and "gic-version=3" in v2_7["evidence"][0]


def test_probe_lines_the_console_lost_are_read_from_the_serial_log(tmp_path):
    """The recovery step itself, on a log as virtlogd writes it (the loss cannot be produced on demand)."""
    from vmconform.console import Stop
    from vmconform.runner import _recover

    log = tmp_path / "serial.log"
    lines = ["UEFI firmware (version ...)", "VMCONFORM n1 BOOT aarch64 path=\\EFI\\BOOT\\BOOTAA64.EFI",
             "VMCONFORM n1 FW vendor=EDK II", "VMCONFORM n1 END shutdown"]  # fmt: skip
    log.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    fed: list[str] = []

    def matcher(text: str) -> str | None:
        fed.append(text)
        return "the probe reported END" if " END " in text else None

    exited = Stop("exited", "the VM process ended (exit status 0)")
    stop = _recover(log, [lines[1]], matcher, exited)
    assert fed == lines[2:]  # only what the console did not see, in order
    assert stop.reason == "matched" and "the console lost 2 probe line(s)" in stop.detail
    assert _recover(None, [], matcher, exited) is exited
    assert _recover(log, lines[1:], matcher, exited) is exited  # nothing lost: nothing decided again


@pytest.mark.boot
@pytest.mark.libvirt
def test_the_serial_log_is_a_second_source(libvirt, tmp_path, tag):
    r, _ = reference_boot(libvirt, tmp_path, tag)
    r.expect_clean_poweroff()
    log = (tmp_path / "run" / "serial.log").read_text(errors="replace")
    assert f"VMCONFORM {r.nonce} END shutdown" in log


@pytest.mark.boot
@pytest.mark.libvirt
def test_parallel_libvirt_runs_give_the_serial_outcomes(libvirt, tmp_path):
    """Under -n 2 the libvirt console once lost the last lines of 3 to 15 cases; both runs must now agree."""
    args = ["suite/test_boot.py", "--hypervisor=libvirt", "--arch", "aarch64"]
    outcomes = []
    for name, extra in (("serial", []), ("parallel", ["-n", "2"])):
        p = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, *extra,
                            f"--reports-dir={tmp_path / name}"], cwd=REPO, capture_output=True, text=True,
                           timeout=900)  # fmt: skip
        doc = read_results(tmp_path / name)
        outcomes.append(({r["test"]: (r["outcome"], r["observed"]) for r in doc["results"]}, p.returncode))
    (serial, rc_serial), (parallel, rc_parallel) = outcomes
    assert len(serial) == 11 and serial == parallel and rc_serial == rc_parallel == 0
