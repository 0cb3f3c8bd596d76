"""tests/host_tools.py, xdist_groups.py and conftest.py: a missing host tool fails naming its install command,
never skips; the tests that must not run twice at once get one xdist group."""

from __future__ import annotations

from pathlib import Path

import pytest
from host_tools import AAVMF_CODE, install_hint, require
from xdist_groups import group_of


def test_a_missing_tool_fails_with_the_apt_get_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    with pytest.raises(pytest.fail.Exception) as failed:
        require("sgdisk", "mcopy", "mdir", "/no/such/firmware.fd")
    assert str(failed.value) == (
        "not installed: sgdisk, mcopy, mdir, /no/such/firmware.fd: install with `apt-get install gdisk mtools` "
        "as root; no known Debian package for /no/such/firmware.fd (scripts/setup.sh test installs all the tests use)"
    )


def test_present_tools_and_files_pass(tmp_path: Path) -> None:
    require("sh", Path("/"))
    assert install_hint([AAVMF_CODE]).startswith(f"not installed: {AAVMF_CODE}: install with `apt-get install qemu-efi")


def test_the_requires_mark_fails_the_test_it_is_on(pytester: pytest.Pytester) -> None:
    for helper in ("conftest.py", "host_tools.py", "xdist_groups.py"):
        pytester.makefile(".py", **{helper.removesuffix(".py"): (Path(__file__).parent / helper).read_text()})
    pytester.makepyfile(
        test_needs="""
        from host_tools import requires

        @requires("no-such-tool-for-vmconform")
        def test_it():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:fixtures.plugin", "-ra")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*not installed: no-such-tool-for-vmconform:*scripts/setup.sh test installs*"])
    result.stdout.no_fnmatch_line("*skipped*")


def test_loadgroup_keeps_a_group_on_one_worker(pytester: pytest.Pytester) -> None:
    """The conftest's scheduler, not xdist's mark-based loadgroup (which pytest 9.2 silently breaks)."""
    tests = pytester.mkdir("tests")
    for helper in ("conftest.py", "host_tools.py", "xdist_groups.py"):
        (tests / helper).write_text((Path(__file__).parent / helper).read_text())
    body = "".join(f"def test_{i}():\n    time.sleep(0.2)\n\n\n" for i in range(6))
    (tests / "test_xen.py").write_text("import time\n\n\n" + body)
    (tests / "test_other.py").write_text("import time\n\n\n" + body)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:fixtures.plugin", "-n", "2",
                                           "--dist", "loadgroup", "-v", "tests")  # fmt: skip
    result.assert_outcomes(passed=12)
    workers = {line.split()[0] for line in result.outlines if "PASSED tests/test_xen.py::" in line}
    assert len(workers) == 1, result.outlines


@pytest.mark.parametrize(
    ("nodeid", "group"),
    [
        ("tests/assets/test_xen_boot.py::test_stock_u_boot_cannot_boot_the_image", "xen"),
        ("tests/test_xen.py::test_a_domu_that_hangs_is_destroyed_and_leaves_nothing", "xen"),
        ("tests/test_xen_console.py::test_x", None),
        ("tests/test_suite_secureboot.py::test_secure_boot_cases_on_edk2_sb_and_edk2_ms", "inner-n"),
        ("tests/test_suite_run.py::test_two_xdist_workers_give_the_same_results_as_none", "inner-n"),
        ("tests/test_suite_run.py::test_a_mistyped_case_name_is_one_line_with_suggestions", None),
        ("tests/test_check.py::test_firmware_binary_in_the_image_is_a_should_warning", None),
    ],
)
def test_groups(nodeid: str, group: str | None) -> None:
    assert group_of(nodeid) == group
