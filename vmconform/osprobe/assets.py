"""The OS probe's parts, built at set-up from Debian packages and cached: kernel, initramfs, the loader.

For each guest arch: Debian bookworm's kernel (`vmconform.assets.kernel`, shared with the Linux payloads),
an initramfs of ``busybox-static`` and our ``/init`` (vmconform/osprobe/init) with the modules the probe
loads (virtio-pci, virtio-blk, virtio-net, efivarfs), and what gives the kernel its command line and initrd
when the firmware starts the removable-media path with no boot entry:

* aarch64: systemd's EFI stub (``systemd-boot-efi``'s ``linuxaa64.efi.stub``) made into one unified kernel
  image with the command line, the kernel and the initramfs as sections (`vmconform.osprobe.uki`): the stub
  sets the kernel's LoadOptions and serves the initrd through LINUX_EFI_INITRD_MEDIA_GUID.
* arm: GRUB 2.06 (``grub-efi-arm-bin``'s modules, made with the host's ``grub-mkimage`` from ``grub-common``, as
  `vmconform.payloads` does) with a ``grub.cfg`` that loads the kernel and initramfs from the ESP. Measured:
  the armmp kernel has no ``initrd=`` loader, and started through systemd-stub 252 (LoadImage from memory) it
  stops in early boot on AAVMF32 right after efi_init, with or without an initrd, while GRUB's hand-over
  (initrd in the DT) boots. The kernel's PE header is made to declare its decompressor's heap
  (`vmconform.osprobe.zimage`): without it, U-Boot's LoadImage copy of the kernel ends a few pages below the
  initrd, and the heap overwrites the initrd's start.

The folder ``<cache>/osprobe/<arch>/<key>`` is keyed on every package version, the module list, the init
script and `RECIPE`: the same package versions give the same bytes (`vmconform.assets.initrd` writes the
archive with fixed times and order). `boot_files()` makes a case's ESP files in memory.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from vmconform.assets import cache
from vmconform.assets.cache import AssetError, digest, locked, run
from vmconform.assets.debian import Archive, unpack
from vmconform.assets.initrd import Root
from vmconform.assets.kernel import FLAVOURS, KernelFiles, kernel
from vmconform.image.fat import EspFile
from vmconform.osprobe.zimage import declare_heap

__all__ = ["MODULES", "OsProbeParts", "parts"]

RECIPE = "osprobe-2"
INIT = Path(__file__).parent / "init"
MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "efivarfs", "xen_blkfront", "xen_netfront")
"""Modules /init loads (what a mode needs): virtio for QEMU/KVM, Xen PV block and network (xenbus) for Xen domUs."""
PACKAGES = {"aarch64": ("busybox-static", "systemd-boot-efi"), "arm": ("busybox-static", "grub-efi-arm-bin")}
GRUB_MODULES = ("normal", "part_gpt", "fat", "linux", "configfile", "echo")
STUBS = {"aarch64": "linuxaa64.efi.stub", "arm": "linuxarm.efi.stub"}
CONSOLES = {"aarch64": "ttyAMA0", "arm": "ttyAMA0"}


@dataclass(frozen=True)
class OsProbeParts:
    """One arch's built parts: the kernel (in its own cache folder), the initramfs and the EFI stub."""

    arch: str
    folder: Path
    kernel: KernelFiles
    versions: tuple[str, ...]  # "name:arch version" of every Debian package that went in

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"

    @property
    def stub(self) -> Path:
        """systemd's EFI stub (aarch64)."""
        return self.folder / STUBS[self.arch]

    @property
    def grub(self) -> Path:
        """GRUB (arm)."""
        return self.folder / "grub.efi"

    def boot_files(self, cmdline: str, *, signed: bool = False) -> tuple[EspFile, ...]:
        """The ESP files of a case: the removable-media boot file and what it reads. `signed` (a firmware that
        enforces Secure Boot with vmconform's test key in db): the kernel and the whole image signed with that key
        (`vmconform.signing`), aarch64 only: GRUB under Secure Boot needs shim, which Debian has not for arm."""
        if signed and self.arch != "aarch64":
            raise AssetError(f"the OS probe for {self.arch} boots through GRUB, which needs shim under Secure Boot")
        if self.arch == "aarch64":
            return (EspFile("EFI/BOOT/BOOTAA64.EFI", self.uki(cmdline, signed=signed)),)
        cfg = f"set timeout=0\nlinux /EFI/BOOT/vmlinuz {cmdline}\ninitrd /EFI/BOOT/initrd.img\nboot\n"
        return (
            EspFile("EFI/BOOT/BOOTARM.EFI", self.grub.read_bytes()),
            EspFile("EFI/BOOT/grub.cfg", cfg.encode()),
            EspFile("EFI/BOOT/vmlinuz", declare_heap(self.kernel.image.read_bytes())),  # see osprobe.zimage
            EspFile("EFI/BOOT/initrd.img", self.initrd.read_bytes()),
        )

    def cmdline(self, nonce: str, mode: str = "facts", *, acpi: bool = True, extra: str = "", console: str = "") -> str:
        """The kernel command line of a case: console (`console`: the VM's, e.g. hvc0 on Xen; default the PL011),
        the probe's nonce and mode, ``acpi=off`` for a DT boot.

        ``cryptomgr.notests security=none audit=0 mitigations=off`` skip work that tells nothing about the VM
        (crypto self-tests, the LSM, audit, speculation work-arounds): about 0.5 s of kernel boot under TCG.
        ``kpti=0`` (aarch64): KASLR otherwise forces kernel page-table isolation on, whatever ``mitigations=off``
        says; under TCG every kernel entry and exit then switches translation tables and flushes QEMU's TLB, which
        made /init's work take about half as long again. ``rodata=off``: the kernel does not write-protect its own
        text and data nor each module's, which says nothing about the VM; each such change makes every vCPU flush its
        TLB in step (on arm through stop_machine), which under TCG with 4 vCPUs on a busy 2-core host took 0.05-1.6 s a
        time (measured on arm at load 1: /init started at 1.9-2.5 s of uptime instead of 2.1-4 s; at load 5-6, both
        arches, the kernel's boot and /init took 0.84-0.97 x as long). ``loglevel=4`` keeps the console quiet;
        what the verdicts read from the kernel log, /init reads with ``dmesg`` (the log buffer has every level)."""
        words = [f"console={console or CONSOLES[self.arch]}", "panic=-1", "loglevel=4", "printk.time=1", "rdinit=/init",
                 "cryptomgr.notests", "security=none", "audit=0", "mitigations=off", "rodata=off",
                 f"vmconform.nonce={nonce}", f"vmconform.mode={mode}"]  # fmt: skip
        if self.arch == "aarch64":
            words.append("kpti=0")
        if not acpi and self.arch == "aarch64":
            words.append("acpi=off")
        if extra:
            words.append(extra)
        return " ".join(words)

    def uki(self, cmdline: str, *, signed: bool = False) -> bytes:
        """The boot file: systemd's stub with `cmdline`, the kernel and the initramfs as PE sections (`signed`:
        the kernel, which the stub starts with LoadImage, and the whole image signed with the test key)."""
        from vmconform import signing
        from vmconform.osprobe.uki import unified_kernel_image

        osrel = f'ID=vmconform\nNAME="vmconform OS probe"\nVERSION_ID="{self.kernel.package.release}"\n'
        linux = self.kernel.image.read_bytes()
        image = unified_kernel_image(
            self.stub.read_bytes(),
            [
                (".osrel", osrel.encode()),
                (".cmdline", cmdline.encode() + b"\0"),
                (".linux", signing.sign(linux) if signed else linux),
                (".initrd", self.initrd.read_bytes()),
            ],
        )
        return signing.sign(image) if signed else image


