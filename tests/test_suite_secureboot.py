"""Secure Boot through the suite, as a user runs it (pytest in a subprocess): ``--firmware edk2-sb`` and
``--firmware edk2-ms`` boot the signed probe, which reports enforcement; the unsigned, changed and dbx-signed
probes are refused at once with the firmware's words; the report says what the VM enforces; and the set-up
itself: ``secure_boot:`` in hypervisors.yaml, its one-line errors, the tests collected per firmware."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_records import read_results
from test_suite_run import REPO, run_pytest

from vmconform import config, secureboot
from vmconform.facts import SecureBootFact
from vmconform.probe import parse_line

REFUSED = "the firmware refused the image"


def by_test(tmp_path: Path) -> dict[str, dict]:
    return {r["test"].split("::")[-1]: r for r in read_results(tmp_path)["results"]}


@pytest.mark.boot
def test_secure_boot_cases_on_edk2_sb_and_edk2_ms(tmp_path: Path) -> None:
    p = run_pytest("suite/test_secureboot.py", "--firmware", "edk2-sb", "--firmware", "edk2-ms", "-n", "2",
                   f"--reports-dir={tmp_path}")  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    rows = by_test(tmp_path)
    signed = [k for k in rows if k.startswith("test_signed_probe_runs")]
    refused = [k for k in rows if "refused" in k]
    assert sorted(signed) == [
        "test_signed_probe_runs[qemu-edk2-ms-aarch64-reference]",
        "test_signed_probe_runs[qemu-edk2-sb-aarch64-reference]",
        "test_signed_probe_runs[qemu-edk2-sb-arm-reference]",
    ]
    assert len(refused) == 8  # unsigned + tampered on 3 firmware/arch pairs, revoked on edk2-sb's two arches
    for name in signed:
        row = rows[name]
        assert (row["outcome"], row["stop"], row["probe_signing"]) == ("passed", "matched", "signed"), row
        fw1 = next(v for v in row["verdicts"] if v["clause"] == "FW-1")
        assert (
            fw1["status"] == "pass"
            and "the VM enforces Secure Boot (user mode; PK, KEK, db, dbx set" in fw1["evidence"]
        )
    for name in refused:
        row = rows[name]
        assert (row["outcome"], row["stop"]) == ("passed", "dead-end") and row["stop_detail"].startswith(REFUSED), row
        assert row["probe"] == [], row  # the probe never ran
        fw1 = next(v for v in row["verdicts"] if v["clause"] == "FW-1")
        assert fw1["status"] == "pass" and fw1["evidence"].endswith("portable unsigned images do not boot on this VM")
        assert "Access Denied'" in fw1["evidence"] and "BdsDxe: failed to load Boot0001" in fw1["evidence"]
        images = {v["clause"]: v["status"] for v in row["verdicts"] if v["clause"].startswith("IMG-")}
        assert images == dict.fromkeys(("IMG-1", "IMG-2", "IMG-3", "IMG-4", "IMG-5", "IMG-6"), "pass"), row
    assert rows["test_revoked_key_refused[qemu-edk2-sb-arm-reference]"]["probe_signing"] == "revoked"
    summary = p.stdout[p.stdout.index("=== vmconform ===") :]
    assert "secure boot: edk2-sb/arm: the VM enforces Secure Boot (user mode; PK, KEK, db, dbx set; keys: " in summary
    html = (tmp_path / "latest" / "report.html").read_text()
    assert "<dt>Secure Boot</dt>" in html and "edk2-ms/aarch64: the VM enforces Secure Boot" in html


@pytest.mark.boot
def test_the_whole_boot_module_passes_on_edk2_sb_with_signed_probes(tmp_path: Path) -> None:
    """An ordinary run on a Secure Boot firmware boots signed probes: the reference and must-boot cases pass."""
    p = run_pytest("suite/test_boot.py", "--firmware", "edk2-sb", "--arch", "aarch64", "-n", "2",
                   f"--reports-dir={tmp_path}")  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:]
    rows = by_test(tmp_path)
    assert len(rows) == 11 and {r["probe_signing"] for r in rows.values()} == {"signed"}
    assert {r["secure_boot_keys"] for r in rows.values()} == {"test-key"}


def test_secure_boot_tests_are_collected_only_on_secure_boot_firmwares() -> None:
    plain = run_pytest("--collect-only", "-q", "suite/test_secureboot.py", "suite/test_payloads.py")
    ids = set(plain.stdout.split())
    assert not any("test_secureboot" in i for i in ids), plain.stdout
    assert "suite/test_payloads.py::test_grub[qemu-edk2-arm-reference]" in ids and not any("shim" in i for i in ids)
    sb = run_pytest("--collect-only", "-q", "suite/test_secureboot.py", "suite/test_payloads.py",
                    "--firmware", "edk2-ms")  # fmt: skip
    ids = {i for i in sb.stdout.split() if i.startswith("suite/")}
    assert ids == {
        "suite/test_secureboot.py::test_signed_probe_runs[qemu-edk2-ms-aarch64-reference]",
        "suite/test_secureboot.py::test_untrusted_probe_refused[qemu-edk2-ms-aarch64-reference-unsigned]",
        "suite/test_secureboot.py::test_untrusted_probe_refused[qemu-edk2-ms-aarch64-reference-tampered]",
        "suite/test_payloads.py::test_shim_grub[qemu-edk2-ms-aarch64-reference]",
    }, sb.stdout


def test_secure_boot_firmware_entries_resolve_with_their_keys() -> None:
    hv = config.load(REPO / "hypervisors.yaml")
    for name in ("qemu", "libvirt"):
        entry = hv.get(name)
        got = config.check_ready(entry, ["aarch64", "arm"], ["edk2-sb"])
        assert {k: fw.secure_boot for k, fw in got.items()} == {("edk2-sb", "aarch64"): "test-key",
                                                                 ("edk2-sb", "arm"): "test-key"}  # fmt: skip
        assert got[("edk2-sb", "aarch64")].code == Path("/usr/share/AAVMF/AAVMF_CODE.ms.fd")
        (ms,) = config.check_ready(entry, ["aarch64"], ["edk2-ms"]).values()
        assert ms.secure_boot == "microsoft" and ms.source.endswith(f"hypervisors.{name}.firmwares.edk2-ms.aarch64")
        assert set(entry.firmwares["edk2-ms"]) == {"aarch64"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "{secure_boot: nope}",
            ":8: hypervisors.q.firmwares.sb.aarch64.secure_boot: 'nope' is not one of: test-key, microsoft",
        ),  # fmt: skip
        ("{secure_boot: test-key, vars: /x.fd}", ":8: hypervisors.q.firmwares.sb.aarch64.vars: unknown key"),
        (
            "{secure_boot: test-key, code: /nope.fd}",
            ":8: hypervisors.q.firmwares.sb.aarch64.code: /nope.fd is missing or not a file; fix the path",
        ),  # fmt: skip
    ],
)
def test_bad_secure_boot_settings_give_one_line(tmp_path: Path, spec: str, expected: str) -> None:
    path = tmp_path / "hv.yaml"
    arch = "{binary: qemu-system-aarch64, machine: virt, cpu: max, memory: 512M}"
    path.write_text(f"hypervisors:\n  q:\n    backend: qemu\n    arches:\n      aarch64: {arch}\n    firmwares:\n"
                    f"      sb:\n        aarch64: {spec}\n")  # fmt: skip
    with pytest.raises(config.ConfigError) as err:
        config.check_ready(config.load(path).get("q"), ["aarch64"], ["sb"])
    assert str(err.value).startswith(f"{path}{expected}") and "\n" not in str(err.value)


OK = "0000000000000000"
LINE = (f"VMCONFORM 0123456789ab SECUREBOOT SecureBoot={OK} SecureBoot_attr=00000006 SecureBoot_size=00000001 "
        f"SecureBoot_data={{sb}} SetupMode={OK} SetupMode_attr=00000006 SetupMode_size=00000001 "
        "SetupMode_data={setup} AuditMode=800000000000000E AuditMode_attr=00000000 AuditMode_size=00000000 "
        "DeployedMode=800000000000000E DeployedMode_attr=00000000 DeployedMode_size=00000000 {keys}")  # fmt: skip
KEYS_SET = " ".join(f"{k}=8000000000000005 {k}_attr=00000027 {k}_size=00000386" for k in ("PK", "KEK", "db", "dbx"))
KEYS_NONE = " ".join(f"{k}=800000000000000E {k}_attr=00000000 {k}_size=00000000" for k in ("PK", "KEK", "db", "dbx"))


def test_the_enforcement_line_says_state_keys_and_what_follows() -> None:
    on = parse_line(LINE.format(sb="01", setup="00", keys=KEYS_SET))
    off = parse_line(LINE.format(sb="00", setup="01", keys=KEYS_NONE))
    assert on is not None and off is not None
    assert SecureBootFact.from_line(on).enforcing
    assert secureboot.enforcement_line(SecureBootFact.from_line(on), "test-key") == (
        "the VM enforces Secure Boot (user mode; PK, KEK, db, dbx set; keys: vmconform's test key in PK, KEK and db, "
        "a revoked one in dbx): it runs only images signed by a key in its db, so portable unsigned images do not "
        "boot on it"
    )
    assert secureboot.enforcement_line(SecureBootFact.from_line(off)) == (
        "the VM does not enforce Secure Boot (setup mode; no keys): portable unsigned images boot"
    )
    assert secureboot.run_lines([("edk2", "arm", "", [off.raw]), ("edk2", "arm", "", [on.raw])]) == [
        "edk2/arm: the VM does not enforce Secure Boot (setup mode; no keys): portable unsigned images boot"
    ]
    refused = secureboot.boot_line([], "the firmware refused the image (Secure Boot: ...)", "microsoft")
    assert refused is not None and refused.startswith("the VM enforces Secure Boot (keys: Debian's Microsoft-keys")


@pytest.mark.boot
@pytest.mark.libvirt
def test_secure_boot_and_shim_through_libvirt(tmp_path: Path) -> None:
    """The libvirt entry's edk2-ms (what libvirt's <os firmware='efi'> picks on Debian): the signed probe runs, the
    unsigned one is refused, shim starts the signed GRUB; no domain is left behind (the run's sweep)."""
    p = run_pytest("suite/test_secureboot.py", "suite/test_payloads.py", "--hypervisor=libvirt", "--firmware",
                   "edk2-ms", f"--reports-dir={tmp_path}")  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    rows = by_test(tmp_path)
    assert {k: (r["outcome"], r["stop"]) for k, r in rows.items()} == {
        "test_signed_probe_runs[libvirt-edk2-ms-aarch64-reference]": ("passed", "matched"),
        "test_untrusted_probe_refused[libvirt-edk2-ms-aarch64-reference-unsigned]": ("passed", "dead-end"),
        "test_untrusted_probe_refused[libvirt-edk2-ms-aarch64-reference-tampered]": ("passed", "dead-end"),
        "test_shim_grub[libvirt-edk2-ms-aarch64-reference]": ("passed", "matched"),
    }
    assert read_results(tmp_path)["orphan_vms_killed"] == []


@pytest.mark.boot
def test_vmconform_boot_says_what_the_vm_enforces(tmp_path: Path) -> None:
    import subprocess
    import sys

    def vmconform(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vmconform.cli", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    for name, signed in (("plain", ()), ("signed", ("--signed",))):
        assert vmconform("gen", "--arch", "aarch64", *signed, "-o", str(tmp_path / f"{name}.img")).returncode == 0
    refused = vmconform("boot", "-q", "--firmware", "edk2-sb", str(tmp_path / "plain.img"))
    assert refused.returncode == 1, refused.stderr
    assert "vmconform: the VM enforces Secure Boot (keys: vmconform's test key in PK, KEK and db, a revoked one in " \
           "dbx): it refused this image, and portable unsigned images do not boot on it" in refused.stderr  # fmt: skip
    ran = vmconform("boot", "-q", "--firmware", "edk2-sb", str(tmp_path / "signed.img"))
    assert ran.returncode == 0, ran.stderr
    assert "vmconform: the VM enforces Secure Boot (user mode; PK, KEK, db, dbx set; keys: " in ran.stderr
    plain = vmconform("boot", "-q", str(tmp_path / "plain.img"))
    assert "vmconform: the VM does not enforce Secure Boot (setup mode; no keys): portable unsigned images boot" \
           in plain.stderr, plain.stderr  # fmt: skip


def test_a_refused_unsigned_image_fails_fw1_not_the_image_clauses(tmp_path: Path) -> None:
    """A Secure Boot firmware not declared as one (plain code:/vars:) refuses the unsigned probe: FW-1 says why,
    the image clauses keep what vmconform check found on the image."""
    from vmconform.console import Stop
    from vmconform.runner import BootResult
    from vmconform.verdicts import boot as vboot

    line = 'BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x1,0x0): Access Denied'
    stop = Stop("dead-end", "the firmware refused the image (Secure Boot: Access Denied / Security Violation)", line)
    result = BootResult(None, stop, None, (), (), tmp_path, tmp_path / "console.log", ("qemu-system-aarch64",),
                        line, 1.5)  # fmt: skip
    image = dict.fromkeys(("IMG-1", "IMG-2", "IMG-3", "IMG-4", "IMG-5", "IMG-6"), ("pass", "vmconform check: ok"))
    got = {v.clause: v for v in vboot.removable_media_boot(result, "aarch64", "2.0", "flash", "c", image)}
    assert {c: got[c].status for c in image} == dict.fromkeys(image, "pass")
    assert got["FW-1"].status == "fail" and "Access Denied'" in got["FW-1"].evidence
    assert "the VM enforces Secure Boot, so portable unsigned images do not boot on it" in got["FW-1"].evidence
