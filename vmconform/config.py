"""``hypervisors.yaml``: the hypervisor backends a run can boot on, validated on load.

Format (see the file in the repository root for a commented example)::

    default: qemu                 # used when --hypervisor is not given
    hypervisors:
      qemu:                       # the name --hypervisor takes
        backend: qemu             # which module under vmconform/hypervisors drives it
        accel: tcg                # backend-specific settings ...
        arches:
          aarch64: {binary: qemu-system-aarch64, machine: virt, cpu: cortex-a57, memory: 512M}
        firmwares:                # the first one is the default
          edk2:
            aarch64: auto         # QEMU firmware descriptors; or {descriptor: PATH}; or {code: PATH, vars: PATH}

Every problem is reported as one :class:`ConfigError` line that names the file,
the line, the key and what to do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vmconform import clauses as clmod
from vmconform import firmware as fwmod
from vmconform.hypervisors import BACKENDS as BACKEND_REGISTRY
from vmconform.yamlfile import ConfigError, Reader, kind, parse, read_text

__all__ = [
    "ArchSettings", "ConfigError", "FirmwareRef", "HypervisorEntry", "HypervisorsFile", "check_ready", "load",
    "resolve_binary", "resolve_firmware",
]  # fmt: skip

ARCHES = ("aarch64", "arm")


@dataclass(frozen=True)
class ArchSettings:
    arch: str
    binary: str
    machine: str
    cpu: str
    memory: str
    extra_args: tuple[str, ...] = ()
    gic_versions: tuple[int, ...] = ()  # GIC versions the VM can be given (V2-7 boots each); () = not declared


@dataclass(frozen=True)
class FirmwareRef:
    """How to find one firmware for one arch, as written in the file."""

    name: str
    arch: str
    kind: str  # "auto" | "descriptor" | "paths" | "bios" | "secure_boot" | "xen_domu"
    key: str  # dotted key in the file, for messages
    line: int
    descriptor: Path | None = None
    code: Path | None = None
    vars: Path | None = None
    bios: Path | None = None
    xen_domu: str | None = None
    secure_boot: str | None = None  # kind "secure_boot": which keys the vars template made at set-up enrolls


@dataclass(frozen=True)
class HypervisorEntry:
    name: str
    backend: str
    source: Path
    line: int
    description: str = ""
    accel: str = "tcg"
    timeout: float = 60.0
    extra_args: tuple[str, ...] = ()
    arches: Mapping[str, ArchSettings] = field(default_factory=dict)
    firmwares: Mapping[str, Mapping[str, FirmwareRef]] = field(default_factory=dict)
    not_supported: Mapping[str, str] = field(default_factory=dict)  # clause ID -> the declared reason
    options: Mapping[str, str] = field(default_factory=dict)  # the backend's own keys (BACKEND_KEYS), defaults filled

    @property
    def default_firmware(self) -> str:
        return next(iter(self.firmwares))


@dataclass(frozen=True)
class HypervisorsFile:
    path: Path
    default: str
    entries: Mapping[str, HypervisorEntry]

    def get(self, name: str | None) -> HypervisorEntry:
        name = name or self.default
        if name not in self.entries:
            names = ", ".join(sorted(self.entries))
            raise ConfigError(
                f"{self.path}: no hypervisor named {name!r}; configured: {names} "
                f"(choose one with --hypervisor, or add an entry under 'hypervisors:')"
            )
        return self.entries[name]


# --- schema -----------------------------------------------------------------

BACKENDS = tuple(BACKEND_REGISTRY)  # the backend names hypervisors.yaml may use
TOP_KEYS = {"default", "hypervisors"}
ENTRY_KEYS = {"backend", "description", "accel", "timeout", "extra_args", "arches", "firmwares", "not_supported"}
ARCH_KEYS = {"binary", "machine", "cpu", "memory", "extra_args", "gic_versions"}
GIC_VERSIONS = (2, 3, 4)
# Entry keys only one backend takes: backend -> key -> (default, allowed values; () means any non-empty string).
BACKEND_KEYS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "qemu": {},
    "libvirt": {"uri": ("qemu:///system", ()), "run_as": ("caller", ("caller", "libvirt"))},
    # xen_host: nested, or an ssh command; vuart: the domU's emulated UART (xl's vuart=), none by default as xl's
    "xen": {"xen_host": ("nested", ()), "workdir": ("/tmp/vmconform", ()), "vuart": ("none", ("none", "sbsa_uart"))},
}
ACCELS = ("tcg", "kvm", "hvf")
FW_PATH_KEYS = {"code", "vars"}
FW_DESC_KEYS = {"descriptor"}
FW_BIOS_KEYS = {"bios"}
FW_SB_KEYS = {"secure_boot", "code"}
SECURE_BOOT_KEYS = ("test-key", "microsoft")
"""`secure_boot:` values: vmconform's test key alone in PK/KEK/db (and a revoked one in dbx), or Debian's
Microsoft-keys store with the test key added to db (`vmconform.signing`)."""
FW_XEN_KEYS = {"xen_domu", "path"}  # a domU firmware (vmconform.assets.xen_firmware); path: on a real Xen host


def load(path: Path) -> HypervisorsFile:
    """Read and structurally validate the file (no binaries or firmware are touched)."""
    text = read_text(path)
    try:
        data, lines = parse(text, path)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix the syntax") from None
    r = Reader(path, lines)
    top = r.mapping(data, (), TOP_KEYS)
    if "hypervisors" not in top:
        raise r.err((), "missing key 'hypervisors' (a mapping of name -> backend settings)")
    hvs = r.mapping(top["hypervisors"], ("hypervisors",))
    if not hvs:
        raise r.err(("hypervisors",), "is empty; configure at least one hypervisor")
    entries = {name: _entry(r, name, spec) for name, spec in hvs.items()}
    default = top.get("default", next(iter(entries)))
    default = r.string(default, ("default",))
    if default not in entries:
        raise r.err(("default",), f"names {default!r}, which is not under 'hypervisors' ({', '.join(entries)})")
    return HypervisorsFile(path, default, entries)


def _entry(r: Reader, name: str, spec: Any) -> HypervisorEntry:
    kp = ("hypervisors", name)
    spec = r.mapping(spec, kp)
    named = spec.get("backend")
    if isinstance(named, str) and named in BACKEND_KEYS:
        own = set(BACKEND_KEYS[named])
    else:  # no backend or an unknown one: reported below, after unknown keys as before
        own = set().union(*BACKEND_KEYS.values())
    r.mapping(spec, kp, ENTRY_KEYS | own)
    if "backend" not in spec:
        raise r.err(kp, f"missing key 'backend' (one of: {', '.join(BACKENDS)})")
    backend = r.string(spec["backend"], kp + ("backend",))
    if backend not in BACKENDS:
        raise r.err(kp + ("backend",), f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    options = {}
    for key, (default, choices) in BACKEND_KEYS[backend].items():
        options[key] = r.string(spec.get(key, default), kp + (key,))
        if choices and options[key] not in choices:
            raise r.err(kp + (key,), f"{options[key]!r} is not one of: {', '.join(choices)}")
    accel = r.string(spec.get("accel", "tcg"), kp + ("accel",))
    if accel not in ACCELS:
        raise r.err(kp + ("accel",), f"unknown accelerator {accel!r}; use one of {', '.join(ACCELS)}")
    if "arches" not in spec:
        raise r.err(kp, "missing key 'arches' (per-architecture binary/machine/cpu/memory)")
    arches_spec = r.mapping(spec["arches"], kp + ("arches",), set(ARCHES))
    if not arches_spec:
        raise r.err(kp + ("arches",), f"is empty; configure at least one of {', '.join(ARCHES)}")
    arches = {a: _arch(r, kp + ("arches", a), a, s) for a, s in arches_spec.items()}
    if "firmwares" not in spec:
        raise r.err(kp, "missing key 'firmwares' (name -> per-arch firmware: auto, descriptor or code/vars)")
    fws_spec = r.mapping(spec["firmwares"], kp + ("firmwares",))
    if not fws_spec:
        raise r.err(kp + ("firmwares",), "is empty; configure at least one firmware")
    firmwares: dict[str, dict[str, FirmwareRef]] = {}
    for fwname, per_arch in fws_spec.items():
        fkp = kp + ("firmwares", fwname)
        per_arch = r.mapping(per_arch, fkp, set(arches))
        firmwares[fwname] = {a: _fwref(r, fkp + (a,), fwname, a, v) for a, v in per_arch.items()}
    ns_spec = r.mapping(spec.get("not_supported", {}), kp + ("not_supported",))
    not_supported = {}
    for clause_id, reason in ns_spec.items():
        if clause_id not in clmod.BY_ID:
            raise r.err(kp + ("not_supported", clause_id), f"unknown clause; known: {', '.join(clmod.BY_ID)}")
        not_supported[clause_id] = r.string(reason, kp + ("not_supported", clause_id))
    return HypervisorEntry(
        name=name,
        backend=backend,
        source=r.path,
        line=r.line(kp),
        description=str(spec.get("description", "")),
        accel=accel,
        timeout=r.number(spec.get("timeout", 60), kp + ("timeout",)),
        extra_args=r.strings(spec.get("extra_args", []), kp + ("extra_args",)),
        arches=arches,
        firmwares=firmwares,
        not_supported=not_supported,
        options=options,
    )


def _arch(r: Reader, kp: tuple[str, ...], arch: str, spec: Any) -> ArchSettings:
    spec = r.mapping(spec, kp, ARCH_KEYS)
    for key in ("binary", "machine", "cpu", "memory"):
        if key not in spec:
            raise r.err(kp, f"missing key {key!r}")
    extra = r.strings(spec.get("extra_args", []), kp + ("extra_args",))
    return ArchSettings(
        arch=arch,
        binary=_expand(r, r.string(spec["binary"], kp + ("binary",)), kp + ("binary",)),
        machine=r.string(spec["machine"], kp + ("machine",)),
        cpu=r.string(spec["cpu"], kp + ("cpu",)),
        memory=r.string(str(spec["memory"]), kp + ("memory",)),
        extra_args=tuple(_expand(r, a, kp + ("extra_args",)) for a in extra),
        gic_versions=_gic_versions(r, spec.get("gic_versions", []), kp + ("gic_versions",)),
    )


def _gic_versions(r: Reader, value: Any, kp: tuple[str, ...]) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(v) is int and v in GIC_VERSIONS for v in value):
        raise r.err(kp, f"must be a list of GIC versions from {list(GIC_VERSIONS)}, e.g. [2, 3]; not {value!r}")
    return tuple(dict.fromkeys(value))


def _fwref(r: Reader, kp: tuple[str, ...], name: str, arch: str, spec: Any) -> FirmwareRef:
    key = ".".join(kp)
    line = r.line(kp)
    if spec == "auto":
        return FirmwareRef(name, arch, "auto", key, line)
    if isinstance(spec, dict) and "bios" in spec:
        spec = r.mapping(spec, kp, FW_BIOS_KEYS)
        return FirmwareRef(name, arch, "bios", key, line, bios=_path(r, spec["bios"], kp + ("bios",)))
    if isinstance(spec, dict) and "xen_domu" in spec:
        spec = r.mapping(spec, kp, FW_XEN_KEYS)
        domu = r.string(spec["xen_domu"], kp + ("xen_domu",))
        from vmconform.assets.xen_firmware import FIRMWARES

        if domu not in FIRMWARES:
            raise r.err(kp + ("xen_domu",), f"{domu!r} is not one of: {', '.join(FIRMWARES)}")
        on_host = Path(r.string(spec["path"], kp + ("path",))) if "path" in spec else None
        if on_host is not None and not on_host.is_absolute():
            raise r.err(kp + ("path",), f"{str(on_host)!r} must be an absolute path on the Xen host")
        return FirmwareRef(name, arch, "xen_domu", key, line, xen_domu=domu, code=on_host)
    if isinstance(spec, dict) and "secure_boot" in spec:
        spec = r.mapping(spec, kp, FW_SB_KEYS)
        keys = r.string(spec["secure_boot"], kp + ("secure_boot",))
        if keys not in SECURE_BOOT_KEYS:
            raise r.err(kp + ("secure_boot",), f"{keys!r} is not one of: {', '.join(SECURE_BOOT_KEYS)}")
        code = _path(r, spec["code"], kp + ("code",)) if "code" in spec else None
        return FirmwareRef(name, arch, "secure_boot", key, line, code=code, secure_boot=keys)
    if isinstance(spec, dict) and "descriptor" in spec:
        spec = r.mapping(spec, kp, FW_DESC_KEYS)
        return FirmwareRef(
            name, arch, "descriptor", key, line, descriptor=_path(r, spec["descriptor"], kp + ("descriptor",))
        )
    if isinstance(spec, dict):
        spec = r.mapping(spec, kp, FW_PATH_KEYS)
        for k in ("code", "vars"):
            if k not in spec:
                raise r.err(kp, f"missing key {k!r} (give both code: and vars:, or 'auto', or descriptor:)")
        return FirmwareRef(
            name,
            arch,
            "paths",
            key,
            line,
            code=_path(r, spec["code"], kp + ("code",)),
            vars=_path(r, spec["vars"], kp + ("vars",)),
        )
    raise r.err(
        kp,
        f"must be 'auto', {{descriptor: PATH}}, {{code: PATH, vars: PATH}}, {{bios: PATH}} or "
        f"{{secure_boot: {' | '.join(SECURE_BOOT_KEYS)}}}, not {kind(spec)}",
    )


def _path(r: Reader, value: Any, kp: tuple[str, ...]) -> Path:
    p = Path(os.path.expanduser(_expand(r, r.string(value, kp), kp)))
    return p if p.is_absolute() else (r.path.parent / p)


CACHE_VAR = "${VMCONFORM_CACHE}"


def _expand(r: Reader, text: str, kp: tuple[str, ...]) -> str:
    """``${VMCONFORM_CACHE}`` -> vmconform's cache folder (where scripts/fetch-releases unpacks releases)."""
    if "${" not in text:
        return text
    from vmconform.assets.cache import cache_dir

    rest = text.replace(CACHE_VAR, "")
    if "${" in rest:
        raise r.err(kp, f"{text!r}: only {CACHE_VAR} is expanded here (vmconform's cache folder)")
    return text.replace(CACHE_VAR, str(cache_dir()))


