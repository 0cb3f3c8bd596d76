"""The conformance suite switches the vmconform pytest plugin on (reads hypervisors.yaml, checks the VM)."""

import pytest

from vmconform.pytest_plugin import activate


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    activate(config)
