"""Firmware and hypervisor releases from the Debian archive, unpacked into the cache for cross-release runs.

``scripts/fetch-releases`` (``python -m vmconform.releases``) fetches each release of :data:`RELEASES` with
`vmconform.assets.debian` (a private apt root per suite: the system's sources and installed packages are never
read or changed), unpacks it into ``<cache>/releases/<name>/root/`` and writes a QEMU firmware descriptor per
EDK2 architecture into ``<cache>/releases/<name>/firmware/<arch>.json``. ``hypervisors.yaml`` names these
files as ``${VMCONFORM_CACHE}/releases/...`` (see `vmconform.config`).

A release folder holds ``release.json`` (packages, versions, the sha256 of its firmware files) once complete;
a release whose folder is complete with the wanted upstream version is left alone, so a second run is a no-op
without touching the network.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vmconform.assets.cache import AssetError, cache_dir, locked, sha256_file

__all__ = ["RELEASES", "Release", "fetch", "is_current", "main", "release_dir", "releases_dir"]


@dataclass(frozen=True)
class Release:
    """One release: the Debian suite and packages it comes from, and the files it provides per arch."""

    name: str
    suite: str
    packages: tuple[str, ...]
    upstream: str  # the candidate version of packages[0] must start with this
    kind: str  # "edk2" | "u-boot" | "qemu"
    files: tuple[tuple[str, str, str], ...] = ()  # (arch, code, vars) for edk2; (arch, bios, "") for u-boot

    @property
    def description(self) -> str:
        return f"{self.name} from Debian {self.suite} ({', '.join(self.packages)})"


_AAVMF = ("aarch64", "usr/share/AAVMF/AAVMF_CODE.fd", "usr/share/AAVMF/AAVMF_VARS.fd")
_AAVMF32 = ("arm", "usr/share/AAVMF/AAVMF32_CODE.fd", "usr/share/AAVMF/AAVMF32_VARS.fd")
_UBOOT = (("aarch64", "usr/lib/u-boot/qemu_arm64/u-boot.bin", ""), ("arm", "usr/lib/u-boot/qemu_arm/u-boot.bin", ""))
_EFI = ("qemu-efi-aarch64", "qemu-efi-arm")
_QEMU = ("qemu-system-arm", "qemu-system-common", "qemu-system-data")

RELEASES: tuple[Release, ...] = (
    Release("edk2-2022.11", "bookworm", _EFI, "2022.11", "edk2", (_AAVMF, _AAVMF32)),
    Release("edk2-2025.02", "trixie", _EFI, "2025.02", "edk2", (_AAVMF, _AAVMF32)),
    Release("edk2-2026.08", "sid", _EFI[:1], "2026.08", "edk2", (_AAVMF,)),  # upstream dropped ARM32 in 202511
    Release("u-boot-2023.01", "bookworm", ("u-boot-qemu",), "2023.01", "u-boot", _UBOOT),
    Release("u-boot-2025.01", "trixie", ("u-boot-qemu",), "2025.01", "u-boot", _UBOOT),
    Release("qemu-10.0", "bookworm-backports", _QEMU, "1:10.0", "qemu"),
)
BY_NAME = {r.name: r for r in RELEASES}
HOST_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386", "riscv64": "riscv64"}


def releases_dir() -> Path:
    """``<cache>/releases``: what ``${VMCONFORM_CACHE}/releases`` in hypervisors.yaml names."""
    return cache_dir() / "releases"


def release_dir(name: str) -> Path:
    return releases_dir() / name


def is_current(rel: Release) -> bool:
    """The release is unpacked completely, at the wanted upstream version, and its files are there."""
    folder = release_dir(rel.name)
    try:
        doc = json.loads((folder / "release.json").read_text())
    except (OSError, ValueError):
        return False
    versions = doc.get("versions", {}) if isinstance(doc, dict) else {}
    if not str(versions.get(rel.packages[0], "")).startswith(rel.upstream):
        return False
    return all((folder / "root" / f).is_file() for _, *paths in rel.files for f in paths if f)


def _reroot_links(root: Path) -> None:
    """dpkg -x keeps absolute symlinks (``AAVMF_CODE.fd -> /usr/share/AAVMF/...``): point them inside `root`."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                target = os.readlink(p)
                if target.startswith("/"):
                    p.unlink()
                    p.symlink_to(os.path.relpath(root / target.lstrip("/"), p.parent))