def fetch_hint(path: Path | str) -> str:
    """The hint "; run scripts/fetch-releases" when `path` lies in the releases cache, else ""."""
    from vmconform.assets.cache import cache_dir

    releases = cache_dir() / "releases"
    return "; run scripts/fetch-releases" if releases in Path(path).parents else ""


# --- resources: checked only for what a run is about to use ----------------


def resolve_binary(entry: HypervisorEntry, arch: str) -> str:
    s = entry.arches[arch]
    found = shutil.which(s.binary)
    if found is None:
        pkg = {"aarch64": "qemu-system-arm", "arm": "qemu-system-arm"}.get(arch, "qemu-system")
        raise ConfigError(
            f"{entry.source}:{entry.line}: hypervisors.{entry.name}.arches.{arch}.binary: "
            f"{s.binary!r} not found{'' if '/' in s.binary else ' on PATH'}; "
            + (fetch_hint(s.binary)[2:] if fetch_hint(s.binary) else f"install {pkg} or give the full path")
        )
    return found


def resolve_firmware(entry: HypervisorEntry, fwname: str, arch: str) -> fwmod.Firmware:
    if fwname not in entry.firmwares:
        names = ", ".join(entry.firmwares)
        raise ConfigError(
            f"{entry.source}:{entry.line}: hypervisors.{entry.name}.firmwares: no firmware named {fwname!r}; "
            f"configured: {names} (choose with --firmware)"
        )
    per_arch = entry.firmwares[fwname]
    if arch not in per_arch:
        raise ConfigError(
            f"{entry.source}:{entry.line}: hypervisors.{entry.name}.firmwares.{fwname}: no entry for {arch}; "
            f"add '{arch}: auto' or code:/vars: paths, or run with --arch {' --arch '.join(per_arch)}"
        )
    ref = per_arch[arch]
    where = f"{entry.source}:{ref.line}: {ref.key}"
    machine = entry.arches[arch].machine
    try:
        if ref.kind == "auto":
            return fwmod.find_by_descriptor(fwname, arch, machine)
        if ref.kind == "descriptor":
            assert ref.descriptor is not None
            return fwmod.load_descriptor(ref.descriptor, fwname, arch, machine)
        if ref.kind == "bios":
            assert ref.bios is not None
            return fwmod.boot_rom(fwname, arch, ref.bios, source=where)
        if ref.kind == "secure_boot":
            return _secure_boot(ref, fwname, arch, where)
        if ref.kind == "xen_domu":
            assert ref.xen_domu is not None
            if ref.code is not None:  # a path on a real Xen host: nothing here to check
                return fwmod.Firmware(fwname, arch, ref.code, None, where, f"{ref.xen_domu} at {ref.code} on the "
                                      "Xen host", "xen-domu", ref.xen_domu, on_host=True)  # fmt: skip
            return fwmod.xen_domu(fwname, arch, ref.xen_domu, source=where)
        assert ref.code is not None and ref.vars is not None
        return fwmod.explicit(fwname, arch, ref.code, ref.vars, source=where)
    except fwmod.FirmwareError as e:
        msg = str(e)
        path = ref.descriptor or ref.code or ref.bios
        hint = fetch_hint(path) if path is not None and not path.exists() else ""
        msg = msg.removesuffix("; fix the path") if hint else msg
        raise ConfigError((msg if msg.startswith(where) else f"{where}: {msg}") + hint) from None


