"""Real boot loaders as the boot file: images whose ``\\EFI\\BOOT\\BOOT{AA64,ARM}.EFI`` vmconform did not write.

Each `Payload` is built at set-up from Debian bookworm packages, fetched for the guest's Debian architecture with
`vmconform.assets.debian` (a private apt root: multiarch without touching the host's apt) and kept in the cache:

* ``grub``: GRUB made with ``grub-mkimage`` (the host's build of ``grub-common``, run from its unpacked deb: a host
  tool that writes target images) from the modules of ``grub-efi-arm64-bin`` / ``grub-efi-arm-bin``; its
  ``grub.cfg`` beside it echoes the case's nonce, then GRUB stops at its command line.
* ``linux``: Debian's kernel (``linux-image-arm64`` / ``-armmp``, `vmconform.assets.kernel`) started through its
  EFI stub; with no root file system it panics, which is where its boot is decided.
* ``systemd-boot``: ``systemd-boot-efi``'s loader with a ``loader.conf`` that forces its menu and one entry
  titled with the nonce (pointing at the probe).
* ``shim``: Debian's shim signed by the Microsoft UEFI CA (``shim-signed``) with Debian's signed GRUB
  (``grub-efi-arm64-signed``) beside it, for the Microsoft-keys store (``edk2-ms``); it ends at ``grub>``.

A boot is decided by the payload's own console marker, never by the timeout: a GRUB prompt, a boot menu, a
kernel panic (for want of a root file system: the kernel ran; any other panic: it failed), the firmware's front
page. `run_payload` boots one and says what decided it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vmconform.assets import cache as assets
from vmconform.assets.cache import AssetError, digest, locked
from vmconform.assets.debian import Archive, unpack
from vmconform.console import DEAD_ENDS, DeadEnd, Stop
from vmconform.firmware import Firmware
from vmconform.hypervisors import Backend
from vmconform.image import DiskSpec, EspFile, build_disk
from vmconform.probe import removable_media_path
from vmconform.runner import BootResult, boot
from vmconform.vm import Disk

__all__ = ["PAYLOADS", "Payload", "PayloadRun", "esp_files", "run_payload"]

SUITE = "bookworm"
DEB_ARCH = {"aarch64": "arm64", "arm": "armhf"}
GRUB = {"aarch64": ("grub-efi-arm64-bin", "arm64-efi"), "arm": ("grub-efi-arm-bin", "arm-efi")}
GRUB_MODULES = ("normal", "part_gpt", "part_msdos", "fat", "echo", "configfile")
SD_BOOT = {"aarch64": "systemd-bootaa64.efi", "arm": "systemd-bootarm.efi"}
DISK_SIZE = 128 << 20  # room for Debian's arm64 kernel (about 33 MB) on the ESP
MARK = "VMCONFORM-PAYLOAD"


@dataclass(frozen=True)
class Payload:
    """A boot loader case: which arches and firmwares (by `Firmware.secure_boot`) it is for, what it is."""

    name: str
    arches: tuple[str, ...]
    firmware_keys: tuple[str, ...]  # "" = a firmware that does not enforce Secure Boot; "microsoft" = edk2-ms
    summary: str

    def marker(self, nonce: str) -> str:
        """The console text the payload must print before its decision (proof that this image's loader ran)."""
        return "EFI stub: Booting Linux Kernel" if self.name == "linux" else f"{MARK} {nonce} {self.name}"

    def decisions(self, nonce: str) -> tuple[tuple[DeadEnd, bool], ...]:
        """(console pattern, whether reaching it is the payload's success), checked before the firmware's dead ends."""
        grub_prompt = (_de(r"^grub> ", "GRUB reached its command line (grub>)", partial=True), True)
        shim_fail = (_de(r"Verification failed|Failed to load image|Security Policy Violation",
                         "shim refused the next stage"), False)  # fmt: skip
        own = {
            "grub": (grub_prompt,),
            "shim": (shim_fail, grub_prompt),
            "systemd-boot": ((_de(re.escape(self.marker(nonce)), "systemd-boot shows its menu", partial=True), True),),
            "linux": (
                (
                    _de(
                        r"Kernel panic - not syncing: VFS: Unable to mount root fs",
                        "the kernel ran and panicked for want of a root file system",
                    ),
                    True,
                ),
            ),  # fmt: skip
        }[self.name]
        return own  # then the firmware's dead ends: its front page, shell, refusals, exceptions, other panics


def _de(rx: str, meaning: str, partial: bool = False) -> DeadEnd:
    return DeadEnd(re.compile(rx), meaning, partial)


PAYLOADS: dict[str, Payload] = {
    p.name: p
    for p in (
        Payload("grub", ("aarch64", "arm"), ("",), "GRUB 2.06 (grub-mkimage, Debian's modules), to its prompt"),
        Payload("linux", ("aarch64", "arm"), ("",), "Debian's kernel through its EFI stub, to its panic (no root)"),
        Payload("systemd-boot", ("aarch64", "arm"), ("",), "systemd-boot 252 (Debian), to its menu"),
        Payload("shim", ("aarch64",), ("microsoft",), "shim 16.1 (Microsoft-signed) and signed GRUB, to grub>"),
    )
}


# --- building -------------------------------------------------------------------------------------------


@cache
def _package(debian_arch: str, name: str) -> Path:
    """Package `name` of `debian_arch` unpacked into the cache (keyed by its version); the folder."""
    arc = Archive(SUITE, debian_arch)
    version = arc.version(name)
    slot = assets.slot(f"payloads/{name}_{debian_arch}", digest(["payload-deb-1", SUITE, name, version]))
    with locked(slot.path.parent / "lock"):
        if not slot.ready:
            (deb,) = arc.download([name])
            with slot.build() as out:
                unpack([deb], out)
    return slot.path


def _host_arch() -> str:
    done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssetError("dpkg --print-architecture failed: the payloads need a Debian or Ubuntu host")
    return done.stdout.strip()


@cache
def grub_image(arch: str) -> bytes:
    """GRUB for `arch` made by the host's grub-mkimage from Debian's modules (prefix /EFI/BOOT), cached.

    grub-mkimage runs from the unpacked ``grub-common`` of the host's architecture; of its libraries only
    libdevmapper may be missing on a host without LVM or libvirt, so its deb is unpacked beside it and put first
    on LD_LIBRARY_PATH (liblzma, libselinux, libudev, libpcre2 and libc are on every Debian system)."""
    package, platform = GRUB[arch]
    host = _host_arch()
    tools, dm = _package(host, "grub-common"), _package(host, "libdevmapper1.02.1")
    modules = _package(DEB_ARCH[arch], package)
    slot = assets.slot(f"payloads/grub-{arch}", digest(["grub-mkimage-1", str(tools), str(modules), *GRUB_MODULES]))
    with locked(slot.path.parent / "lock"):
        if not slot.ready:
            libs = sorted({str(p.parent) for p in dm.rglob("libdevmapper.so*")})
            env = dict(os.environ, LD_LIBRARY_PATH=":".join([*libs, os.environ.get("LD_LIBRARY_PATH", "")]))
            with slot.build() as out:
                argv = [str(tools / "usr/bin/grub-mkimage"), "-O", platform, "-d",
                        str(modules / "usr/lib/grub" / platform), "-p", "/EFI/BOOT", "-o", str(out / "grub.efi"),
                        *GRUB_MODULES]  # fmt: skip
                done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    why = ([ln for ln in done.stderr.splitlines() if ln.strip()] or ["no output"])[-1]
                    raise AssetError(f"grub-mkimage (from {tools}) failed (exit {done.returncode}): {why}")
    return (slot.path / "grub.efi").read_bytes()


def esp_files(payload: Payload, arch: str, nonce: str) -> tuple[EspFile, ...]:
    """The ESP of `payload`'s image for `arch`: the boot file at the removable-media path and what it reads."""
    boot_path = removable_media_path(arch)
    folder = boot_path.rsplit("/", 1)[0]
    grub_cfg = EspFile(f"{folder}/grub.cfg", f'echo "{payload.marker(nonce)}"\n'.encode())
    if payload.name == "grub":
        return (EspFile(boot_path, grub_image(arch)), grub_cfg)
    if payload.name == "linux":
        from vmconform.assets.kernel import kernel

        return (EspFile(boot_path, kernel(arch).image.read_bytes()),)
    if payload.name == "systemd-boot":
        from vmconform.probe import build_probe

        loader = _package(DEB_ARCH[arch], "systemd-boot-efi") / "usr/lib/systemd/boot/efi" / SD_BOOT[arch]
        entry = f"title {payload.marker(nonce)}\nefi /EFI/vmconform/probe.efi\n"  # not the loader itself: hidden
        return (EspFile(boot_path, loader.read_bytes()), EspFile("loader/loader.conf", b"timeout menu-force\n"),
                EspFile("loader/entries/vmconform.conf", entry.encode()),
                EspFile("EFI/vmconform/probe.efi", build_probe(arch, nonce)))  # fmt: skip
    if payload.name == "shim":
        shim = _package("arm64", "shim-signed") / "usr/lib/shim/shimaa64.efi.signed"
        grub = _package("arm64", "grub-efi-arm64-signed") / "usr/lib/grub/arm64-efi-signed/grubaa64.efi.signed"
        return (EspFile(boot_path, shim.read_bytes()), EspFile(f"{folder}/grubaa64.efi", grub.read_bytes()), grub_cfg)
    raise ValueError(f"unknown payload {payload.name!r}; known: {', '.join(PAYLOADS)}")


# --- booting --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayloadRun:
    """One boot of a payload: the result (its stop "matched" when the payload's own success decided it), whether
    its marker was on the console before that, and the disk."""

    payload: Payload
    arch: str
    result: BootResult
    nonce: str
    succeeded: bool  # the deciding console text is the payload's success
    marker_seen: bool
    disk: Disk

    def describe(self) -> str:
        seen = "" if self.marker_seen else f"; {self.payload.marker(self.nonce)!r} never appeared before it"
        return f"{self.result.stop.detail}{seen}"


def run_payload(backend: Backend, arch: str, firmware: Firmware, payload: Payload, nonce: str, workdir: Path,
                out_dir: Path, timeout: float, tag: str = "") -> PayloadRun:  # fmt: skip
    """Build `payload`'s image for `arch` in `workdir` and boot it with a fresh vars copy; AssetError (one line)
    when a package cannot be fetched or built."""
    workdir.mkdir(parents=True, exist_ok=True)
    image = workdir / f"{arch}-{payload.name}.img"
    spec = DiskSpec(files=esp_files(payload, arch, nonce), seed=f"payload-{payload.name}:{nonce}", size_bytes=DISK_SIZE)
    build_disk(spec).save(image)
    decisions = payload.decisions(nonce)
    good = {de.meaning for de, ok in decisions if ok}
    dead_ends = (*(de for de, _ in decisions), *DEAD_ENDS)
    result = boot(backend, arch, (Disk(image),), firmware, None, out_dir, timeout, tag=tag, dead_ends=dead_ends)
    succeeded = result.stop.reason == "dead-end" and result.stop.detail in good
    if succeeded:  # the payload's own success: a decision, not a dead end
        result = dataclasses.replace(result, stop=Stop("matched", *dataclasses.astuple(result.stop)[1:]))
    text = result.transcript.read_text(errors="replace") if result.transcript.is_file() else result.tail
    marker = payload.marker(nonce)
    before = text.split(result.stop.line.strip(), 1)[0] if result.stop.line.strip() else text
    return PayloadRun(
        payload, arch, result, nonce, succeeded, marker in before or marker in result.stop.line, Disk(image)
    )
