"""EDK2 on Xen breaks console lines after 80 columns; the xen console rejoins them, whatever the reads' sizes
(the relay's chunks may end anywhere, even between a CR and its LF). The rows here are cut the way the
transcripts of real boots show (tests/test_xen.py boots for real)."""

from __future__ import annotations

import random
from pathlib import Path

from vmconform.console import ConsoleBase
from vmconform.hypervisors.xen_console import WRAP, XenConsole


class Reader(XenConsole):
    """Only the line reader of XenConsole: no host VM behind it."""

    def __init__(self, workdir: Path) -> None:
        ConsoleBase.__init__(self, workdir)


def screen(lines: list[bytes]) -> bytes:
    out = b""
    for line in lines:
        rows = [line[i : i + WRAP] for i in range(0, len(line), WRAP)] or [b""]
        out += b"\r\n".join(rows) + b"\r\n"
    return out


def test_wrapped_probe_lines_are_rejoined_across_any_reads(tmp_path):
    secureboot = b"VMCONFORM n1 SECUREBOOT " + b"SecureBoot=800000000000000E " * 12
    boot = b"VMCONFORM n1 BOOT aarch64 devpath=" + b"0104" * 60
    text = screen([b"UEFI firmware (version 0)", b"Press ESCAPE for boot options " + boot, secureboot, b"x" * 30,
                   b"VMCONFORM n1 END shutdown"])  # fmt: skip
    want = ["UEFI firmware (version 0)", "Press ESCAPE for boot options ", boot.decode(), secureboot.decode(),
            "x" * 30, "VMCONFORM n1 END shutdown"]  # fmt: skip
    rng = random.Random(7)
    for trial in range(300):
        (tmp_path / str(trial)).mkdir()
        reader = Reader(tmp_path / str(trial))
        got: list[str] = []
        pos = 0
        while pos < len(text):
            n = rng.randint(1, 160)
            got += reader._feed(text[pos : pos + n])
            pos += n
        got += reader._feed(b"\n", from_vm=False)
        assert got[: len(want)] == want, (trial, got)
        reader.close()
