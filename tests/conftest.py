"""The project's own tests: the ``requires`` mark (a missing host tool fails, naming its install command, see
host_tools.py) and the ``xdist_group`` marks of xdist_groups.py, given here so that the test files need not
carry them.
"""

from __future__ import annotations

import pytest
from host_tools import require
from xdist_groups import group_of


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = group_of(item.nodeid)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        require(*mark.args)
