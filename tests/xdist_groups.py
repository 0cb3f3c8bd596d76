"""Which of the project's tests must stay on one xdist worker when `scripts/run-tests` runs them with
``-n 2 --dist loadgroup`` (tests/conftest.py's scheduler makes each group one unit of work):

* ``xen``: every test that boots the nested Xen host VM (2 GiB, 2 vCPUs, minutes to build when the cache is
  cold): one worker runs them one after the other, so only one host VM is ever up and a module's host VM is
  shared by its tests.
* ``inner-n``: tests that start a suite run of their own with ``-n 1`` or ``-n 2`` (two QEMUs of their own):
  on one worker, one at a time, so at most three QEMUs (two inner workers and the other outer worker's boot)
  share the two cores and the inner runs' boot timeouts keep their margin.

Everything else is spread test by test over the workers: temp folders (``tmp_path``), run tags, libvirt
domain names and report folders are per test, and the asset cache's builders take a lock per artifact.
"""

from __future__ import annotations

# module (path from tests/) or module::test-name prefix -> its xdist group
GROUPS = {
    "assets/test_xen_boot.py": "xen",
    "test_xen.py": "xen",
    "test_xen_osprobe.py": "xen",
    "test_suite_run.py::test_two_xdist_workers": "inner-n",
    "test_suite_run.py::test_the_whole_matrix_on_edk2": "inner-n",
    "test_suite_firmware.py::test_edk2_aarch64_passes_all_but_the_acpi_and_dt_clause": "inner-n",
    "test_suite_secureboot.py": "inner-n",
    "test_payloads.py::test_payloads_boot_on_edk2_both_arches_and_shim_on_edk2_ms": "inner-n",
    "test_libvirt.py::test_parallel_libvirt_runs_give_the_serial_outcomes": "inner-n",
    "test_osprobe.py::test_the_os_suite_on_both_arches": "inner-n",
    "test_hardening.py::test_a_killed_worker": "inner-n",
}


def group_of(nodeid: str) -> str | None:
    """The xdist group of the test `nodeid` (``tests/...::name[params]``), if it has one."""
    path = nodeid.removeprefix("tests/")
    for prefix, group in GROUPS.items():
        if path == prefix or path.startswith(prefix if "::" in prefix else prefix + "::"):
            return group
    return None