def parts(arch: str) -> OsProbeParts:
    """The arch's OS probe parts, built first when missing or stale (AssetError, one line, when they cannot be)."""
    if arch not in FLAVOURS:
        raise AssetError(f"the OS probe has no kernel for arch {arch!r}: choose one of {', '.join(FLAVOURS)}")
    kern = kernel(arch, MODULES)
    arc = Archive("bookworm", kern.package.debian_arch)
    pkgs = arc.resolve(PACKAGES[arch], closure=False)
    if arch == "arm":
        pkgs += Archive("bookworm", _host_arch()).resolve(["grub-common"], closure=False)
    versions = tuple(str(p) for p in pkgs) + (f"{kern.package.name}:{kern.package.debian_arch} {kern.package.version}",)
    slot = cache.slot(f"osprobe/{arch}", digest([RECIPE, repr(MODULES), *versions, INIT]))
    result = OsProbeParts(arch, slot.path, kern, versions)
    if slot.ready:
        return result
    with locked(slot.path.parent / "lock"):
        if not slot.ready:
            with slot.build() as out:
                _build(arc, out, result)
    return result


def _host_arch() -> str:
    """The host's Debian architecture (grub-mkimage runs here)."""
    return run(["dpkg", "--print-architecture"]).strip()


def _build(arc: Archive, out: Path, p: OsProbeParts) -> None:
    work = out / "root"
    unpack(arc.download(arc.resolve(PACKAGES[p.arch], closure=False)), work)
    if p.arch == "aarch64":
        stub = work / "usr/lib/systemd/boot/efi" / STUBS[p.arch]
        if not stub.is_file():
            raise AssetError(f"systemd-boot-efi has no {stub.name} for {p.arch}")
        shutil.copyfile(stub, out / STUBS[p.arch])
    else:
        host = Archive("bookworm", _host_arch())
        tools = unpack(host.download(host.resolve(["grub-common"], closure=False)), out / "host")
        run([tools / "usr/bin/grub-mkimage", "-O", "arm-efi", "-d", work / "usr/lib/grub/arm-efi", "-p", "/EFI/BOOT",
             "-o", out / "grub.efi", *GRUB_MODULES])  # fmt: skip
        shutil.rmtree(out / "host")
    release = p.kernel.package.release
    shutil.copytree(p.kernel.folder / "lib/modules" / release, work / "lib/modules" / release)
    root = Root(work, machine=p.arch)
    root.copy("/bin/busybox")
    root.symlink("/usr/bin/sh", "busybox")
    root.modules(release, p.kernel.modules)
    root.file("/init", INIT.read_bytes(), 0o755)
    for d in ("/proc", "/sys", "/tmp", "/run"):
        root.dir(d)
    root.write(out / "initrd.img", level=9)
    shutil.rmtree(work)
    (out / "manifest.json").write_text(json.dumps({"recipe": RECIPE, "packages": list(p.versions)}, indent=1) + "\n")