def descriptor(rel: Release, arch: str, code: Path, vars_template: Path) -> dict[str, object]:
    """A QEMU firmware descriptor (qemu.git docs/interop/firmware.json) for one EDK2 build in the cache."""
    return {
        "description": f"{rel.description}, {arch}, fetched by vmconform",
        "interface-types": ["uefi"],
        "mapping": {
            "device": "flash",
            "executable": {"filename": str(code), "format": "raw"},
            "nvram-template": {"filename": str(vars_template), "format": "raw"},
        },
        "targets": [{"architecture": arch, "machines": ["virt-*"]}],
        "features": [],
        "tags": [f"vmconform-release={rel.name}"],
    }


def _write_descriptors(rel: Release, into: Path, folder: Path) -> None:
    """The EDK2 descriptors in `into`/firmware, naming the files as they will be in `folder` (rewritten only when
    they differ: a cache copied or moved elsewhere keeps its releases)."""
    if rel.kind != "edk2":
        return
    (into / "firmware").mkdir(exist_ok=True)
    for arch_name, *paths in rel.files:
        code, vars_template = (folder / "root" / p for p in paths)
        text = json.dumps(descriptor(rel, arch_name, code, vars_template), indent=2) + "\n"
        out = into / "firmware" / f"{arch_name}.json"
        if not out.is_file() or out.read_text() != text:
            out.write_text(text)


def fetch(rel: Release, *, force: bool = False, log: bool = True) -> Path:
    """Download and unpack `rel` into the cache (a no-op when current and not `force`d); its folder."""
    from vmconform.assets.debian import Archive, unpack

    folder = release_dir(rel.name)
    with locked(releases_dir() / f".{rel.name}.lock"):
        if is_current(rel) and not force:
            _write_descriptors(rel, folder, folder)  # the cache may have moved: descriptors name absolute paths
            if log:
                print(f"cached  {rel.name}: {folder}")
            return folder
        arch = HOST_DEB_ARCH.get(os.uname().machine)
        if arch is None:
            raise AssetError(f"no Debian architecture for this host ({os.uname().machine})")
        archive = Archive(rel.suite, arch)
        pkgs = archive.resolve(rel.packages, closure=False)
        first = next(p for p in pkgs if p.name == rel.packages[0])
        if not first.version.startswith(rel.upstream):
            raise AssetError(
                f"{rel.name}: Debian {rel.suite} now offers {first.name} {first.version}, not {rel.upstream}*; "
                f"update vmconform/releases.py and hypervisors.yaml"
            )
        debs = archive.download(pkgs)
        tmp = folder.with_name(f".{rel.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            unpack(debs, tmp / "root")
            _reroot_links(tmp / "root")
            sha: dict[str, str] = {}
            for _arch, *paths in rel.files:
                for f in paths:
                    if f and not (tmp / "root" / f).is_file():
                        raise AssetError(f"{rel.name}: {f} is not in {', '.join(p.name for p in pkgs)}")
                    if f:
                        sha[f] = sha256_file(tmp / "root" / f)
            _write_descriptors(rel, tmp, folder)
            stamp = {"name": rel.name, "suite": rel.suite, "versions": {p.name: p.version for p in pkgs},
                     "sha256": sha}  # fmt: skip
            (tmp / "release.json").write_text(json.dumps(stamp, indent=2) + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if log:
        print(f"fetched {rel.name}: {folder} ({', '.join(str(p) for p in pkgs)})")
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/fetch-releases [--check] [--force] [NAME...]``: fetch the releases (all by default)."""
    import argparse

    p = argparse.ArgumentParser(prog="fetch-releases", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", metavar="NAME", help=f"releases to fetch (default: all: {', '.join(BY_NAME)})")
    p.add_argument("--check", action="store_true", help="only say whether the cache is current (exit 0) or not (1)")
    p.add_argument("--force", action="store_true", help="fetch again even when cached")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in BY_NAME]
    if unknown:
        print(f"fetch-releases: error: no release {unknown[0]!r}; known: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    chosen = [BY_NAME[n] for n in args.names] or list(RELEASES)
    if args.check:
        stale = [r.name for r in chosen if not is_current(r)]
        print(f"releases: missing or stale: {', '.join(stale)}" if stale else f"releases: current in {releases_dir()}")
        return 1 if stale else 0
    try:
        for rel in chosen:
            fetch(rel, force=args.force)
    except AssetError as e:
        print(f"fetch-releases: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
