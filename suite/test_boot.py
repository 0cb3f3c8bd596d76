"""Image format and removable-media boot (spec v1.0 "Image Format", "Virtual Firmware").

A portable image -- GPT, one FAT32 ESP, the EFI application at the removable-media
path -- must boot with a fresh variable store (no Boot#### variables): clauses
IMG-1..IMG-6, FW-1, FW-7 in shared/spec/clauses.md; the probe's FW line also
evidences FW-2 and FW-3, and an arm image PLAT-2.
"""

import pytest


@pytest.mark.cases(layout="reference", defect="none")
def test_removable_media_boot(case, boot_case, judge):
    """The probe at \\EFI\\BOOT\\BOOT{AA64,ARM}.EFI runs, reports this case's nonce, and powers the VM off."""
    result = boot_case()
    judge.removable_media_boot(result)
    result.expect("END")
    result.expect_clean_poweroff()
