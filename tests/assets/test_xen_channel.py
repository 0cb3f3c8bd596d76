"""The control channel's harness side (framing, parsing, domU configs) and the dom0 scripts' syntax."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vmconform.assets.xen_host import Message, b64, command, domu_config, parse

DOM0 = Path(__file__).resolve().parents[2] / "vmconform/assets/dom0"


def test_command_framing() -> None:
    assert command(7, "attach", "x.img", "ro", "4096") == b"@vmc 7 attach x.img ro 4096\n"
    with pytest.raises(ValueError, match="white space"):
        command(1, "create", "a b")


def test_parse() -> None:
    assert parse(b"@vmc 3 ok 2 /dev/loop0\n") == Message(3, "ok", ("2", "/dev/loop0"))
    msg = parse(b"@vmc 4 console vmc " + b64("VMCONFORM 4242 BOOT\r\n").encode())
    assert msg is not None and msg.payload == b"VMCONFORM 4242 BOOT\r\n"
    for junk in (b"", b"VMCONFORM 1 BOOT", b"@vmc x ok", b"@vmc 1"):
        assert parse(junk) is None


def test_domu_config() -> None:
    cfg = domu_config("case1", "/usr/lib/vmconform/firmware/edk2.bin", ["/dev/loop0,w", "/dev/loop1,r"],
                      on_reboot="restart")  # fmt: skip
    assert "disk=['phy:/dev/loop0,xvda,w', 'phy:/dev/loop1,xvdb,r']" in cfg
    assert 'on_reboot="restart"' in cfg and "vif=[]" in cfg and 'kernel="/usr/lib/vmconform/firmware/edk2.bin"' in cfg


@pytest.mark.parametrize(("script", "shell"), [("init", "sh"), ("agent", "bash")])
def test_dom0_scripts_parse(script: str, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.fail(f"{shell} is not installed", pytrace=False)
    subprocess.run([shell, "-n", str(DOM0 / script)], check=True)
