"""Every catalogue case booted on QEMU TCG with Debian's AAVMF / AAVMF32: the firmware does what the
catalogue's `edk2` column says (that column is what these boots observed), and the disk hooks matter.

Fall-through cases boot with the fallback disk second, so a firmware that skips the bad disk is seen
reaching the fallback's probe at once; no case here passes by waiting for a timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from host_tools import AAVMF32_CODE, AAVMF_CODE, require

from vmconform import cases, config, outcomes, runner
from vmconform.cases import Case
from vmconform.check import FAIL, PASS, MemorySource, check_image, check_source
from vmconform.hypervisors import Disk, backend_for
from vmconform.image import DiskSpec, EspFile, build_disk
from vmconform.outcomes import FALLS_THROUGH, RECOVERS
from vmconform.probe import build_probe

pytestmark = pytest.mark.boot
REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60


@pytest.fixture(scope="module")
def qemu() -> dict[str, tuple[object, object]]:
    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    ready = {}
    for arch in cases.ARCH_NAMES:
        try:
            config.check_ready(entry, [arch], ["edk2"])
            ready[arch] = (backend_for(entry), config.resolve_firmware(entry, "edk2", arch))
        except config.ConfigError:
            continue
    return ready


def _boot(qemu: dict, arch: str, disks: tuple[Disk, ...], workdir: Path) -> runner.BootResult:  # type: ignore[type-arg]
    if arch not in qemu:
        require(*(("qemu-system-aarch64", AAVMF_CODE) if arch == "aarch64" else ("qemu-system-arm", AAVMF32_CODE)))
        pytest.fail(f"QEMU and its EDK2 firmware are installed, yet the qemu entry cannot boot {arch}", pytrace=False)
    backend, fw = qemu[arch]
    return runner.boot(backend, arch, disks, fw, None, workdir, TIMEOUT)  # type: ignore[arg-type]


def _outcome(
    case: Case, result: runner.BootResult, nonce: str, fb_nonce: str, disk: Path
) -> tuple[str, tuple[str, ...]]:
    built = cases.build_image(case, nonce)
    changes = outcomes.gpt_changes(built, disk, case.sector_size)
    seen = tuple(dict.fromkeys(line.nonce for line in result.lines))
    return outcomes.observed_outcome(nonce, fb_nonce, seen, changes), changes


@pytest.mark.parametrize("entry", cases.catalogue(), ids=lambda c: c.name)
def test_case_boots_as_catalogued(entry: Case, qemu: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    nonce, fb_nonce = cases.new_nonce(), cases.new_nonce()
    disks = cases.write_disks(entry, nonce, tmp_path / "disks", fallback_nonce=fb_nonce)
    assert len(disks) == (2 if entry.needs_fallback else 1)
    result = _boot(qemu, entry.arch, disks, tmp_path / "run")
    assert result.stop.reason == "matched", result.describe()
    result.expect_clean_poweroff()
    observed, changes = _outcome(entry, result, nonce, fb_nonce, disks[0].path)
    assert observed == entry.edk2, f"{entry.name}: observed {observed} (GPT changes {changes})\n{result.describe()}"
    if observed == RECOVERS:
        repaired = check_image(disks[0].path, sector_size=entry.sector_size)
        assert not [r for r in repaired.failed if r.id.startswith("gpt.")], repaired.table()
    if observed == FALLS_THROUGH:
        assert [line.nonce for line in result.lines][0] == fb_nonce and nonce not in {ln.nonce for ln in result.lines}


def test_corrupt_primary_gpt_is_rewritten_from_the_backup(qemu: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """E-1: boot a throw-away copy; afterwards LBA 1 holds a valid header again (and nothing else changed)."""
    case = cases.find("aarch64", "reference", "gpt-primary-crc")
    (disk,) = cases.write_disks(case, "repairme", tmp_path)
    before = disk.path.read_bytes()[512:1024]
    result = _boot(qemu, "aarch64", (disk,), tmp_path / "run")
    result.expect("END")
    after = disk.path.read_bytes()
    assert after[512:1024] != before and after[512:520] == b"EFI PART"
    assert outcomes.gpt_changes(cases.build_image(case, "repairme"), disk.path) == ("primary header",)
    assert check_source(MemorySource(after), "after").verdict("gpt.primary") == PASS


def test_4kn_image_needs_4k_blocks(qemu: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """The Disk hook matters: the same 4Kn image on 512-byte blocks has no GPT where the firmware looks (E-17)."""
    case = cases.find("aarch64", "sector-4k")
    image = cases.write_image(case, "fourk", tmp_path / "4k.img")
    fallback = cases.write_image(cases.find("aarch64"), "fallbk", tmp_path / "fb.img")
    right = _boot(qemu, "aarch64", (Disk(image, 4096), Disk(fallback)), tmp_path / "right")
    assert right.lines[0].nonce == "fourk"
    wrong = _boot(qemu, "aarch64", (Disk(image, 512), Disk(fallback)), tmp_path / "wrong")
    assert wrong.lines[0].nonce == "fallbk"


def test_vars_store_after_a_boot_is_what_check_flags(qemu: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """FW-6 against a real store: the variable store AAVMF wrote during a boot, copied into an image's ESP."""
    disk = cases.write_image(cases.find("aarch64"), "vars", tmp_path / "d.img")
    result = _boot(qemu, "aarch64", (Disk(disk),), tmp_path / "run")
    result.expect("END")
    store = (tmp_path / "run" / "vars.fd").read_bytes()[: 256 << 10]
    assert store[40:44] == b"_FVH"
    files = (EspFile("EFI/BOOT/BOOTAA64.EFI", build_probe("aarch64", "v")), EspFile("EFI/NVRAM/VARS.FD", store))
    report = check_source(MemorySource(build_disk(DiskSpec(files=files, seed="v"))))
    assert report.verdict("image.vars_store") == FAIL and report.exit_status == 1
