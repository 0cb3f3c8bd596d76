"""Firmware discovery through QEMU descriptors, following QEMU's interop precedence rules."""

import json
from pathlib import Path

import pytest

from vmconform import firmware


def descriptor(path: Path, code: Path, vars_: Path, arch="aarch64", features=(), machines=("virt-*",)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "description": path.stem,
                "interface-types": ["uefi"],
                "mapping": {
                    "device": "flash",
                    "executable": {"filename": str(code), "format": "raw"},
                    "nvram-template": {"filename": str(vars_), "format": "raw"},
                },
                "targets": [{"architecture": arch, "machines": list(machines)}],
                "features": list(features),
            }
        )
    )
    return path


@pytest.fixture
def fw_files(tmp_path):
    files = {}
    for n in ("a", "b", "c"):
        for kind in ("CODE", "VARS"):
            p = tmp_path / f"{n}_{kind}.fd"
            p.write_bytes(b"\0" * 16)
            files[n, kind] = p
    return files


def test_later_directory_overrides_same_name_and_empty_masks(tmp_path, fw_files):
    usr, etc, user = tmp_path / "usr", tmp_path / "etc", tmp_path / "user"
    descriptor(usr / "50-x.json", fw_files["a", "CODE"], fw_files["a", "VARS"])
    descriptor(usr / "60-y.json", fw_files["b", "CODE"], fw_files["b", "VARS"])
    descriptor(etc / "50-x.json", fw_files["c", "CODE"], fw_files["c", "VARS"])
    fw = firmware.find_by_descriptor("edk2", "aarch64", "virt", [usr, etc, user])
    assert fw.code == fw_files["c", "CODE"], "etc/50-x.json replaces usr/50-x.json"
    (user / "50-x.json").parent.mkdir(parents=True)
    (user / "50-x.json").write_text("")
    fw = firmware.find_by_descriptor("edk2", "aarch64", "virt", [usr, etc, user])
    assert fw.code == fw_files["b", "CODE"], "an empty file masks 50-x.json, so 60-y.json is next"


def test_secure_boot_missing_files_and_other_arches_are_skipped(tmp_path, fw_files):
    d = tmp_path / "d"
    descriptor(d / "10-sb.json", fw_files["a", "CODE"], fw_files["a", "VARS"], features=["secure-boot"])
    descriptor(d / "20-gone.json", tmp_path / "missing.fd", fw_files["a", "VARS"])
    descriptor(d / "30-x86.json", fw_files["a", "CODE"], fw_files["a", "VARS"], arch="x86_64")
    descriptor(d / "40-ok.json", fw_files["b", "CODE"], fw_files["b", "VARS"])
    assert firmware.find_by_descriptor("edk2", "aarch64", "virt", [d]).code == fw_files["b", "CODE"]
    with pytest.raises(firmware.FirmwareError, match="no QEMU firmware descriptor for arm machine virt"):
        firmware.find_by_descriptor("edk2", "arm", "virt", [d])


def test_distribution_descriptors_find_aavmf():
    # Debian's 50-edk2-aarch64-secure.json names a CODE file the package does not ship; it must be skipped.
    fw = firmware.find_by_descriptor("edk2", "aarch64", "virt")
    assert fw.code == Path("/usr/share/AAVMF/AAVMF_CODE.fd")
    fw32 = firmware.find_by_descriptor("edk2", "arm", "virt")
    assert fw32.code == Path("/usr/share/AAVMF/AAVMF32_CODE.fd")


def test_vars_copy_is_fresh_and_writable_and_template_untouched(tmp_path):
    fw = firmware.find_by_descriptor("edk2", "aarch64", "virt")
    before = firmware.file_sha256(fw.vars_template)
    copy = firmware.copy_vars_template(fw, tmp_path / "vars.fd")
    with open(copy, "r+b") as f:
        f.write(b"scribble")
    assert firmware.file_sha256(fw.vars_template) == before


def test_machine_options_do_not_hide_the_machine_type():
    fw = firmware.find_by_descriptor("edk2", "aarch64", "virt,acpi=off")
    assert fw.code == Path("/usr/share/AAVMF/AAVMF_CODE.fd")
