"""Image format and removable-media boot (spec v1.0 "Image Format", "Virtual Firmware").

A portable image -- GPT, one FAT32 ESP, the EFI application at the removable-media
path -- must boot with a fresh variable store (no Boot#### variables): clauses
IMG-1..IMG-6, FW-1, FW-7 in shared/spec/clauses.md; the probe's FW line also
evidences FW-2 and FW-3, and an arm image PLAT-2.
"""

import pytest

from fixtures.boot import BootCase
from fixtures.judge import Judge
from vmconform.cases import Case


@pytest.mark.cases(layout="reference", defect="none")
def test_removable_media_boot(case: Case, boot_case: BootCase, judge: Judge) -> None:
    """The probe at \\EFI\\BOOT\\BOOT{AA64,ARM}.EFI runs, reports this case's nonce, and powers the VM off."""
    run = boot_case()
    judge.removable_media_boot(run)
    run.result.expect("END")
    run.result.expect_clean_poweroff()


@pytest.mark.cases(layout=lambda layout: layout != "reference", defect="none")
def test_must_boot(case: Case, boot_case: BootCase, judge: Judge) -> None:
    """Every layout the spec allows boots: ESP second or last, among other partitions, 4Kn sectors, a disk
    over 2 TiB, lower-case and long file names, a larger GPT entry array, an unaligned ESP."""
    run = boot_case()
    judge.removable_media_boot(run)
    run.result.expect_clean_poweroff()
