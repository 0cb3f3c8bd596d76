"""The nested Xen host: Xen's EFI binary, a dom0 kernel and initrd, QEMU's DTB and a boot disk, cached.

What shared/notes/xen-nested.md measured, as a build: Debian bookworm's arm64 Xen (the version
``xen-system-arm64`` depends on) inside ``qemu-system-aarch64 -M virt,virtualization=on,gic-version=3`` (TCG),
started directly by QEMU with the dom0 kernel and initrd as guest-loader modules (the default,
`vmconform.assets.xen_host.qemu_command`), or booted from the ESP of a small GPT disk under AAVMF (the
``efi`` path, kept beside it), with ``BOOTAA64.cfg`` naming the
dom0 kernel (the ABI ``linux-image-arm64`` depends on today, resolved at build time, never pinned),
the dom0 initrd and QEMU's own DTB (``dumpdtb`` with ``-nic none``, the pl061 disabled: Xen's dom0 must
not get the GPIO; the direct path runs on the DTB QEMU generates, pl061 included, and dom0 only registers
it). The initrd (`vmconform.assets.initrd`) holds busybox, bash, util-linux's flock and losetup, coreutils'
tail and base64, dropbear (for the ssh test host only), the Xen toolstack (xenstored, xenconsoled, xen-init-dom0, xl,
xenstore-*), the hotplug scripts, the kernel modules dom0 needs, the domU firmwares of
`vmconform.assets.xen_firmware` under /usr/lib/vmconform/firmware/, and our /init and agent
(vmconform/assets/dom0/: see `vmconform.assets.xen_host` for the control protocol).

The cache folder is keyed on every package version in the initrd's closure, Xen's and the kernel's
versions, the firmwares' keys, the dom0 scripts, the host VM's shape (`HostShape`, which the DTB
depends on) and `RECIPE`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from vmconform.assets import cache
from vmconform.assets.cache import AssetError, digest, locked, need, run
from vmconform.assets.debian import Archive, Package, unpack
from vmconform.assets.initrd import Root
from vmconform.assets.xen_firmware import FIRMWARES, Firmware, FirmwareName, firmware, planned

RECIPE = "xen-host-4"
DOM0 = Path(__file__).parent / "dom0"
FIRMWARE_DIR = "/usr/lib/vmconform/firmware"
DOM0_MODULES = (
    "virtio_mmio",
    "virtio_blk",
    "virtio_console",
    "xen-evtchn",
    "xen-privcmd",
    "xenfs",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-blkback",
    "xen-netback",  # PLAT-6: a vif hot-plugged into a domU (xl network-attach)
    "loop",
    "9pnet_virtio",
    "9p",
)
NET_MODULES = ("virtio_net",)
"""Loaded only when the host VM has a NIC (the ssh test host: `vmconform.assets.xen_host.qemu_command`'s
ssh_port), from /lib/modules/<kver>/net.order; the default host has no network and does not pay for them."""
DOM0_PACKAGES = (
    "bash",
    "busybox-static",
    "util-linux",
    "mount",
    "coreutils",
    "libgcc-s1",
    "xenstore-utils",
    "dropbear-bin",
)
DOM0_BINARIES = (
    "/bin/bash",
    "/usr/sbin/dropbear",  # the ssh server of the ssh test host (a real Xen host driven over ssh, emulated)
    "/usr/bin/flock",
    "/sbin/losetup",
    "/usr/bin/tail",
    "/usr/bin/base64",
    "/usr/bin/xenstore",
    "/usr/bin/xenstore-read",
    "/usr/bin/xenstore-write",
    "/usr/bin/xenstore-rm",
    "/usr/bin/xenstore-exists",
    "/usr/bin/xenstore-list",
    "/usr/bin/xenstore-ls",
    "/usr/bin/xenstore-chmod",
    "/usr/bin/xenstore-watch",
    # dlopen()ed by glibc for pthread_cancel (xl aborts without it), so no DT_NEEDED leads to it
    "/lib/aarch64-linux-gnu/libgcc_s.so.1",
)
XEN_BINARIES = ("xl", "xenstored", "xenconsoled", "xen-init-dom0", "xenconsole", "libxl-save-helper")


@dataclass(frozen=True)
class HostShape:
    """The outer VM the DTB is dumped for; the host VM must be started with the same values."""

    memory_mb: int = 2048
    smp: int = 2
    cpu: str = "cortex-a57"
    gic_version: int = 3
    dom0_mem_mb: int = 512
    dom0_vcpus: int = 1
    """1 measured better than 2 on 2 host cores (U-Boot's PV-disk connect got slower, the host ready at 35 s)."""

    def machine(self) -> str:
        return f"virt,virtualization=on,gic-version={self.gic_version}"


@dataclass(frozen=True)
class XenHost:
    """A built host: every file, the versions that went in, and where each domU firmware sits in dom0."""

    folder: Path
    shape: HostShape
    xen_version: str
    kernel_release: str
    kernel_version: str
    firmwares: tuple[tuple[FirmwareName, str], ...]

    @property
    def disk(self) -> Path:
        """The GPT disk with the ESP (Xen, its cfg, dom0 kernel, initrd, DTB); attach read-only."""
        return self.folder / "host-esp.img"

    @property
    def xen_efi(self) -> Path:
        return self.folder / "xen.efi"

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"

    @property
    def dtb(self) -> Path:
        return self.folder / "virt.dtb"

    def firmware_path(self, name: FirmwareName) -> str:
        """The domU firmware's path inside dom0, for xl's ``kernel=``."""
        return dict(self.firmwares)[name]


def _versions(arc: Archive) -> tuple[str, str, str]:
    hyp = next((d for d in arc.depends("xen-system-arm64") if d.startswith("xen-hypervisor-4")), None)
    utils = next((d for d in arc.depends("xen-system-arm64") if d.startswith("xen-utils-4")), None)
    kimg = next((d for d in arc.depends("linux-image-arm64") if d.startswith("linux-image-")), None)
    if not (hyp and utils and kimg):
        raise AssetError(
            "bookworm/arm64: cannot tell the Xen hypervisor, xen-utils or kernel package from the metapackages"
        )
    return hyp, utils, kimg


@dataclass(frozen=True)
class _Plan:
    slot: cache.Slot
    host: XenHost
    hyp: str
    top: tuple[Package, ...]
    closure: tuple[Package, ...]


def _plan(shape: HostShape, fws: list[Firmware]) -> _Plan:
    arc = Archive("bookworm", "arm64")
    hyp, utils, kimg = _versions(arc)
    closure = arc.resolve([utils, *DOM0_PACKAGES])
    top = arc.resolve([hyp, kimg], closure=False)
    scripts = sorted(DOM0.iterdir())
    lists = repr((DOM0_MODULES, NET_MODULES, DOM0_PACKAGES, DOM0_BINARIES, XEN_BINARIES))
    parts: list[str | Path] = [
        RECIPE,
        lists,
        repr(shape),
        *map(str, top),
        *map(str, closure),
        *scripts,
        *(str(f.path) for f in fws),
    ]
    # one folder per host shape: a new build prunes stale keys of its own shape only
    slot = cache.slot(f"xen/host-{digest([repr(shape)])[:8]}", digest(parts))
    result = XenHost(
        slot.path,
        shape,
        next(p.version for p in top if p.name == hyp),
        kimg.removeprefix("linux-image-"),
        next(p.version for p in top if p.name == kimg),
        tuple((f.name, f"{FIRMWARE_DIR}/{f.name}.bin") for f in fws),
    )
    return _Plan(slot, result, hyp, top, closure)


def host_slot(shape: HostShape = HostShape()) -> cache.Slot:
    """The cache folder the host would be in with today's packages, scripts and firmwares (nothing built)."""
    return _plan(shape, [planned(name) for name in FIRMWARES]).slot


def host(
    shape: HostShape = HostShape(), *, force: bool = False, rebuild_firmware: bool = False
) -> tuple[XenHost, list[tuple[str, Path, bool]]]:
    """The cached Xen host (built first when missing, stale or `force`d) and what was done per artifact.

    The second value lists (artifact, path, built) for each firmware and for the host itself.
    """
    done: list[tuple[str, Path, bool]] = []
    fws: list[Firmware] = []
    for name in FIRMWARES:
        fw, built = firmware(name, force=rebuild_firmware)
        fws.append(fw)
        done.append((f"domU firmware {name} ({fw.source} {fw.version})", fw.path, built))
    plan = _plan(shape, fws)
    what = f"Xen host (xen {plan.host.xen_version}, dom0 {plan.host.kernel_release})"
    if plan.slot.ready and not force:
        done.append((what, plan.slot.path, False))
        return plan.host, done
    need("qemu-system-aarch64", "qemu-system-arm")
    need("fdtput", "device-tree-compiler")
    with locked(plan.slot.path.parent / "lock"):
        if not plan.slot.ready or force:
            with plan.slot.build() as out:
                _build(Archive("bookworm", "arm64"), out, plan, fws)
    done.append((what, plan.slot.path, True))
    return plan.host, done


def _build(arc: Archive, out: Path, plan: _Plan, fws: list[Firmware]) -> None:
    shape, hyp, krel, top, closure = plan.host.shape, plan.hyp, plan.host.kernel_release, plan.top, plan.closure
    work = cache.cache_dir() / "build" / "xen-host"
    shutil.rmtree(work, ignore_errors=True)
    sysroot = work / "root"
    debs = arc.download([*(p for p in top if p.name == hyp), *closure])
    unpack(debs, sysroot)
    kdebs = arc.download([f"linux-image-{krel}"])
    unpack(kdebs, sysroot)
    efis = sorted((sysroot / "boot").glob("xen-*-arm64.efi"))
    if not efis:
        raise AssetError(f"{hyp} has no /boot/xen-*-arm64.efi")
    shutil.copyfile(efis[-1], out / "xen.efi")
    shutil.copyfile(sysroot / "boot" / f"vmlinuz-{krel}", out / "vmlinuz")
    _initrd(sysroot, krel, fws).write(out / "initrd.img")
    _dtb(out / "virt.dtb", shape, work)
    _disk(out, shape)
    manifest = {
        "recipe": RECIPE,
        "shape": asdict(shape),
        "packages": sorted({str(p) for p in (*top, *closure)}),
        "firmwares": {f.name: {"source": f.source, "version": f.version, "inputs": f.patches} for f in fws},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


def _initrd(sysroot: Path, krel: str, fws: list[Firmware]) -> Root:
    root = Root(sysroot, machine="aarch64")
    root.copy("/bin/busybox")
    for binary in DOM0_BINARIES:
        root.elf(binary)
    xenlib = next(iter(sorted((sysroot / "usr/lib").glob("xen-4.*"))), None)
    if xenlib is None:
        raise AssetError("xen-utils unpacked no /usr/lib/xen-4.*")
    for name in XEN_BINARIES:
        root.elf(f"/usr/lib/{xenlib.name}/bin/{name}")
        root.symlink(f"/usr/sbin/{name}", f"../lib/{xenlib.name}/bin/{name}")
    root.tree("/etc/xen")
    # /init loads boot.order; net.order is loaded only when the host VM has a NIC (the ssh test host)
    boot = Root(sysroot, machine="aarch64").modules(krel, _loadable(sysroot, krel, DOM0_MODULES))  # the order only
    every = root.modules(krel, _loadable(sysroot, krel, DOM0_MODULES + NET_MODULES))
    root.file(f"/lib/modules/{krel}/boot.order", "".join(m + "\n" for m in boot).encode())
    root.file(f"/lib/modules/{krel}/net.order", "".join(m + "\n" for m in every if m not in boot).encode())
    for f in fws:
        root.file(f"{FIRMWARE_DIR}/{f.name}.bin", f.path.read_bytes(), 0o644)
    root.file("/init", (DOM0 / "init").read_bytes(), 0o755)
    root.file("/usr/lib/vmconform/agent", (DOM0 / "agent").read_bytes(), 0o755)
    for d in ("/proc", "/sys", "/tmp", "/run", "/work", "/var/lock", "/var/log/xen", "/var/lib/xen", "/etc"):
        root.dir(d)
    root.dir("/root", 0o700)
    root.dir("/etc/dropbear", 0o700)
    root.file("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    root.file("/etc/shells", b"/bin/sh\n/bin/bash\n")
    root.file("/etc/group", b"root:x:0:\n")
    return root


def _loadable(sysroot: Path, krel: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` without the ones built into the kernel (modules.builtin): those need no .ko."""
    listing = sysroot / "lib/modules" / krel / "modules.builtin"
    builtin = (
        {Path(ln).name.split(".ko")[0].replace("-", "_") for ln in listing.read_text().split()}
        if listing.exists()
        else set()
    )
    return tuple(n for n in names if n.replace("-", "_") not in builtin)


def _dtb(path: Path, shape: HostShape, work: Path) -> None:
    run(
        [
            "qemu-system-aarch64",
            "-M",
            f"{shape.machine()},dumpdtb={path}",
            "-cpu",
            shape.cpu,
            "-m",
            f"{shape.memory_mb}M",
            "-smp",
            str(shape.smp),
            "-nic",
            "none",
            "-display",
            "none",
        ]
    )
    # QEMU puts fresh random bytes in /chosen (rng-seed, kaslr-seed) on every dump: drop them so the
    # DTB, and the host disk holding it, are the same bytes for the same inputs
    for prop in run(["fdtget", "-p", path, "/chosen"]).split():
        if prop in ("rng-seed", "kaslr-seed"):
            run(["fdtput", "-d", path, "/chosen", prop])
    nodes = run(["fdtget", "-l", path, "/"]).split()
    for node in nodes:
        if node.startswith("pl061@"):
            run(["fdtput", "-t", "s", path, f"/{node}", "status", "disabled"])
    # fdtput leaves the deleted bytes behind as unused space; a round trip through dtc drops them
    run(["dtc", "-q", "-I", "dtb", "-O", "dtb", "-o", path, path])


DOM0_OPTIONS = "console=hvc0 rdinit=/init quiet"
"""dom0's kernel command line (both boot paths)."""


def xen_options(shape: HostShape) -> str:
    """Xen's command line (both boot paths). ``bootscrub=0``: Xen would otherwise clear every page it hands
    out before its idle scrubber got to it, dom0's 512 MiB first: 10-13 s of the host's start under TCG at load
    11 (measured, 2026-12-04), for a protection a throwaway test host does not need."""
    return f"console=dtuart bootscrub=0 dom0_mem={shape.dom0_mem_mb}M dom0_max_vcpus={shape.dom0_vcpus}"


def _cfg(shape: HostShape) -> bytes:
    return (
        "[global]\ndefault=xen\n\n[xen]\n"
        f"options={xen_options(shape)} dtuart=/pl011@9000000\n"
        f"kernel=vmlinuz {DOM0_OPTIONS}\n"
        "ramdisk=initrd.img\n"
        "dtb=virt.dtb\n"
    ).encode()


def _disk(out: Path, shape: HostShape) -> None:
    from vmconform.image.disk import DiskSpec, build_disk
    from vmconform.image.fat import EspFile

    files = (
        EspFile("EFI/BOOT/BOOTAA64.EFI", (out / "xen.efi").read_bytes()),
        EspFile("EFI/BOOT/BOOTAA64.cfg", _cfg(shape)),
        EspFile("EFI/BOOT/vmlinuz", (out / "vmlinuz").read_bytes()),
        EspFile("EFI/BOOT/initrd.img", (out / "initrd.img").read_bytes()),
        EspFile("EFI/BOOT/virt.dtb", (out / "virt.dtb").read_bytes()),
    )
    total = sum(len(f.data) for f in files)
    size = max(128, (total * 2) // (1 << 20) + 64) << 20
    build_disk(DiskSpec(files=files, size_bytes=size, seed="vmconform-xen-host")).save(out / "host-esp.img")
