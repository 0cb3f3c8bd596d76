"""Fixtures for the image generator tests: the reference image, built once and saved sparse."""

from __future__ import annotations

import pytest

from vmconform.image import DiskSpec, EspFile

from ._support import BOOT_PATH, Built, build_and_save, payload


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Built:
    spec = DiskSpec(files=(EspFile(BOOT_PATH, payload(70 * 1024 + 3)),), seed="reference")
    return build_and_save(spec, tmp_path_factory.mktemp("reference") / "disk.img")
