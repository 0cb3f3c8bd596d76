"""The domU firmwares of the nested Xen host, built from Debian's own source packages.

A Xen-on-Arm domU's "kernel" is the UEFI firmware that then boots the case's disk image:

* ``edk2``: EDK2's ArmVirtXen platform, ``XEN_EFI.fd``, from ``apt-get source edk2`` (bookworm), built
  with ``PcdPlatformBootTimeOut=0`` (ArmVirtXen counts 3 s down before every boot otherwise), the
  SecureBootVariableLib .dsc fix (patches/edk2-armvirtxen-securebootvariablelib.patch), and
  ``liblto-aarch64.a`` rebuilt from its ``.s`` the way debian/rules does (Debian strips the binary).
* ``u-boot-stock``: U-Boot ``xenguest_arm64_defconfig`` from ``apt-get source u-boot``, with only
  patches/u-boot-xenguest-stock.fragment (no 10 s autoboot delay, a bootcmd that tries the
  removable-media path) and patches/u-boot-xenbus-reply.patch (xenbus waits for any unread reply of
  xenstored, not for one that comes after it looked, and for 60 s: on a loaded host a reply that came first
  was missed, every later answer was read one request off and U-Boot crashed, at random), so the report can
  show what the stock configuration does.
* ``u-boot-fixed``: the same plus patches/u-boot-xenguest-fixed.fragment (GPT, PSCI power-off/reset),
  patches/u-boot-pvblock-efi-devpath.patch (an EFI device path for PV disks) and
  patches/u-boot-xenguest-release-xen-pages.patch (Xen's shared_info and grant-table pages given back at
  ExitBootServices, so that Linux started through UEFI can map them).

Each is built with Debian's cross compiler (gcc-aarch64-linux-gnu), ``nice -n 10`` and ``-j2``, into a
cache folder keyed on the source version, the cross compiler's version, our patches and fragments and
`RECIPE`; its manifest.json records what went in. SOURCE_DATE_EPOCH comes from debian/changelog: two
U-Boot builds (different cache folders, hours apart) gave byte-identical u-boot.bin; XEN_EFI.fd embeds one
build-folder path (so it is the same bytes only for the same cache location; its FV is LZMA-compressed,
so that one string changes most bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vmconform.assets import cache
from vmconform.assets.cache import AssetError, digest, locked, need, run
from vmconform.assets.debian import Archive

PATCHES = Path(__file__).parent / "patches"
RECIPE = "xen-firmware-2"
"""Bump when the build steps below change in a way that changes the output."""
CROSS = "aarch64-linux-gnu-"
JOBS = "2"
FirmwareName = Literal["edk2", "u-boot-stock", "u-boot-fixed"]
FIRMWARES: tuple[FirmwareName, ...] = ("edk2", "u-boot-stock", "u-boot-fixed")
HOST_BUILD_PACKAGES = {
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "make": "make",
    "gcc": "gcc",
    "g++": "g++",
    "bison": "bison",
    "flex": "flex",
    "bc": "bc",
    "patch": "patch",
    "python3": "python3",
}
HOST_BUILD_FILES = {
    "/usr/include/uuid/uuid.h": "uuid-dev",
    "/usr/include/openssl/evp.h": "libssl-dev",
    "/usr/include/gnutls/gnutls.h": "libgnutls28-dev",
}


@dataclass(frozen=True)
class Firmware:
    """A built domU firmware: the file to give xl as ``kernel=``, and how it was made."""

    name: FirmwareName
    path: Path
    source: str
    version: str
    patches: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def ensure_build_tools() -> None:
    """Install (as root) or name the host packages the firmware builds need."""
    missing = [pkg for tool, pkg in HOST_BUILD_PACKAGES.items() if not shutil.which(tool)]
    missing += [pkg for f, pkg in HOST_BUILD_FILES.items() if not os.path.exists(f)]
    if missing:
        cache.install(sorted(set(missing)), why="the firmware build tools")


def _inputs(name: FirmwareName) -> tuple[str, tuple[Path, ...]]:
    if name == "edk2":
        return "edk2", (PATCHES / "edk2-armvirtxen-securebootvariablelib.patch",)
    # both: a race in U-Boot's xenbus crashes either at random on a loaded host (see the patch)
    stock = (PATCHES / "u-boot-xenguest-stock.fragment", PATCHES / "u-boot-xenbus-reply.patch")
    if name == "u-boot-stock":
        return "u-boot", stock
    fixed = (
        "u-boot-xenguest-fixed.fragment",
        "u-boot-pvblock-efi-devpath.patch",
        "u-boot-xenguest-release-xen-pages.patch",
    )
    return "u-boot", (*stock, *(PATCHES / f for f in fixed))


def _cross_version() -> str:
    if shutil.which(f"{CROSS}gcc") is None:
        return "missing"
    out = subprocess.run([f"{CROSS}gcc", "-dumpfullversion"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def firmware(name: FirmwareName, *, force: bool = False, log_dir: Path | None = None) -> tuple[Firmware, bool]:
    """The cached firmware `name`, built first when missing or `force`d; returns it and whether it was built."""
    ensure_build_tools()
    slot, result = _plan(name)
    arc = Archive("bookworm", "arm64")
    source, inputs = _inputs(name)
    out_name = result.path.name
    version = result.version
    if slot.ready and not force:
        return result, False
    with locked(slot.path.parent / "lock"):
        if slot.ready and not force:
            return result, False
        with slot.build() as out:
            work = cache.cache_dir() / "build" / name
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            # the log lives outside the temporary folder so that a failed build's message can name it
            log = (log_dir or cache.cache_dir() / "logs") / f"build-{name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")
            src = arc.source(source, work)
            for patch in inputs:
                if patch.suffix == ".patch":
                    apply_patch(src, patch, log)
            env = _build_env(src)
            built = _build_edk2(src, log, env) if name == "edk2" else _build_uboot(src, inputs, log, env)
            shutil.copyfile(built, out / out_name)
            shutil.copyfile(log, out / log.name)
            manifest = {
                "name": name,
                "source": source,
                "version": version,
                "cross_gcc": _cross_version(),
                "inputs": [p.name for p in inputs],
                "recipe": RECIPE,
            }
            (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
            shutil.rmtree(work, ignore_errors=True)
    return result, True


def _plan(name: FirmwareName) -> tuple[cache.Slot, Firmware]:
    if name not in FIRMWARES:
        raise AssetError(f"unknown Xen domU firmware {name!r}: give one of {', '.join(FIRMWARES)}")
    source, inputs = _inputs(name)
    version = Archive("bookworm", "arm64").source_version(source)
    key = digest([RECIPE, name, source, version, _cross_version(), *inputs])
    slot = cache.slot(f"xen/{name}", key)
    out_name = "XEN_EFI.fd" if name == "edk2" else "u-boot.bin"
    return slot, Firmware(name, slot.path / out_name, source, version, tuple(p.name for p in inputs))


def firmware_slot(name: FirmwareName) -> cache.Slot:
    """The cache folder firmware `name` would be in with today's sources, patches and compiler (not built)."""
    return _plan(name)[0]


