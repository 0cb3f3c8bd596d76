"""Releases in the cache (scripts/fetch-releases), ${VMCONFORM_CACHE} in hypervisors.yaml, a firmware without an
arch's build."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vmconform import config, releases
from vmconform import firmware as fwmod
from vmconform.session import SetupError, open_run

REPO = Path(__file__).resolve().parent.parent

YAML = """\
hypervisors:
  q:
    backend: qemu
    arches:
      aarch64: {binary: qemu-system-aarch64, machine: virt, cpu: cortex-a57, memory: 512M}
      arm: {binary: qemu-system-arm, machine: virt, cpu: cortex-a15, memory: 512M}
    firmwares:
      only64:
        aarch64: {descriptor: "${VMCONFORM_CACHE}/releases/edk2-2026.08/firmware/aarch64.json"}
"""


def fetch(*names: str) -> None:
    done = subprocess.run([str(REPO / "scripts" / "fetch-releases"), *names], capture_output=True, text=True,
                          timeout=1800, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_an_empty_cache_is_not_current_and_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VMCONFORM_CACHE", str(tmp_path))
    assert not any(releases.is_current(r) for r in releases.RELEASES)
    p = subprocess.run([str(REPO / "scripts" / "fetch-releases"), "--check"], capture_output=True, text=True,
                       env={"VMCONFORM_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=False)  # fmt: skip
    assert p.returncode == 1
    assert p.stdout == f"releases: missing or stale: {', '.join(releases.BY_NAME)}\n"
    p = subprocess.run([str(REPO / "scripts" / "fetch-releases"), "edk2-1999"], capture_output=True, text=True,
                       check=False)  # fmt: skip
    assert p.returncode == 2 and p.stderr.startswith("fetch-releases: error: no release 'edk2-1999'; known: edk2-")
    hv = tmp_path / "hv.yaml"
    hv.write_text(YAML)
    entry = config.load(hv).get(None)
    ref = entry.firmwares["only64"]["aarch64"]
    assert ref.descriptor == tmp_path / "releases" / "edk2-2026.08" / "firmware" / "aarch64.json"
    with pytest.raises(config.ConfigError) as ei:
        config.resolve_firmware(entry, "only64", "aarch64")
    msg = str(ei.value)
    assert msg.startswith(f"{hv}:9: hypervisors.q.firmwares.only64.aarch64: ")
    assert msg.endswith("; run scripts/fetch-releases") and "\n" not in msg
    q10 = config.load(REPO / "hypervisors.yaml").get("qemu-10.0")
    with pytest.raises(config.ConfigError) as ei:
        config.resolve_binary(q10, "aarch64")
    binary = tmp_path / "releases/qemu-10.0/root/usr/bin/qemu-system-aarch64"
    assert str(ei.value).endswith(f".arches.aarch64.binary: '{binary}' not found; run scripts/fetch-releases")
    assert q10.arches["arm"].extra_args == ("-L", str(tmp_path / "releases/qemu-10.0/root/usr/share/qemu"))


def test_only_the_cache_variable_is_expanded(tmp_path):
    hv = tmp_path / "hv.yaml"
    hv.write_text(YAML.replace("${VMCONFORM_CACHE}/releases", "${HOME}/x"))
    with pytest.raises(config.ConfigError) as ei:
        config.load(hv)
    assert str(ei.value) == (
        f"{hv}:9: hypervisors.q.firmwares.only64.aarch64.descriptor: "
        "'${HOME}/x/edk2-2026.08/firmware/aarch64.json': "
        "only ${VMCONFORM_CACHE} is expanded here (vmconform's cache folder)"
    )


def test_fetched_releases_resolve_and_a_missing_arch_is_a_note(tmp_path):
    fetch("edk2-2022.11", "edk2-2026.08")
    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    fw = config.resolve_firmware(entry, "edk2-2022.11", "arm")
    assert fw.code == releases.release_dir("edk2-2022.11") / "root/usr/share/AAVMF/AAVMF32_CODE.fd"
    fwmod.preflight(fw)
    new = config.resolve_firmware(entry, "edk2-2026.08", "aarch64")
    # sid's AAVMF_CODE.fd is an absolute symlink in the package: it is pointed inside the cache
    assert new.code.is_symlink() and new.code.resolve().parent == new.code.parent
    fwmod.preflight(new)
    setup = open_run(REPO / "hypervisors.yaml", "qemu", firmware_names=["edk2-2022.11", "edk2-2026.08"])
    assert set(setup.firmwares) == {("edk2-2022.11", "aarch64"), ("edk2-2022.11", "arm"), ("edk2-2026.08", "aarch64")}
    assert setup.notes == (
        f"firmware edk2-2026.08 has no arm build ({REPO / 'hypervisors.yaml'}: hypervisors.qemu.firmwares."
        "edk2-2026.08): its arm cases are not collected",
    )
    with pytest.raises(SetupError) as ei:
        open_run(REPO / "hypervisors.yaml", "qemu", arches=["arm"], firmware_names=["edk2-2026.08"])
    assert str(ei.value) == (
        f"{REPO / 'hypervisors.yaml'}: hypervisors.qemu.firmwares.edk2-2026.08: no build for arm; it has aarch64 "
        "(choose with --arch)"
    )
