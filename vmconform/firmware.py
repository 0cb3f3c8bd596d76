"""Finding a VM's UEFI firmware: QEMU firmware descriptors or explicit paths.

Implements the selection rules of QEMU's firmware interop description
(qemu.git ``docs/interop/firmware.json``): descriptors are JSON files in
``/usr/share/qemu/firmware``, ``/etc/qemu/firmware`` and
``$XDG_CONFIG_HOME/qemu/firmware``; a file in a later directory replaces the
file of the same name in an earlier one (an empty file masks it), and the
merged list is tried in file-name order, first match wins.

Vendor firmware files are only ever read here. Each boot gets its own copy of
the variable-store template (see :func:`copy_vars_template`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import mmap
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# QEMU's names for the guest architectures vmconform knows.
QEMU_ARCH = {"aarch64": "aarch64", "arm": "arm"}

# A conformance run boots an unsigned probe, so firmware that enforces Secure
# Boot is never picked automatically.
UNWANTED_FEATURES = frozenset({"secure-boot", "enrolled-keys", "amd-sev", "amd-sev-es", "intel-tdx"})


class FirmwareError(Exception):
    """A firmware file or descriptor is missing, unreadable or unsuitable (one-line message)."""


@dataclass(frozen=True)
class Firmware:
    """One UEFI firmware build for one architecture.

    ``mapping`` "flash": ``code`` is mapped read-only (pflash unit 0) and ``vars_template``
    is copied per boot, the copy mapped writable (pflash unit 1), as EDK2 expects.
    ``mapping`` "bios": ``code`` is loaded as the boot ROM image (QEMU ``-bios``) and there is
    no separate variable store (U-Boot, for instance, keeps its variables in a file on the ESP).
    """

    name: str
    arch: str
    code: Path
    vars_template: Path | None
    source: str  # where it came from: a descriptor path or "hypervisors.yaml"
    description: str = ""
    mapping: str = "flash"
    xen_domu: str | None = None  # mapping "xen-domu": which domU firmware of the nested Xen host
    secure_boot: str = ""  # "" (not a Secure Boot set-up of vmconform's), "test-key" or "microsoft" (its keys)
    on_host: bool = False  # a Xen domU firmware whose `code` is a path on a real Xen host: no file of it here

    def files(self) -> dict[str, Path]:
        if self.on_host:
            return {}
        out = {"code": self.code}
        if self.vars_template is not None:
            out["vars_template"] = self.vars_template
        return out

    def sha256(self) -> dict[str, str]:
        return {k: file_sha256(p) for k, p in self.files().items()}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def descriptor_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """The descriptor directories in QEMU's precedence order (lowest first)."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "/root")) / ".config")
    return [Path("/usr/share/qemu/firmware"), Path("/etc/qemu/firmware"), Path(xdg) / "qemu" / "firmware"]


def list_descriptors(dirs: Sequence[Path]) -> list[Path]:
    """Merge the directories by file name (later wins, empty masks), sorted by name."""
    chosen: dict[str, Path] = {}
    for d in dirs:
        try:
            entries = sorted(d.iterdir())
        except OSError:
            continue
        for p in entries:
            if p.suffix == ".json":
                chosen[p.name] = p
    result = []
    for name in sorted(chosen):
        p = chosen[name]
        try:
            if p.stat().st_size == 0:
                continue
        except OSError:
            continue
        result.append(p)
    return result


def _machine_matches(machine: str, patterns: Sequence[str]) -> bool:
    machine = machine.split(",", 1)[0]  # "virt,acpi=off" is machine type "virt" with an option
    for pat in patterns:
        if fnmatch.fnmatchcase(machine, pat):
            return True
        # "virt" is QEMU's alias of the newest "virt-X.Y", which descriptors name as "virt-*".
        if pat.endswith("-*") and machine == pat[:-2]:
            return True
    return False


def _from_descriptor(path: Path, name: str, arch: str, machine: str, strict: bool) -> Firmware | None:
    """Read one descriptor. Returns None when it does not fit (or raises when ``strict``)."""

    def unfit(why: str) -> None:
        if strict:
            raise FirmwareError(f"{path}: {why}")

    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        unfit(f"not a readable JSON firmware descriptor ({e})")
        return None
    if not isinstance(doc, dict):
        unfit("not a JSON object")
        return None
    if "uefi" not in doc.get("interface-types", []):
        unfit("interface-types does not include 'uefi'")
        return None
    targets = [t for t in doc.get("targets", []) if isinstance(t, dict)]
    if not any(
        t.get("architecture") == QEMU_ARCH[arch] and _machine_matches(machine, t.get("machines", [])) for t in targets
    ):
        unfit(f"no target for architecture {QEMU_ARCH[arch]} machine {machine}")
        return None
    bad = UNWANTED_FEATURES.intersection(doc.get("features", []))
    if bad and not strict:
        return None
    mapping = doc.get("mapping", {})
    if not isinstance(mapping, dict) or mapping.get("device") != "flash":
        unfit("mapping.device is not 'flash' (vmconform needs a separate variable store)")
        return None
    try:
        code = Path(mapping["executable"]["filename"])
        tmpl = Path(mapping["nvram-template"]["filename"])
    except (KeyError, TypeError):
        unfit("mapping lacks executable.filename or nvram-template.filename")
        return None
    for key in ("executable", "nvram-template"):
        fmt = mapping[key].get("format", "raw")
        if fmt != "raw":
            unfit(f"mapping.{key}.format is {fmt!r}; only raw is supported")
            return None
    for p in (code, tmpl):
        if not os.access(p, os.R_OK):
            unfit(f"names {p}, which is missing or unreadable")
            return None
    return Firmware(name, arch, code, tmpl, source=str(path), description=str(doc.get("description", "")))


