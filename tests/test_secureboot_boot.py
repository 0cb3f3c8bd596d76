"""Real boots under Secure Boot: Debian's AAVMF (AAVMF_CODE.ms.fd; AAVMF32_CODE.fd on arm) with vmconform's vars
template (its test key in PK, KEK and db; a revoked key in db and dbx). The signed probe runs and reports
SecureBoot=1; an unsigned probe, a signed probe with one byte changed, and a probe signed by the revoked key are
refused in seconds, and the firmware's own words ("Access Denied") are the evidence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vmconform import cases, config, firmware, runner, signing
from vmconform.facts import ProbeFacts
from vmconform.hypervisors import backend_for
from vmconform.image import DiskSpec, EspFile, build_disk
from vmconform.probe import build_probe, removable_media_path

pytestmark = pytest.mark.boot  # sbsign missing: signing.SigningError names `apt-get install sbsigntool`
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def entry() -> config.HypervisorEntry:
    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    config.check_ready(entry, ["aarch64", "arm"], ["edk2"])
    return entry


def boot(entry: config.HypervisorEntry, arch: str, tmp_path: Path, prepare: Callable[[bytes], bytes],
         fw: firmware.Firmware | None = None) -> runner.BootResult:  # fmt: skip
    fw = fw or signing.secure_boot_firmware(arch)
    nonce = cases.new_nonce()
    disk = tmp_path / "disk.img"
    probe = prepare(build_probe(arch, nonce))
    build_disk(DiskSpec(files=(EspFile(removable_media_path(arch), probe),), seed=nonce)).save(disk)
    return runner.boot(backend_for(entry), arch, (disk,), fw, nonce, tmp_path / "run", timeout=60)


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_signed_probe_runs_and_reports_secure_boot(entry: config.HypervisorEntry, arch: str, tmp_path: Path) -> None:
    result = boot(entry, arch, tmp_path, signing.sign)
    assert result.stop.reason == "matched", result.describe()
    result.expect("END", "shutdown")
    result.expect_clean_poweroff()
    sb = ProbeFacts.from_lines(result.lines).secureboot
    assert sb is not None, result.describe()
    assert (sb.secure_boot.value, sb.setup_mode.value) == (1, 0), [r.describe() for r in sb.readings]
    assert sb.enforcing and sb.mode == "user" and sb.keys == ("PK", "KEK", "db", "dbx")
    assert sb.pk.attributes == 0x27  # NV | BS | RT | TIME_BASED_AUTHENTICATED_WRITE_ACCESS


def _tamper(image: bytes) -> bytes:
    signed = bytearray(signing.sign(image))
    signed[0x400] ^= 0x01  # a byte of .text (raw data from 0x200): covered by the Authenticode hash
    return bytes(signed)


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(lambda image: image, id="unsigned"),
        pytest.param(_tamper, id="changed-after-signing"),
        pytest.param(lambda image: signing.sign(image, signing.signing_key(signing.REVOKED_KEY)), id="revoked-key"),
    ],
)
def test_refused_probes_end_the_boot_with_the_firmware_words(
    entry: config.HypervisorEntry, arch: str, tmp_path: Path, prepare: Callable[[bytes], bytes]
) -> None:
    result = boot(entry, arch, tmp_path, prepare)
    assert result.stop.reason == "dead-end" and "refused the image" in result.stop.detail, result.describe()
    assert result.stop.line.rstrip().endswith(": Access Denied"), result.stop.line
    assert "BdsDxe: failed to load Boot0001" in result.stop.line and not result.lines
    assert result.elapsed < 20


def test_signed_probe_reports_the_vendor_store_state(entry: config.HypervisorEntry, tmp_path: Path) -> None:
    """Debian's Microsoft-keys store (our certificate added to db): the probe reads back what the store holds."""
    from virt.firmware.varstore import edk2  # type: ignore[import-untyped]

    fw = signing.secure_boot_firmware("aarch64", vendor_keys=True)
    result = boot(entry, "aarch64", tmp_path, signing.sign, fw)
    assert result.stop.reason == "matched", result.describe()
    sb = ProbeFacts.from_lines(result.lines).secureboot
    assert sb is not None and sb.enforcing and sb.mode == "user", result.describe()
    assert fw.vars_template is not None
    store = edk2.Edk2VarStore(str(fw.vars_template)).get_varlist()
    assert [(r.name, r.size) for r in (sb.pk, sb.kek, sb.db, sb.dbx)] == [
        (name, len(bytes(store[name].data))) for name in ("PK", "KEK", "db", "dbx")
    ]


def test_debian_microsoft_store_refuses_the_unsigned_probe(entry: config.HypervisorEntry, tmp_path: Path) -> None:
    """What libvirt picks by default on Debian (AAVMF_CODE.ms.fd + AAVMF_VARS.ms.fd, as they are)."""
    fw = firmware.explicit("edk2-ms", "aarch64", signing.DEBIAN_SB_CODE["aarch64"], signing.DEBIAN_SB_VARS, "test")
    result = boot(entry, "aarch64", tmp_path, lambda image: image, fw)
    assert result.stop.reason == "dead-end" and result.stop.line.rstrip().endswith(": Access Denied"), result.describe()