def _secure_boot(ref: FirmwareRef, fwname: str, arch: str, where: str) -> fwmod.Firmware:
    """A Secure Boot firmware: Debian's AAVMF code (or ``code:``) with a vars template made into the cache on first
    use (`vmconform.signing`); a missing tool or store is one ConfigError line."""
    from vmconform import signing

    if ref.code is not None and not ref.code.is_file():
        raise ConfigError(f"{where}.code: {ref.code} is missing or not a file; fix the path")
    try:
        return signing.secure_boot_firmware(arch, ref.code, vendor_keys=ref.secure_boot == "microsoft", name=fwname,
                                            source=where)  # fmt: skip
    except signing.SigningError as e:
        raise ConfigError(f"{where}.secure_boot: {e}") from None


def check_ready(entry: HypervisorEntry, arches: list[str], fwnames: list[str]) -> dict[tuple[str, str], fwmod.Firmware]:
    """Everything a run on ``entry`` needs exists: binaries and firmware files, each firmware resolved once and
    pre-flighted; returned as (firmware name, arch) -> Firmware."""
    out: dict[tuple[str, str], fwmod.Firmware] = {}
    for arch in arches:
        if arch not in entry.arches:
            raise ConfigError(
                f"{entry.source}:{entry.line}: hypervisors.{entry.name}.arches: no {arch!r}; "
                f"configured: {', '.join(entry.arches)} (choose with --arch)"
            )
        resolve_binary(entry, arch)
        for fwname in fwnames:
            fw = resolve_firmware(entry, fwname, arch)
            try:
                fwmod.preflight(fw)
            except fwmod.FirmwareError as e:
                raise ConfigError(str(e)) from None
            out[(fwname, arch)] = fw
    return out
