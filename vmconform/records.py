"""The run record: what a run did and concluded, as typed, frozen values that round-trip through JSON.

``results.json`` is a :class:`RunRecord` (``to_json`` / ``from_json``); its shape is fixed by
``vmconform/schema/results.schema.json`` (``schema_version`` :data:`SCHEMA_VERSION`). The pytest layer
writes it, and ``vmconform report`` / ``compare`` read it back through :func:`load_run`, never as raw dicts.
A case's flow-specific facts (the probe mode, the NVRAM flow, the disk's sha256 around a boot, ...) travel
in ``extra`` and sit beside the named fields in JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vmconform.smallfile import SmallFileError, read_small

__all__ = [
    "MAX_RESULTS_BYTES",
    "SCHEMA_VERSION",
    "CaseRecord",
    "ClauseRecord",
    "FirmwareRecord",
    "RecordError",
    "RunRecord",
    "VerdictRecord",
    "firmware_identities",
    "load_run",
    "probe_identity",
]

SCHEMA_VERSION = 1
MAX_RESULTS_BYTES = 64 << 20  # a results.json larger than this is refused, not read


class RecordError(Exception):
    """A results file that cannot be read as a run record; the message is one line."""


def _need(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise RecordError(f"{where}: missing key {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RecordError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class VerdictRecord:
    """One clause verdict of one case, with its evidence."""

    clause: str
    status: str
    evidence: str
    case: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"clause": self.clause, "status": self.status, "evidence": self.evidence, "case": self.case}

    @classmethod
    def from_json(cls, doc: Any, where: str = "verdict") -> VerdictRecord:
        if not isinstance(doc, dict):
            raise RecordError(f"{where}: expected an object")
        clause, status, evidence = (str(_need(doc, k, str, where)) for k in ("clause", "status", "evidence"))
        return cls(clause, status, evidence, str(doc.get("case", "")))


_CASE_TYPES: dict[str, type | tuple[type, ...]] = {
    "test": str, "outcome": str, "when": str, "duration": (int, float), "message": str, "case": str, "arch": str,
    "layout": str, "defect": str, "expect": str, "observed": str, "gpt_changed": list, "clauses": list,
    "hypervisor": str, "firmware": str, "firmware_code": str, "firmware_source": str, "nonce": str,
    "fallback_nonce": (str, type(None)), "stop": str, "stop_detail": str, "exit_status": (int, type(None)),
    "boot_seconds": (int, float), "probe": list, "transcript": str, "verdicts": list,
}  # fmt: skip


@dataclass(frozen=True)
class CaseRecord:
    """One test of the suite on one case: its pytest outcome, the boot, and the verdicts it gave."""

    test: str
    outcome: str  # passed | failed | skipped (pytest's word)
    when: str
    duration: float
    message: str
    case: str = ""
    arch: str = ""
    layout: str = ""
    defect: str = ""
    expect: str = ""
    observed: str = ""
    gpt_changed: tuple[str, ...] = ()
    clauses: tuple[str, ...] = ()
    hypervisor: str = ""
    firmware: str = ""
    firmware_code: str = ""
    firmware_source: str = ""
    nonce: str = ""
    fallback_nonce: str | None = None
    stop: str = ""
    stop_detail: str = ""
    exit_status: int | None = None
    boot_seconds: float = 0.0
    probe: tuple[str, ...] = ()
    transcript: str = ""  # relative to the run folder
    verdicts: tuple[VerdictRecord, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name == "verdicts":
                value = [v.to_json() for v in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out | dict(self.extra)

    @classmethod
    def from_json(cls, doc: Any, where: str = "results[]") -> CaseRecord:
        if not isinstance(doc, dict):
            raise RecordError(f"{where}: expected an object")
        kw: dict[str, Any] = {}
        for key, kind in _CASE_TYPES.items():
            if key in ("test", "outcome", "when", "duration", "message") or key in doc:
                kw[key] = _need(doc, key, kind, where)
        for key in ("gpt_changed", "clauses", "probe"):
            if key in kw:
                kw[key] = tuple(str(x) for x in kw[key])
        if "verdicts" in kw:
            kw["verdicts"] = tuple(VerdictRecord.from_json(v, f"{where}.verdicts[]") for v in kw["verdicts"])
        kw["extra"] = {k: v for k, v in doc.items() if k not in _CASE_TYPES}
        return cls(**kw)


@dataclass(frozen=True)
class ClauseRecord:
    """One clause of the run's spec version, rolled up over every case: the worst verdict and its evidence."""

    clause: str
    title: str
    level: str
    status: str
    cases: int
    deciding_cases: int
    evidence: tuple[str, ...]
    how: str

    def to_json(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_json(cls, doc: Any, where: str = "clauses[]") -> ClauseRecord:
        if not isinstance(doc, dict):
            raise RecordError(f"{where}: expected an object")
        s = {k: str(_need(doc, k, str, where)) for k in ("clause", "title", "level", "status", "how")}
        n = {k: int(_need(doc, k, int, where)) for k in ("cases", "deciding_cases")}
        ev = tuple(str(e) for e in _need(doc, "evidence", list, where))
        return cls(s["clause"], s["title"], s["level"], s["status"], n["cases"], n["deciding_cases"], ev, s["how"])


@dataclass(frozen=True)
class FirmwareRecord:
    """One firmware of the run for one arch: its files, how it is mapped, where it came from, their sha256."""

    files: Mapping[str, str]  # code (or the boot ROM) / vars_template -> path
    mapping: str
    source: str
    sha256: Mapping[str, str]
    identity: str = ""  # as the probe reported it: vendor, firmware and UEFI revisions ("" when no probe ran)

    @property
    def code(self) -> str:
        return self.files.get("code", "")

    def to_json(self) -> dict[str, Any]:
        out = {**self.files, "mapping": self.mapping, "source": self.source, "sha256": dict(self.sha256)}
        return out | ({"identity": self.identity} if self.identity else {})

    @classmethod
    def from_json(cls, doc: Any, where: str = "firmwares") -> FirmwareRecord:
        if not isinstance(doc, dict):
            raise RecordError(f"{where}: expected an object")
        files = {k: str(v) for k, v in doc.items() if k not in ("mapping", "source", "sha256", "identity")}
        sha = _need(doc, "sha256", dict, where)
        return cls(files, str(_need(doc, "mapping", str, where)), str(_need(doc, "source", str, where)),
                   {str(k): str(v) for k, v in sha.items()}, str(doc.get("identity", "")))  # fmt: skip


@dataclass(frozen=True)
class RunRecord:
    """A whole run: set-up, every case, every clause of the spec version, what went wrong around the VMs."""

    hypervisor: str
    backend: str
    accel: str
    hypervisors_file: str
    arches: tuple[str, ...]
    firmwares: Mapping[str, FirmwareRecord]  # "name/arch" -> record
    exit_status: int
    spec: str
    clauses: tuple[ClauseRecord, ...]
    results: tuple[CaseRecord, ...]
    vendor_files_changed: tuple[str, ...] = ()
    orphan_vms_killed: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION
    vmconform_version: str = ""
    started: str = ""  # ISO 8601, UTC
    ended: str = ""
    host: str = ""
    notes: tuple[str, ...] = ()  # what the run wants a reader to know once (e.g. an arch a firmware lacks)
    hypervisor_binary: str = ""  # the first arch's binary as run (a path), and its `--version` first line
    hypervisor_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "vmconform_version": self.vmconform_version,
            "started": self.started,
            "ended": self.ended,
            "host": self.host,
            "hypervisor": self.hypervisor,
            "backend": self.backend,
            "accel": self.accel,
            "hypervisor_binary": self.hypervisor_binary,
            "hypervisor_version": self.hypervisor_version,
            "hypervisors_file": self.hypervisors_file,
            "arches": list(self.arches),
            "firmwares": {k: v.to_json() for k, v in self.firmwares.items()},
            "exit_status": self.exit_status,
            "spec": self.spec,
            "notes": list(self.notes),
            "clauses": [c.to_json() for c in self.clauses],
            "results": [r.to_json() for r in self.results],
            "vendor_files_changed": list(self.vendor_files_changed),
            "orphan_vms_killed": list(self.orphan_vms_killed),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, doc: Any, where: str = "results.json") -> RunRecord:
        if not isinstance(doc, dict):
            raise RecordError(f"{where}: not a JSON object")
        if "results" not in doc or "clauses" not in doc:
            raise RecordError(f"{where}: not a vmconform results.json (no 'results' and 'clauses')")
        version = doc.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise RecordError(
                f"{where}: schema_version {version!r} is newer than this vmconform reads ({SCHEMA_VERSION}); "
                f"upgrade vmconform"
            )
        fws = _need(doc, "firmwares", dict, where)
        return cls(
            hypervisor=str(_need(doc, "hypervisor", str, where)),
            backend=str(doc.get("backend", "")),
            accel=str(doc.get("accel", "")),
            hypervisors_file=str(doc.get("hypervisors_file", "")),
            arches=tuple(str(a) for a in _need(doc, "arches", list, where)),
            firmwares={str(k): FirmwareRecord.from_json(v, f"{where}: firmwares.{k}") for k, v in fws.items()},
            exit_status=int(_need(doc, "exit_status", int, where)),
            spec=str(_need(doc, "spec", str, where)),
            clauses=tuple(ClauseRecord.from_json(c, f"{where}: clauses[{i}]")
                          for i, c in enumerate(_need(doc, "clauses", list, where))),
            results=tuple(CaseRecord.from_json(r, f"{where}: results[{i}]")
                          for i, r in enumerate(_need(doc, "results", list, where))),
            vendor_files_changed=tuple(str(x) for x in doc.get("vendor_files_changed", [])),
            orphan_vms_killed=tuple(str(x) for x in doc.get("orphan_vms_killed", [])),
            schema_version=version,
            vmconform_version=str(doc.get("vmconform_version", "")),
            started=str(doc.get("started", "")),
            ended=str(doc.get("ended", "")),
            host=str(doc.get("host", "")),
            notes=tuple(str(x) for x in doc.get("notes", [])),
            hypervisor_binary=str(doc.get("hypervisor_binary", "")),
            hypervisor_version=str(doc.get("hypervisor_version", "")),
        )  # fmt: skip


