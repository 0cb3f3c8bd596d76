"""A real boot of the reference image through the nested Xen host, on each domU firmware.

Builds the Xen assets first when the cache lacks them (``python -m vmconform.assets build xen``; about
5 minutes from nothing on 2 cores); fails, saying why, when they cannot be built here (no Debian archive).
"""

from __future__ import annotations

import re

import pytest

from vmconform.assets.cache import AssetError
from vmconform.assets.xen import XenHost, host
from vmconform.assets.xen_smoke import CaseResult, smoke

pytestmark = pytest.mark.boot


@pytest.fixture(scope="module")
def xen_host() -> XenHost:
    try:
        built, _ = host()
    except AssetError as err:
        pytest.fail(f"the Xen assets are not cached and cannot be built here: {err}", pytrace=False)
    return built


@pytest.fixture(scope="module")
def results(xen_host: XenHost) -> dict[str, CaseResult]:
    lines: list[str] = []
    try:
        got = smoke(xen_host, ["edk2", "u-boot-fixed", "u-boot-stock"], say=lines.append)
    except AssetError as err:
        pytest.fail(f"{err}\n" + "\n".join(lines[-40:]))
    return {r.firmware: r for r in got}


@pytest.mark.parametrize(("firmware", "vendor"), [("edk2", "EDK II"), ("u-boot-fixed", "Das U-Boot")])
def test_reference_image_boots_as_domu(results: dict[str, CaseResult], firmware: str, vendor: str) -> None:
    r = results[firmware]
    joined = re.sub(r"[\r\n]+", "", r.console)  # EDK2 wraps its console at 80 columns
    assert r.boot_line, f"no VMCONFORM 4242 BOOT line from {firmware}; console:\n{r.console[-3000:]}"
    assert f"vendor={vendor}" in joined
    assert r.end_line and r.exit_event == "exited 0", f"{firmware}: {r.exit_event}"


def test_stock_u_boot_cannot_boot_the_image(results: dict[str, CaseResult]) -> None:
    """The finding the stock variant exists to show: no GPT, so no ESP, and it ends at its prompt."""
    r = results["u-boot-stock"]
    assert not r.boot_line
    assert "No EFI system partition" in r.console and r.console.rstrip().endswith("xenguest#")
    assert r.exit_event == "timeout, destroyed"
