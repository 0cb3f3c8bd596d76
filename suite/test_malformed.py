"""Malformed images: the firmware must do what UEFI requires with each, and never hang.

Each case (the defects of `vmconform gen --list`) expects one of: boots, recovers (boots from the
intact GPT copy and may repair the other), falls-through (skips the disk and boots the next boot
option: a second, valid disk with its own nonce), or either. A firmware that stops at a shell, a
boot-manager prompt or a CPU exception is judged at once from its console, not by a timeout.
Where EDK2 is known to differ from UEFI the verdict says so (`edk2` column of the catalogue).
"""

import pytest

from fixtures.boot import BootCase
from fixtures.judge import Judge
from vmconform.cases import Case


@pytest.mark.cases(defect=lambda defect: defect != "none")
def test_malformed_image(case: Case, boot_case: BootCase, judge: Judge) -> None:
    run = boot_case()
    judge.malformed_image(run)
    assert run.result.stop.reason in ("matched", "exited"), run.result.describe()