def probe_identity(probe: Sequence[str]) -> str:
    """The firmware as the probe's FW line reported it: "EDK II, firmware revision 0x00010000, UEFI revision
    0x00020046" ("" without a FW line)."""
    for line in probe:
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] == "FW":
            kv = dict(f.split("=", 1) for f in parts[3].split(" vendor=", 1)[0].split() if "=" in f)
            vendor = parts[3].split("vendor=", 1)[1] if "vendor=" in parts[3] else "?"
            return f"{vendor}, firmware revision 0x{kv.get('fw_rev', '?')}, UEFI revision 0x{kv.get('uefi_rev', '?')}"
    return ""


def firmware_identities(results: Sequence[CaseRecord]) -> dict[str, str]:
    """Maps "name/arch" to the firmware's identity as the first of its cases' probes reported it."""
    out: dict[str, str] = {}
    for row in results:
        key = f"{row.firmware}/{row.arch}"
        if key not in out and (ident := probe_identity(row.probe)):
            out[key] = ident
    return out


def load_run(path: Path) -> RunRecord:
    """A run folder (or ``reports/latest``) or its results.json, read as a RunRecord.

    Only a regular file of at most MAX_RESULTS_BYTES is read (a FIFO or a device is refused without
    blocking); every problem is a RecordError with one line.
    """
    file = path / "results.json" if path.is_dir() else path
    try:
        data = read_small(file, MAX_RESULTS_BYTES, "a results.json")
    except SmallFileError as e:
        hint = "; give a run folder under reports/ or its results.json" if e.missing else ""
        raise RecordError(f"{e}{hint}") from None
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise RecordError(f"{file}: not a readable results.json ({type(e).__name__}: {e})") from None
    return RunRecord.from_json(doc, str(file))
