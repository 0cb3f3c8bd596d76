"""Secure Boot (UEFI §32.5): on a firmware that enforces it, only images signed by a key in db may run.

These tests run on the entry's Secure Boot firmwares only (``--firmware edk2-sb``, ``--firmware edk2-ms``: see
hypervisors.yaml's ``secure_boot:``). The signed probe must run and report the Secure Boot state; an unsigned
probe, a probe whose signed bytes were changed, and a probe signed by a key in dbx must each be refused at once,
the firmware's own words (``Access Denied``) being the evidence. A portable image needs no signature (IMG-1..6
are judged from the image itself), so a VM that enforces Secure Boot does not boot portable unsigned images:
the report says so in one line (FW-1's evidence), and every other test of such a run boots a signed probe.
"""

import pytest

from fixtures.boot import BootCase
from fixtures.judge import Judge
from vmconform import secureboot
from vmconform.cases import Case
from vmconform.verdicts import boot as vboot
from vmconform.verdicts import secureboot as vsb


@pytest.mark.cases(layout="reference", defect="none")
@pytest.mark.secure_boot("test-key", "microsoft")
def test_signed_probe_runs(case: Case, boot_case: BootCase, judge: Judge) -> None:
    """The probe signed by vmconform's test key (in db) runs and reports Secure Boot enforcing."""
    run = boot_case(probe_variant=secureboot.SIGNED)
    image = vsb.checked_image(run.disks[0].path, case.arch, case.sector_size)
    keys = judge.firmware.secure_boot
    verdicts = vboot.removable_media_boot(run.result, case.arch, judge.spec, judge.firmware.mapping, judge.label,
                                          image, case.layout, secure_boot_keys=keys)  # fmt: skip
    judge.record(verdicts, run.result)
    run.result.expect("END")
    fact = secureboot.fact_of(run.result.lines)
    assert fact is not None, run.result.fail("the signed probe printed no SECUREBOOT line")
    assert fact.enforcing, run.result.fail(f"firmware {judge.firmware.name} does not enforce Secure Boot: "
                                           f"{fact.summary()}")  # fmt: skip


@pytest.mark.cases(layout="reference", defect="none")
@pytest.mark.secure_boot("test-key", "microsoft")
@pytest.mark.parametrize("variant", [secureboot.UNSIGNED, secureboot.TAMPERED])
def test_untrusted_probe_refused(case: Case, boot_case: BootCase, judge: Judge, variant: str) -> None:
    """The unsigned probe, and the signed one with a byte of its code changed, are refused at once."""
    _refused(case, boot_case, judge, variant)


@pytest.mark.cases(layout="reference", defect="none")
@pytest.mark.secure_boot("test-key")
def test_revoked_key_refused(case: Case, boot_case: BootCase, judge: Judge) -> None:
    """The probe signed by a key that is in db and in dbx is refused (dbx wins)."""
    _refused(case, boot_case, judge, secureboot.REVOKED)


def _refused(case: Case, boot_case: BootCase, judge: Judge, variant: str) -> None:
    run = boot_case(probe_variant=variant)
    image = vsb.checked_image(run.disks[0].path, case.arch, case.sector_size)
    verdicts = vsb.refused(run.result, variant, image, judge.spec, judge.label, judge.firmware.secure_boot)
    judge.record(verdicts, run.result)
    assert run.result.stop.reason == "dead-end", run.result.describe()
