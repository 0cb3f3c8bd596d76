"""The NVRAM flows on real firmware (QEMU TCG, AAVMF and AAVMF32), and their negative control.

With a writable vars copy every flow must pass; with the vars store made ephemeral (QEMU -snapshot: the
vars pflash writes go to a temporary overlay) each must fail with a message that says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmconform import config, nvram, varstore
from vmconform.hypervisors import backend_for

pytestmark = pytest.mark.boot
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def entry() -> config.HypervisorEntry:
    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    config.check_ready(entry, ["aarch64", "arm"], ["edk2"])
    return entry


def run(entry: config.HypervisorEntry, arch: str, mode: str, tmp_path: Path) -> nvram.NvramOutcome:
    fw = config.resolve_firmware(entry, "edk2", arch)
    return nvram.run_flow(backend_for(entry), arch, fw, mode, tmp_path / mode, timeout=90)


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
@pytest.mark.parametrize("mode", nvram.FLOWS)
def test_flow_passes_with_a_writable_vars_copy(entry: config.HypervisorEntry, arch: str, mode: str,
                                               tmp_path: Path) -> None:  # fmt: skip
    outcome = run(entry, arch, mode, tmp_path)
    assert outcome.passed, outcome.message
    assert len(outcome.boots) == (2 if mode == "power" else 1)
    assert all(b.exit_status == 0 for b in outcome.boots)
    assert outcome.records and outcome.records[-1].attributes == 7  # the host sees it in the vars file


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("power", "phase 1 ran twice: the non-volatile variable did not persist across the power cycle"),
        ("warm", "the NV variable never reached the vars file"),
        ("cold", "the NV variable never reached the vars file"),
    ],
)
def test_flow_fails_with_an_ephemeral_vars_store(entry: config.HypervisorEntry, arch: str, mode: str, message: str,
                                                 tmp_path: Path) -> None:  # fmt: skip
    outcome = run(nvram.ephemeral_vars(entry), arch, mode, tmp_path)
    assert not outcome.passed
    assert message in outcome.message, outcome.message
    assert outcome.records == ()
    if mode == "power":  # stopped as soon as phase 1 showed again, not by a timeout
        assert outcome.boots[-1].stop.detail == "phase 1 seen twice: the non-volatile variable did not survive"
        assert outcome.boots[-1].elapsed < 30


def test_virt_firmware_reads_the_variable_out_of_the_vars_file_after_a_power_off(
    entry: config.HypervisorEntry, tmp_path: Path
) -> None:
    """The host-side check of the power flow, on its own: phase 1 sets the NV variable and powers off; then
    virt-firmware (an independent EDK2 varstore reader) finds it live in the vars file with its data."""
    from vmconform import runner
    from vmconform.image import DiskSpec, EspFile, build_disk
    from vmconform.probe import build_probe, removable_media_path
    from vmconform.probe.program import NV_VARIABLE_PREFIX, VENDOR_GUID, VOLATILE_VARIABLE_PREFIX

    fw = config.resolve_firmware(entry, "edk2", "aarch64")
    nonce = "hostread1"
    disk = tmp_path / "disk.img"
    files = (EspFile(removable_media_path("aarch64"), build_probe("aarch64", nonce, mode="power")),)
    build_disk(DiskSpec(files=files, seed="hostread")).save(disk)
    r = runner.boot(backend_for(entry), "aarch64", (disk,), fw, nonce, tmp_path / "run", 90)
    r.expect_clean_poweroff()
    var = varstore.read_variable(tmp_path / "run" / "vars.fd", f"{NV_VARIABLE_PREFIX}{nonce}", VENDOR_GUID)
    assert var == nvram.HostVariable(nvram.NV_ATTRIBUTES, nonce.encode())
    # the volatile variable (set in the same phase) is not in the store; a file without a store is a reason
    volatile = varstore.read_variable(tmp_path / "run" / "vars.fd", f"{VOLATILE_VARIABLE_PREFIX}{nonce}", VENDOR_GUID)
    where = tmp_path / "run" / "vars.fd"
    assert isinstance(volatile, str)
    assert volatile.startswith(f"{where} holds no live variable {VOLATILE_VARIABLE_PREFIX}{nonce} ({VENDOR_GUID})")
    why = varstore.read_variable(fw.vars_template, "X", VENDOR_GUID)
    assert why == f"virt-firmware finds no EDK2 variable store in {fw.vars_template}"
