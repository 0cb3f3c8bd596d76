"""Real boot loaders (UEFI §3.5.1.1, FW-1, FW-7): the firmware must run any EFI application at the removable-media
path, not only vmconform's probe. Each payload is built at set-up from Debian packages (`vmconform.payloads`) and
judged by its own console marker, never by the timeout: GRUB's prompt (``grub>``), the Linux EFI stub's "Booting
Linux Kernel" and the kernel's panic for want of a root file system, systemd-boot's menu, and on the
Microsoft-keys store (``--firmware edk2-ms``) Debian's Microsoft-signed shim starting its signed GRUB.
"""

import pytest

from fixtures.boot import BootPayload
from fixtures.judge import Judge
from vmconform.cases import Case
from vmconform.verdicts.payloads import payload_boot

pytestmark = [pytest.mark.cases(layout="reference", defect="none"), pytest.mark.clause("FW-1", "FW-7")]


def _boot(name: str, boot_payload: BootPayload, judge: Judge) -> None:
    run = boot_payload(name)
    judge.record(payload_boot(run, judge.spec, judge.label), run.result)
    assert run.succeeded and run.marker_seen, run.result.fail(run.describe())


@pytest.mark.secure_boot("")
def test_grub(case: Case, boot_payload: BootPayload, judge: Judge) -> None:
    """GRUB (grub-mkimage from Debian's modules) reads its grub.cfg beside it, echoes the nonce, stops at grub>."""
    _boot("grub", boot_payload, judge)


@pytest.mark.secure_boot("")
def test_linux_efi_stub(case: Case, boot_payload: BootPayload, judge: Judge) -> None:
    """Debian's kernel as the boot file: its EFI stub boots it, and it panics with no root file system."""
    _boot("linux", boot_payload, judge)


@pytest.mark.secure_boot("")
def test_systemd_boot(case: Case, boot_payload: BootPayload, judge: Judge) -> None:
    """systemd-boot reads /loader and shows its menu with the entry titled with the nonce."""
    _boot("systemd-boot", boot_payload, judge)


@pytest.mark.cases(arch="aarch64", layout="reference", defect="none")
@pytest.mark.secure_boot("microsoft")
def test_shim_grub(case: Case, boot_payload: BootPayload, judge: Judge) -> None:
    """Debian's shim (signed by the Microsoft UEFI CA) verifies and starts Debian's signed GRUB, which stops at
    grub> (shim and GRUB exist for arm64 only)."""
    _boot("shim", boot_payload, judge)
