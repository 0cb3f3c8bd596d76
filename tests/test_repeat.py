"""--repeat N on real boots: every boot with a fresh variable store, a flaky case (a QEMU that fails every second
start, through a wrapper) kept with every outcome, judged on its worst boot, and listed by compare as a flake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from run_records import read_results

REPO = Path(__file__).resolve().parent.parent

WRAPPER = """\
#!/bin/sh
# qemu-system-aarch64 that refuses every second VM start (not the -sandbox probe, which has no pflash)
case "$*" in *pflash*) ;; *) exec qemu-system-aarch64 "$@" ;; esac
count="$(dirname "$0")/count"
n=$(cat "$count" 2>/dev/null || echo 0)
echo $((n + 1)) >"$count"
if [ $((n % 2)) = 1 ]; then echo "simulated flaky start" >&2; exit 1; fi
exec qemu-system-aarch64 "$@"
"""

YAML = """\
hypervisors:
  flaky:
    backend: qemu
    timeout: 60
    arches:
      aarch64: {{binary: {binary}, machine: virt, cpu: cortex-a57, memory: 512M}}
    firmwares:
      edk2: {{aarch64: auto}}
  steady:
    backend: qemu
    timeout: 60
    arches:
      aarch64: {{binary: qemu-system-aarch64, machine: virt, cpu: cortex-a57, memory: 512M}}
    firmwares:
      edk2: {{aarch64: auto}}
"""


def suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_boot.py", "-k", "removable",
            "--case", "aarch64-reference", f"--hypervisors-file={tmp_path / 'hv.yaml'}"]  # fmt: skip
    return subprocess.run([*argv, *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.boot
def test_a_flaky_boot_is_kept_with_every_outcome_and_compare_lists_it_apart(tmp_path):
    wrapper = tmp_path / "qemu-flaky"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    (tmp_path / "hv.yaml").write_text(YAML.format(binary=wrapper))

    steady = suite(tmp_path, "--hypervisor", "steady", "--repeat", "2", f"--reports-dir={tmp_path / 'steady'}")
    assert steady.returncode == 0, steady.stdout[-3000:]
    (row,) = read_results(tmp_path / "steady")["results"]
    assert row["flaky"] is False and [r["observed"] for r in row["repeats"]] == ["boots", "boots"]
    transcripts = [tmp_path / "steady" / "latest" / r["transcript"] for r in row["repeats"]]
    assert [t.parent.name for t in transcripts] == ["repeat-1", "repeat-2"] and all(t.is_file() for t in transcripts)

    flaky = suite(tmp_path, "--hypervisor", "flaky", "--repeat", "3", f"--reports-dir={tmp_path / 'flaky'}")
    assert flaky.returncode == 1, flaky.stdout[-3000:]  # judged on its worst boot: the probe never ran there
    assert (
        "  FLAKY test_removable_media_boot[flaky-edk2-aarch64-reference]: its boots differed: boots, no-probe, boots"
        in (flaky.stdout.splitlines())
    )
    (row,) = read_results(tmp_path / "flaky")["results"]
    assert row["flaky"] is True and row["outcome"] == "failed"
    assert [(r["observed"], r["stop"]) for r in row["repeats"]] == [
        ("boots", "matched"),
        ("no-probe", "exited"),
        ("boots", "matched"),
    ]
    assert (tmp_path / "count").read_text().strip() == "3"

    p = subprocess.run([sys.executable, "-m", "vmconform.cli", "compare", str(tmp_path / "steady" / "latest"),
                        str(tmp_path / "flaky" / "latest")], capture_output=True, text=True, check=False)  # fmt: skip
    assert p.returncode == 0, p.stdout  # a flake is no regression
    assert (
        "  FLAKE      test_removable_media_boot[aarch64-reference]: passed -> failed (B: boots, no-probe, boots)"
        in p.stdout.splitlines()
    )
    assert "cases: 1 paired; 0 regressed, 0 fixed, 1 flaky, 0 new, 0 removed, 0 otherwise changed" in p.stdout
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite", "--repeat", "0",
                        "--collect-only"], cwd=REPO, capture_output=True, text=True, check=False)  # fmt: skip
    assert p.returncode == 4 and "--repeat 0: give a number of boots, 1 or more" in p.stderr
