"""Fixtures for the asset tests: real Debian arm64 packages, fetched once into the asset cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmconform.assets.cache import AssetError
from vmconform.assets.debian import Archive, unpack


@pytest.fixture(scope="session")
def arm64_bash_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bash:arm64 and its dependency closure from bookworm, unpacked (fails, saying so, without the archive)."""
    try:
        arc = Archive("bookworm", "arm64")
        debs = arc.download(arc.resolve(["bash"]))
    except AssetError as err:
        pytest.fail(f"the Debian archive is not reachable: {err}", pytrace=False)
    return unpack(debs, tmp_path_factory.mktemp("bash-arm64"))
