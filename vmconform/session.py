"""Open a run: load ``hypervisors.yaml``, choose the entry, arches and firmwares, resolve each firmware once,
check it, and make the backend.

The first step of the pipeline (then `vmconform.case_run` runs one case, `vmconform.nvram` the variable-store
flows, `vmconform.verdicts` judges, `vmconform.records` keeps the run). The pytest layer (``fixtures/``),
``vmconform boot`` and ``bench/`` all open their runs here. Every problem is a :class:`SetupError` with one
line naming the file, key or option and what to do.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vmconform import cases as casemod
from vmconform import clauses as clmod
from vmconform import config as cfgmod
from vmconform.firmware import Firmware
from vmconform.hypervisors import Backend, backend_for

__all__ = ["RunSetup", "SetupError", "check_timeout", "hypervisor_version", "name_matches", "open_run"]


class SetupError(Exception):
    """A run cannot start; the message is one line saying why and what to do."""


@dataclass(frozen=True)
class RunSetup:
    """What one run is about: the hypervisor entry and its backend, arches, firmwares, spec and timeout."""

    hvfile: cfgmod.HypervisorsFile
    entry: cfgmod.HypervisorEntry
    backend: Backend
    arches: tuple[str, ...]
    firmware_names: tuple[str, ...]
    firmwares: Mapping[tuple[str, str], Firmware]  # (firmware name, arch) -> resolved once, checked
    spec: str
    timeout: float
    notes: tuple[str, ...] = ()  # what the run tells its reader once (e.g. a firmware without an arch's build)

    def firmware(self, name: str, arch: str) -> Firmware:
        return self.firmwares[(name, arch)]

    def has(self, name: str, arch: str) -> bool:
        """Whether firmware `name` has a build for `arch` in this run (its cases for that arch are collected)."""
        return (name, arch) in self.firmwares


def check_timeout(value: float, what: str) -> float:
    """A boot timeout: a finite number of seconds above zero, else SetupError naming `what`."""
    if not math.isfinite(value) or value <= 0:
        raise SetupError(f"{what} {value}: a boot timeout is a number of seconds above 0 (e.g. 60)")
    return value


def hypervisor_version(binary: str, timeout: float = 20.0) -> str:
    """The first line of ``binary --version`` (e.g. "QEMU emulator version 10.0.2 (Debian ...)"), or why not."""
    import subprocess

    try:
        done = subprocess.run([binary, "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"unknown ({binary} --version took more than {timeout:g} s)"
    except OSError as e:
        return f"unknown ({binary} --version: {e.strerror})"
    lines = [ln.strip() for ln in done.stdout.splitlines() if ln.strip()]
    return lines[0] if done.returncode == 0 and lines else f"unknown ({binary} --version exited {done.returncode})"


def name_matches(name: str, pattern: str) -> bool:
    """A case selector: the exact name, or a prefix when it ends with ``*``."""
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def open_run(
    hypervisors_file: Path,
    hypervisor: str | None = None,
    arches: Sequence[str] = (),
    firmware_names: Sequence[str] = (),
    spec: str = clmod.DEFAULT_SPEC,
    timeout: float | None = None,
    clause_ids: Sequence[str] = (),
    case_patterns: Sequence[str] = (),
) -> RunSetup:
    """Everything a run needs, checked before the first boot; SetupError (one line) otherwise."""
    if timeout is not None:  # an option's mistake is said before anything slow (a backend's pre-flight)
        check_timeout(timeout, "--boot-timeout")
    try:
        hvfile = cfgmod.load(hypervisors_file)
        entry = hvfile.get(hypervisor)
        chosen = list(dict.fromkeys(arches)) or [a for a in entry.arches if casemod.has_probe(a)]
        for a in chosen:
            if not casemod.has_probe(a):
                raise SetupError(f"--arch {a}: vmconform has no {a} probe yet; choose another --arch")
        fwnames = list(dict.fromkeys(firmware_names)) or [entry.default_firmware]
        backend = backend_for(entry)
        not_run = backend.arches_not_run()
        for a in chosen:
            if a in not_run:
                raise SetupError(f"--arch {a}: hypervisor {entry.name} does not run {a} guests: {not_run[a]}")
        firmwares, notes = _ready(entry, chosen, fwnames)
        notes += tuple(f"{a} guests are not run on hypervisor {entry.name}: {why}" for a, why in not_run.items())
        backend.preflight()
    except cfgmod.ConfigError as e:
        raise SetupError(str(e)) from None
    for clause_id in clause_ids:
        if clause_id not in clmod.BY_ID:
            near = difflib.get_close_matches(clause_id, list(clmod.BY_ID), n=3)
            hint = f"did you mean {', '.join(near)}?" if near else f"known: {', '.join(clmod.BY_ID)}"
            raise SetupError(f"--clause {clause_id}: no such clause; {hint}")
    names = [c.name for c in casemod.catalogue() if c.arch in chosen]
    for wanted in case_patterns:
        if not any(name_matches(n, wanted) for n in names):
            near = difflib.get_close_matches(wanted, names, n=3)
            hint = f"did you mean {', '.join(near)}?" if near else "`vmconform gen --list` lists them"
            raise SetupError(
                f"--case {wanted}: no such case for {', '.join(chosen)}; {hint} (a trailing * matches a prefix)"
            )
    run_timeout = timeout if timeout is not None else entry.timeout
    return RunSetup(hvfile, entry, backend, tuple(chosen), tuple(fwnames), firmwares, spec, run_timeout, notes)


def _ready(
    entry: cfgmod.HypervisorEntry, arches: list[str], fwnames: list[str]
) -> tuple[dict[tuple[str, str], Firmware], tuple[str, ...]]:
    """Each firmware resolved and checked for the arches it has a build for; a note for each arch it lacks
    (those cases are not collected), a SetupError when a firmware has none of the chosen arches."""
    firmwares: dict[tuple[str, str], Firmware] = {}
    notes: list[str] = []
    for name in fwnames:
        per_arch = entry.firmwares.get(name)
        if per_arch is None:  # check_ready names the configured ones
            return cfgmod.check_ready(entry, arches, fwnames), ()
        have = [a for a in arches if a in per_arch]
        key = f"{entry.source}: hypervisors.{entry.name}.firmwares.{name}"
        if not have:
            raise SetupError(
                f"{key}: no build for {', '.join(arches)}; it has {', '.join(per_arch)} (choose with --arch)"
            )
        for arch in arches:
            if arch not in per_arch:
                notes.append(f"firmware {name} has no {arch} build ({key}): its {arch} cases are not collected")
        firmwares.update(cfgmod.check_ready(entry, have, [name]))
    return firmwares, tuple(notes)
