"""Fetch and build into the asset cache what the tests (and the suite) otherwise make on first use.

    .venv/bin/python scripts/prefetch_assets.py

Debian's kernels and the OS probe's parts (initrd, systemd-boot stub, GRUB for arm), the boot-loader payloads
(GRUB, systemd-boot, shim and signed GRUB) and bash:arm64 for the asset tests: network-bound downloads, which
`scripts/setup.sh test` runs beside the CPU-bound Xen build. Each part is cached and locked by its own builder,
so this may run while tests use the cache. One line per part; a failure is one line and exit status 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from vmconform.assets.cache import AssetError, cache_dir
from vmconform.assets.debian import Archive
from vmconform.osprobe.assets import parts
from vmconform.payloads import PAYLOADS, esp_files


def _bash_arm64() -> None:
    arc = Archive("bookworm", "arm64")
    arc.download(arc.resolve(["bash"]))


def steps() -> list[tuple[str, Callable[[], object]]]:
    todo: list[tuple[str, Callable[[], object]]] = []
    for arch in ("aarch64", "arm"):
        todo.append((f"OS probe parts and kernel, {arch}", lambda arch=arch: parts(arch)))
        for payload in PAYLOADS.values():
            if arch in payload.arches:
                todo.append((f"payload {payload.name}, {arch}", lambda p=payload, a=arch: esp_files(p, a, "prefetch")))
    todo.append(("bash:arm64 and its dependencies (asset tests)", _bash_arm64))
    return todo


def main() -> int:
    t0 = time.monotonic()
    for what, step in steps():
        t = time.monotonic()
        try:
            step()
        except AssetError as err:
            print(f"prefetch: {what}: {err}", file=sys.stderr)
            return 1
        print(f"prefetch: {what}: ready ({time.monotonic() - t:.0f} s)")
    print(f"prefetch: all ready in {time.monotonic() - t0:.0f} s (cache {cache_dir()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
