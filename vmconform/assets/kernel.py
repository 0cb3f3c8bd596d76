"""Debian's Linux kernels for the guests, one helper for every consumer (the OS probe, the Linux payloads).

`kernel(arch, modules)` gives Debian bookworm's current kernel of the guest arch: ``linux-image-arm64`` for
aarch64, ``linux-image-armmp`` for arm (the versioned package the metapackage depends on, resolved at build
time, never pinned), fetched with `vmconform.assets.debian` into the cache. Only what a guest needs is kept:
the kernel image, its config, ``modules.builtin`` and ``modules.order``, and the modules asked for with their
dependencies (each module's ``.modinfo depends=``; the package has no modules.dep, depmod makes it on install),
extracted straight from the package's data archive into a cache folder keyed on
the package version (`BASE_MODULES` are always kept, so the OS probe and the payloads share one folder; a
module outside them extracts again). The ~60 MB .deb is then deleted from the archive's download cache
(`KernelFiles` holds everything needed to build again).

On arm64 ``/boot/vmlinuz-*`` is an uncompressed ``Image`` with its EFI stub; on armhf a ``zImage`` with one:
both are PE images a UEFI firmware can start.
"""

from __future__ import annotations

import posixpath
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vmconform.assets import cache
from vmconform.assets.cache import AssetError, digest, locked, need
from vmconform.assets.debian import Archive

__all__ = ["FLAVOURS", "KernelFiles", "KernelPackage", "kernel", "kernel_package"]

RECIPE = "kernel-files-2"
BASE_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "efivarfs", "xen_blkfront", "xen_netfront")
"""Always kept, whoever asks first, so consumers share one folder (and one download of the .deb)."""
SUITE = "bookworm"
FLAVOURS: dict[str, tuple[str, str]] = {
    "aarch64": ("arm64", "linux-image-arm64"),
    "arm": ("armhf", "linux-image-armmp"),
}
"""Guest arch -> (Debian architecture, kernel metapackage)."""


@dataclass(frozen=True)
class KernelPackage:
    """The versioned kernel package a metapackage points at today."""

    arch: str  # the guest arch: aarch64 | arm
    debian_arch: str
    name: str  # e.g. linux-image-6.1.0-57-arm64
    version: str  # e.g. 6.1.192-3
    release: str  # uname -r: 6.1.0-57-arm64


@dataclass(frozen=True)
class KernelFiles:
    """An extracted kernel: `folder` is a sysroot with /boot and the kept /lib/modules/<release> files."""

    package: KernelPackage
    folder: Path
    modules: tuple[str, ...]  # module names asked for that are loadable (.ko present), in the order asked

    @property
    def image(self) -> Path:
        """The EFI-bootable kernel image (``/boot/vmlinuz-<release>``)."""
        return self.folder / "boot" / f"vmlinuz-{self.package.release}"

    @property
    def config(self) -> Path:
        return self.folder / "boot" / f"config-{self.package.release}"

    def builtin(self) -> frozenset[str]:
        """Module names built into the kernel (modules.builtin), ``-`` written ``_``."""
        listing = self.folder / "lib/modules" / self.package.release / "modules.builtin"
        return frozenset(_modname(ln) for ln in listing.read_text().split())


def _modname(path: str) -> str:
    return posixpath.basename(path).split(".ko")[0].replace("-", "_")


def kernel_package(arch: str, suite: str = SUITE) -> KernelPackage:
    """The kernel package of guest `arch` in `suite` (the metapackage's dependency)."""
    if arch not in FLAVOURS:
        raise AssetError(f"no Debian kernel for arch {arch!r}: choose one of {', '.join(FLAVOURS)}")
    debian_arch, meta = FLAVOURS[arch]
    arc = Archive(suite, debian_arch)
    name = next((d for d in arc.depends(meta) if d.startswith("linux-image-")), None)
    if name is None:
        raise AssetError(f"{suite}/{debian_arch}: {meta} depends on no linux-image-* package")
    return KernelPackage(arch, debian_arch, name, arc.version(name), name.removeprefix("linux-image-"))


def kernel(arch: str, modules: Iterable[str] = (), *, suite: str = SUITE) -> KernelFiles:
    """The kernel of `arch` with `modules` (names; built-in ones need nothing) and their dependencies, cached."""
    pkg = kernel_package(arch, suite)
    wanted = tuple(dict.fromkeys(m.replace("-", "_") for m in modules))
    slot = cache.slot(f"kernel/{pkg.name}", digest([RECIPE, suite, pkg.name, pkg.version]))
    with locked(slot.path.parent / "lock"):
        have = _kept(slot.path / "kept") if slot.ready else None
        if have is None or not set(wanted) <= have:
            need("dpkg-deb", "dpkg")
            need("tar", "tar")
            keep = tuple(sorted({*BASE_MODULES, *wanted, *(have or ())}))
            (deb,) = Archive(suite, pkg.debian_arch).download([pkg.name])
            with slot.build() as out:
                _extract(deb, out, pkg.release, keep)
                (out / "kept").write_text("\n".join(keep) + "\n")
            deb.unlink(missing_ok=True)  # the folder keeps what any build needs; the .deb is ~60 MB
    files = KernelFiles(pkg, slot.path, ())
    builtin = files.builtin()
    return KernelFiles(pkg, slot.path, tuple(m for m in wanted if m not in builtin))


def _kept(path: Path) -> set[str] | None:
    return set(path.read_text().split()) if path.exists() else None


def _tar(deb: Path, dest: Path, members: list[str]) -> None:
    """Extract `members` (paths as in the package, ``./`` first) of `deb`'s data archive into `dest`."""
    feed = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    done = subprocess.run(["tar", "-x", "-C", str(dest), *members], stdin=feed.stdout, capture_output=True, text=True)
    if feed.stdout is not None:
        feed.stdout.close()
    feed.wait()
    if done.returncode != 0 or feed.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AssetError(f"cannot extract {len(members)} file(s) from {deb.name}: {why}")


def _extract(deb: Path, out: Path, release: str, wanted: tuple[str, ...]) -> None:
    """The image, config and module lists, then the wanted modules and (pass by pass) what they depend on."""
    from vmconform.assets.initrd import _modinfo_depends

    base = f"./lib/modules/{release}"
    _tar(deb, out, [f"./boot/vmlinuz-{release}", f"./boot/config-{release}", f"{base}/modules.builtin",
                    f"{base}/modules.order"])  # fmt: skip
    builtin = {_modname(ln) for ln in (out / base / "modules.builtin").read_text().split()}
    paths = {_modname(ln): ln for ln in (out / base / "modules.order").read_text().split()}
    done: set[str] = set()
    todo = {m for m in wanted if m not in builtin}
    while todo:
        missing = sorted(todo - paths.keys())
        if missing:
            raise AssetError(f"kernel {release} has no module {missing[0]!r} (neither built in nor in modules.order)")
        _tar(deb, out, sorted(f"{base}/{paths[m]}" for m in todo))
        done |= todo
        found = {d.replace("-", "_") for m in todo for d in _modinfo_depends((out / base / paths[m]).read_bytes())}
        todo = found - done - builtin
