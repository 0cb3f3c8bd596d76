"""Heavy imports happen only when used: `vmconform --help` and the pytest layer load no jinja2, pexpect or probe
assembler (measured with python -X importtime, as the issue states it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("jinja2", "pexpect", "vmconform.probe.asm", "vmconform.probe.a64", "vmconform.probe.a32",
         "vmconform.probe.lower_", "vmconform.probe.program", "vmconform.probe.build")  # fmt: skip


def loaded(statement: str) -> list[str]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    modules = [line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")]
    assert len(modules) > 10, "no -X importtime output"
    return [m for m in modules if m.startswith(HEAVY)]


@pytest.mark.parametrize(
    "statement",
    [
        "import vmconform.cli",
        "import vmconform.cli as c; c._parser()",  # what --help builds
        "import fixtures.plugin, fixtures.options, fixtures.collection, fixtures.boot, fixtures.judge, "
        "fixtures.reporting, fixtures.osprobe",
    ],
)
def test_no_heavy_module_is_loaded(statement):
    assert loaded(statement) == []


def test_building_a_probe_does_load_the_assembler():
    """The check above can fail: building a probe loads what it needs."""
    heavy = loaded("from vmconform.probe import build_probe; build_probe('aarch64', 'n1')")
    assert any(m.startswith("vmconform.probe.asm") for m in heavy)
