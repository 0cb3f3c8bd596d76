"""No VM outlives its case: Ctrl-C mid-boot, a killed xdist worker, the session-end sweep."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmconform import reaper

REPO = Path(__file__).resolve().parent.parent


def tagged(prefix: str, settle: float = 5.0) -> list[reaper.Leftover]:
    """Tagged processes still alive; a process SIGKILLed a moment ago gets `settle` seconds to finish dying."""
    deadline = time.monotonic() + settle
    while (found := reaper.find(prefix.rstrip("/"))) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def test_reap_kills_tagged_processes_and_only_those(tmp_path):
    run_id = str(tmp_path / "run")
    mine = subprocess.Popen(
        ["sleep", "60"], env={**os.environ, reaper.TAG_ENV: f"{run_id}/case"}, start_new_session=True
    )
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, reaper.TAG_ENV: "/elsewhere/case"})
    try:
        assert [x.pid for x in reaper.find(run_id)] == [mine.pid]
        killed = reaper.reap(run_id)
        assert [(x.pid, x.tag) for x in killed] == [(mine.pid, f"{run_id}/case")]
        assert mine.wait(10) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        other.kill()
        mine.kill()
        other.wait()


def start_suite(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_boot.py", "--case", "aarch64-reference",
         "--firmware", "u-boot", f"--reports-dir={tmp_path}", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def wait_for_vm(prefix: str, proc: subprocess.Popen[str], limit: float = 60) -> reaper.Leftover:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = tagged(prefix, settle=0)
        if found:
            return found[0]
        assert proc.poll() is None, "the suite ended before its VM was seen"
        time.sleep(0.02)
    raise AssertionError("no VM appeared")


@pytest.mark.boot
def test_ctrl_c_mid_boot_leaves_no_vm(tmp_path):
    suite = start_suite(tmp_path)
    try:
        vm = wait_for_vm(str(tmp_path), suite)
        os.kill(suite.pid, signal.SIGINT)
        out, _ = suite.communicate(timeout=60)
    finally:
        if suite.poll() is None:
            os.killpg(suite.pid, signal.SIGKILL)
    assert suite.returncode == 2, out  # pytest: interrupted
    assert not tagged(str(tmp_path)), f"VM {vm.pid} survived Ctrl-C"


@pytest.mark.boot
def test_a_killed_worker_takes_its_vm_down_and_the_case_is_reported(tmp_path):
    """The VM's console is a pty owned by the worker: when the worker dies, the hang-up ends QEMU too."""
    suite = start_suite(tmp_path, "-n", "1")
    try:
        vm = wait_for_vm(str(tmp_path), suite)
        worker = int(Path(f"/proc/{vm.pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])  # the VM's parent
        os.kill(worker, signal.SIGKILL)
        out, _ = suite.communicate(timeout=120)
    finally:
        if suite.poll() is None:
            os.killpg(suite.pid, signal.SIGKILL)
    assert suite.returncode == 1, out[-3000:]
    assert "worker 'gw0' crashed while running 'suite/test_boot.py::test_removable_media_boot" in out
    assert "cases: 1 failed" in out
    assert not tagged(str(tmp_path), settle=10)


@pytest.mark.boot
def test_the_session_sweep_kills_a_vm_that_outlives_its_harness(tmp_path):
    """A backend whose VM survives the harness process (as a Xen or libvirt domain does) is emulated by a
    wrapper that starts QEMU in a session of its own; the controller's sweep must find, kill and report it."""
    wrapper = tmp_path / "detaching-qemu"
    # -S: the detached VM stays paused, so it is certainly still there when the session ends
    wrapper.write_text('#!/bin/sh\nsetsid qemu-system-aarch64 "$@" -S </dev/null >/dev/null 2>&1 &\nsleep 60\n')
    wrapper.chmod(0o755)
    hv = tmp_path / "hypervisors.yaml"
    hv.write_text(
        "hypervisors:\n  detaching:\n    backend: qemu\n    timeout: 3\n    arches:\n      aarch64: "
        f"{{binary: {wrapper}, machine: virt, cpu: cortex-a57, memory: 512M}}\n"
        "    firmwares:\n      edk2:\n        aarch64: auto\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--hypervisors-file={hv}",
         "suite/test_boot.py", "--case", "aarch64-reference", f"--reports-dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 1
    assert "ERROR a VM outlived its case and was killed at session end: pid" in p.stdout, p.stdout[-3000:]
    assert "qemu-system-aarch64 -machine virt" in p.stdout
    assert not tagged(str(tmp_path))
