"""``python -m vmconform.assets``: build the cached assets, or smoke-test them by hand.

    python -m vmconform.assets build xen [--force]   # Xen host + domU firmwares into the cache
    python -m vmconform.assets status xen            # exit 0 when the cache is complete and current
    python -m vmconform.assets smoke xen [--firmware NAME ...]

``build`` prints one line per artifact: built or cached, its size and its path. Problems (a missing
tool or package, a failed build) are one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vmconform.assets.cache import AssetError, cache_dir
from vmconform.assets.xen_firmware import FIRMWARES


def _size(path: Path) -> str:
    # allocated bytes: the host disk image is sparse
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    total = sum(p.stat().st_blocks * 512 for p in files)
    return f"{total / (1 << 20):.1f} MiB"


def _build(force: bool) -> int:
    from vmconform.assets.xen import host

    t0 = time.monotonic()
    xen, done = host(force=force, rebuild_firmware=force)
    for what, path, built in done:
        print(f"{'built ' if built else 'cached'} {what}: {path} ({_size(path)})")
    for name in ("xen.efi", "vmlinuz", "initrd.img", "virt.dtb", "host-esp.img"):
        p = xen.folder / name
        print(f"  {name}: {p} ({_size(p)})")
    print(f"xen assets ready in {time.monotonic() - t0:.0f} s (cache {cache_dir()})")
    return 0


def _status() -> int:
    from vmconform.assets.xen import host_slot
    from vmconform.assets.xen_firmware import firmware_slot

    # current = every firmware and the host resolve to a completed cache folder with today's inputs
    for name in FIRMWARES:
        if not firmware_slot(name).ready:
            print(f"xen: domU firmware {name} is missing or stale in {cache_dir()}")
            return 1
    if not host_slot().ready:
        print(f"xen: the host is missing or stale in {cache_dir()}")
        return 1
    print(f"xen: cached and current in {cache_dir()}")
    return 0


def _smoke(firmwares: list[str]) -> int:
    from vmconform.assets.xen import host
    from vmconform.assets.xen_smoke import smoke

    xen, _ = host()
    results = smoke(xen, firmwares)  # type: ignore[arg-type]
    ok = True
    for r in results:
        expected = r.firmware != "u-boot-stock"
        verdict = "BOOT line seen" if r.boot_line else "no BOOT line"
        boot = f"{r.boot_s:.1f} s after create" if r.boot_s is not None else "-"
        print(
            f"smoke xen {r.firmware}: {verdict} ({boot}; domU running {r.create_s:.1f} s after create; {r.exit_event})"
        )
        ok &= r.boot_line or not expected
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmconform.assets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the assets of a target into the cache")
    b.add_argument("target", choices=["xen"])
    b.add_argument("--force", action="store_true", help="rebuild even when the cache is current")
    st = sub.add_parser("status", help="exit 0 when the target's cache is complete and current")
    st.add_argument("target", choices=["xen"])
    s = sub.add_parser("smoke", help="boot the reference image through the target by hand")
    s.add_argument("target", choices=["xen"])
    s.add_argument("--firmware", action="append", choices=list(FIRMWARES),
                   help="domU firmware(s) to boot (default: edk2 and u-boot-fixed)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            return _build(args.force)
        if args.command == "status":
            return _status()
        return _smoke(args.firmware or ["edk2", "u-boot-fixed"])
    except AssetError as err:
        print(f"vmconform.assets: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"vmconform.assets: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vmconform.assets: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