def find_by_descriptor(name: str, arch: str, machine: str, dirs: Sequence[Path] | None = None) -> Firmware:
    """The first descriptor that fits arch+machine, with UEFI on flash and no Secure Boot."""
    dirs = descriptor_dirs() if dirs is None else dirs
    for path in list_descriptors(dirs):
        fw = _from_descriptor(path, name, arch, machine, strict=False)
        if fw is not None:
            return fw
    where = ", ".join(str(d) for d in dirs)
    pkg = {"aarch64": "qemu-efi-aarch64", "arm": "qemu-efi-arm"}.get(arch, "the UEFI firmware package")
    raise FirmwareError(
        f"no QEMU firmware descriptor for {arch} machine {machine} (UEFI, flash, no Secure Boot) in {where}; "
        f"install {pkg} or give code:/vars: paths"
    )


def load_descriptor(path: Path, name: str, arch: str, machine: str) -> Firmware:
    fw = _from_descriptor(path, name, arch, machine, strict=True)
    assert fw is not None
    return fw


def explicit(name: str, arch: str, code: Path, vars_template: Path, source: str) -> Firmware:
    for what, p in (("code", code), ("vars", vars_template)):
        _readable(p, what, source)
    return Firmware(name, arch, code, vars_template, source=source)


def boot_rom(name: str, arch: str, bios: Path, source: str) -> Firmware:
    """Firmware loaded as the boot ROM (``-bios``), with no separate variable store."""
    _readable(bios, "bios", source)
    return Firmware(name, arch, bios, None, source=source, mapping="bios")


def xen_domu(name: str, arch: str, domu: str, source: str) -> Firmware:
    """A domU firmware of the nested Xen host (xl's ``kernel=``), built from Debian's sources into the cache."""
    from vmconform.assets.cache import AssetError
    from vmconform.assets.xen_firmware import planned

    try:
        built = planned(domu)  # type: ignore[arg-type]
    except AssetError as e:
        raise FirmwareError(f"{source}: {e}") from None
    if not built.path.is_file():
        raise FirmwareError(
            f"{source}: the Xen domU firmware {domu} is not built ({built.path}); run "
            f"`.venv/bin/python -m vmconform.assets build xen` (scripts/setup.sh test does)"
        )
    return Firmware(name, arch, built.path, None, source, f"{domu} {built.source} {built.version}", "xen-domu", domu)


def _readable(p: Path, what: str, source: str) -> None:
    if not p.is_file() or not os.access(p, os.R_OK):
        raise FirmwareError(f"{source}: {what}: {p} is missing or unreadable; fix the path")


# PE/COFF and TE machine types (PE/COFF spec; UEFI §2.1.1 "UEFI Images").
MACHINE_ARCH = {0xAA64: "aarch64", 0x01C2: "arm", 0x8664: "x86_64", 0x014C: "i386", 0x5064: "riscv64"}
_IMAGE_HEADER = re.compile(
    rb"(?:PE\0\0|VZ)(" + b"|".join(re.escape(m.to_bytes(2, "little")) for m in MACHINE_ARCH) + rb")"
)


def code_architecture(path: Path) -> str | None:
    """The architecture of the executable images inside a firmware file, by majority; None if none is seen.

    EDK2 flash images hold TE images ("VZ" headers) for SEC and PEI; U-Boot binaries carry
    PE headers for their EFI pieces. Both name the machine type right after the signature.
    """
    counts: dict[str, int] = {}
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:  # paged, not read
            for m in _IMAGE_HEADER.finditer(data):
                arch = MACHINE_ARCH[int.from_bytes(m.group(1), "little")]
                counts[arch] = counts.get(arch, 0) + 1
    except (OSError, ValueError):  # unreadable, or empty (mmap refuses a zero-length file)
        return None
    if not counts:
        return None
    arch, n = max(counts.items(), key=lambda kv: kv[1])
    return arch if n >= 2 else None


def preflight(fw: Firmware) -> None:
    """Checks before booting: the code is for the firmware's arch, CODE and VARS belong together, and VARS is a
    variable store at all."""
    found = code_architecture(fw.code)
    if found is not None and found != fw.arch:
        raise FirmwareError(
            f"{fw.source}: {fw.code} holds {found} code, but it is configured for {fw.arch}; "
            f"point {fw.arch} at {fw.arch} firmware"
        )
    if fw.vars_template is not None and not fw.source.endswith(".json"):
        code_size, vars_size = fw.code.stat().st_size, fw.vars_template.stat().st_size
        if code_size != vars_size:
            raise FirmwareError(
                f"{fw.source}: vars {fw.vars_template} is {vars_size} bytes but code {fw.code} is {code_size}; "
                f"use the VARS template of the same firmware build"
            )
    if fw.vars_template is not None:
        from vmconform.varstore import is_edk2_store

        problem = is_edk2_store(fw.vars_template)
        if problem:
            raise FirmwareError(f"{fw.source}: vars: {problem}; give the firmware's VARS template")


def copy_vars_template(fw: Firmware, dest: Path) -> Path | None:
    """A fresh, writable copy of the vendor's variable-store template for one boot (None: the firmware has none)."""
    if fw.vars_template is None:
        return None
    shutil.copyfile(fw.vars_template, dest)
    dest.chmod(0o600)
    return dest
