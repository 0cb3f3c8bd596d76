"""The project's own tests: the ``requires`` mark (a missing host tool fails, naming its install command, see
host_tools.py), and with ``-n N --dist loadgroup`` a scheduler that keeps each group of xdist_groups.py on one
worker.

The groups are decided here, on the controller, from the node ids: xdist's own loadgroup reads ``xdist_group``
marks on the workers and passes them on by rewriting each test's node id, which pytest 9.2 no longer lets it
do (pytest-xdist issue #1386: the marks are then silently ignored and grouped tests spread over the workers).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from host_tools import require
from xdist_groups import group_of

if TYPE_CHECKING:
    from vmconform.hypervisors.xen import XenBackend

REPO = Path(__file__).resolve().parent.parent


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """For ``--dist loadgroup``: xdist's load-by-scope scheduler whose scope is a test's group, else the test."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid) or nodeid

    return GroupScheduling(config, log)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        require(*mark.args)


@pytest.fixture(scope="module")
def xen() -> Iterator[XenBackend]:
    """The xen entry's backend for a test module (tests/test_xen*.py): its host VM is started by the module's first
    boot and powered off after the module."""
    from vmconform import config
    from vmconform.hypervisors import backend_for
    from vmconform.hypervisors.xen import XenBackend

    backend = backend_for(config.load(REPO / "hypervisors.yaml").get("xen"))
    assert isinstance(backend, XenBackend)
    try:
        backend.preflight()
    except config.ConfigError as e:
        pytest.fail(f"{e} (scripts/setup.sh test builds the Xen host)", pytrace=False)
    yield backend
    backend.close()
