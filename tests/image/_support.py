"""Shared helpers for the image tests (building and saving specs; deterministic payloads)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from vmconform.image import DiskSpec, SparseImage, build_disk

BOOT_PATH = "EFI/BOOT/BOOTAA64.EFI"
SECTOR = 512
ESP_START_LBA = 2048
ESP_OFFSET = ESP_START_LBA * SECTOR


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic non-trivial bytes (no long zero runs that could hide misplaced clusters)."""
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class Built:
    spec: DiskSpec
    image: SparseImage
    path: Path


def build_and_save(spec: DiskSpec, path: Path) -> Built:
    image = build_disk(spec)
    image.save(path)
    return Built(spec, image, path)