def planned(name: FirmwareName) -> Firmware:
    """Firmware `name` as it would be cached today, whether or not it is built yet."""
    return _plan(name)[1]


def apply_patch(src: Path, patch: Path, log: Path) -> None:
    """Apply `patch` (-p1) in `src`; files it touches that have CRLF line ends are turned into LF first."""
    need("patch", "patch")
    for line in patch.read_text().splitlines():
        if line.startswith("+++ b/"):
            target = src / line[6:].split("\t")[0]
            if target.exists() and b"\r\n" in target.read_bytes():
                target.write_bytes(target.read_bytes().replace(b"\r\n", b"\n"))
    run(["patch", "-p1", "--forward", "-i", patch], cwd=src, log=log)


def _build_env(src: Path) -> dict[str, str]:
    """The build environment: SOURCE_DATE_EPOCH from debian/changelog (U-Boot's version date and gcc's
    __DATE__/__TIME__, which EDK2 prints, follow it), so a rebuild of the same source gives the same bytes."""
    stamp = run(["dpkg-parsechangelog", "-l", src / "debian/changelog", "-STimestamp"]).strip()
    return dict(os.environ, SOURCE_DATE_EPOCH=stamp, LC_ALL="C", TZ="UTC")


def _build_uboot(src: Path, inputs: tuple[Path, ...], log: Path, env: dict[str, str]) -> Path:
    make = ["make", f"CROSS_COMPILE={CROSS}", f"-j{JOBS}"]
    run([*make, "xenguest_arm64_defconfig"], cwd=src, log=log, nice=True, env=env)
    config = src / ".config"
    wanted: list[str] = []
    for frag in inputs:
        if frag.suffix == ".fragment":
            lines = [ln for ln in frag.read_text().splitlines() if ln.startswith("CONFIG_")]
            wanted += lines
            with config.open("a") as f:
                f.write("\n".join(lines) + "\n")
    run([*make, "olddefconfig"], cwd=src, log=log, nice=True, env=env)
    have = set(config.read_text().splitlines())
    lost = [w for w in wanted if w not in have]
    if lost:
        raise AssetError(f"U-Boot's Kconfig dropped {', '.join(lost)} (a dependency is missing; see {log})")
    run([*make, "u-boot.bin"], cwd=src, log=log, nice=True, env=env)
    return src / "u-boot.bin"


def _build_edk2(src: Path, log: Path, env: dict[str, str]) -> Path:
    lto = src / "ArmPkg/Library/GccLto"
    run([f"{CROSS}gcc", "-c", "-fpic", lto / "liblto-aarch64.s", "-o", lto / "liblto-aarch64.a"], log=log, env=env)
    setup = "export GCC5_AARCH64_PREFIX={c} PYTHON3_ENABLE=TRUE PYTHON_COMMAND=/usr/bin/python3; . ./edksetup.sh"
    script = (
        setup.format(c=CROSS) + f" && make -C BaseTools -j{JOBS}"
        " && build -a AARCH64 -t GCC5 -b RELEASE -p ArmVirtPkg/ArmVirtXen.dsc"
        f" -n {JOBS} --pcd gEfiMdePkgTokenSpaceGuid.PcdPlatformBootTimeOut=0 -D FIRMWARE_VER=vmconform"
    )
    run(["bash", "-c", script], cwd=src, log=log, nice=True, env=env)
    fd = src / "Build/ArmVirtXen-AARCH64/RELEASE_GCC5/FV/XEN_EFI.fd"
    if not fd.exists():
        raise AssetError(f"the EDK2 build made no {fd.name} (see {log})")
    return fd
