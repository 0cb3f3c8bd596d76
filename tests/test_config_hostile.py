"""hypervisors.yaml as hostile input: bounded reading and parsing, numbers that are numbers, one line each; and a
run that cannot start (kvm on this host, a negative timeout) stops before its first case, never DOES NOT CONFORM."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hostile_files import fifo_error, oversized

from vmconform import config
from vmconform.yamlfile import MAX_FILE_BYTES

REPO = Path(__file__).resolve().parent.parent
GOOD = (REPO / "hypervisors.yaml").read_text()


def error_of(path: Path) -> str:
    try:
        config.load(path)
    except config.ConfigError as e:
        return str(e)
    return "no error"


def test_an_alias_bomb_stops_at_the_node_budget(tmp_path):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nhypervisors: *a9\n")
    tracemalloc.start()
    message = error_of(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "YAML nodes once aliases are expanded (an alias bomb?)" in message
    assert peak < 64 << 20, f"parsing the bomb took {peak >> 20} MiB"


def test_deep_nesting_is_one_line(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("hypervisors: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert "nested too deeply" in error_of(deep)
    nested = tmp_path / "nested.yaml"
    nested.write_text("hypervisors: " + "[" * 100 + "]" * 100 + "\n")
    assert "nested more than 64 levels deep" in error_of(nested)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "0", "-1", "true"])
def test_a_timeout_must_be_a_positive_finite_number(tmp_path, value):
    hv = tmp_path / "hv.yaml"
    hv.write_text(GOOD.replace("    timeout: 60\n", f"    timeout: {value}\n", 1))
    assert hv.read_text() != GOOD
    assert "timeout: must be a positive number of seconds" in error_of(hv)


def test_special_files_and_huge_files_are_refused_unread(tmp_path):
    assert "not a regular file" in fifo_error(tmp_path / "fifo.yaml", error_of)
    assert "not a regular file" in error_of(Path("/dev/zero"))
    assert "more than a hypervisors.yaml may be" in error_of(oversized(tmp_path / "big.yaml", MAX_FILE_BYTES + 1))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"hypervisors: \xff\xfe\n")
    assert "not UTF-8 text" in error_of(binary)


def run_suite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_kvm_on_a_host_that_cannot_run_it_stops_before_the_first_case(tmp_path):
    """This host is x86_64 (or has no /dev/kvm): the kvm entry must refuse at once, with the cause."""
    p = run_suite("--hypervisor=kvm", f"--reports-dir={tmp_path}")
    assert p.returncode == 4, p.stdout[-2000:]
    assert "accel kvm cannot run here:" in p.stderr and "DOES NOT CONFORM" not in p.stdout + p.stderr
    assert p.stderr.count("ERROR:") == 1 and "Traceback" not in p.stderr
    assert not list(tmp_path.glob("*/results.json")), "no run was started"


def test_a_negative_boot_timeout_stops_before_the_first_case(tmp_path):
    p = run_suite("--boot-timeout", "-1", f"--reports-dir={tmp_path}")
    assert p.returncode == 4 and "--boot-timeout -1.0: a boot timeout is a number of seconds above 0" in p.stderr
