"""Crafted run records for the compare, merge and history tests: two runs of the aarch64 cases on two EDK2
releases, each change the comparison must name made on purpose."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from vmconform.records import CaseRecord, ClauseRecord, FirmwareRecord, RunRecord, VerdictRecord

IDENT_OLD = "EDK II, firmware revision 0x00010000, UEFI revision 0x00020046"
IDENT_NEW = "Debian distribution of EDK II, firmware revision 0x00010000, UEFI revision 0x00020046"


def fw_line(ident: str) -> str:
    vendor = ident.split(",")[0]
    return f"VMCONFORM n FW st_sig=1 uefi_rev=00020046 fw_rev=00010000 rt_sig=2 vendor={vendor}"


def case(test: str, name: str, outcome: str, fw: str, ident: str, clause: str = "FW-1", **extra: Any) -> CaseRecord:
    status = "pass" if outcome == "passed" else "fail"
    label = f"qemu-{fw}-{name}"
    return CaseRecord(
        test=f"suite/test_boot.py::{test}[{label}]",
        outcome=outcome,
        when="call",
        duration=1.0,
        message="" if outcome == "passed" else f"{name} must boot from its own disk; observed no-probe",
        case=name,
        arch="aarch64",
        hypervisor="qemu",
        firmware=fw,
        probe=(fw_line(ident),),
        transcript=f"cases/{test}_{label}/console.log",
        verdicts=(VerdictRecord(clause, status, f"{clause} {status}", label),),
        extra=extra,
    )


def clause(cid: str, status: str) -> ClauseRecord:
    return ClauseRecord(cid, cid.lower(), "MUST", status, 1, 1, (f"c: {cid} {status}",) if status != "pass" else (), "")


def run(fw: str, ident: str, sha: str, results: tuple[CaseRecord, ...], clauses: tuple[ClauseRecord, ...],
        version: str = "QEMU emulator version 7.2.22") -> RunRecord:  # fmt: skip
    record = FirmwareRecord({"code": f"/c/{fw}/AAVMF_CODE.fd"}, "flash", f"/c/{fw}/aarch64.json", {"code": sha * 64},
                            ident)  # fmt: skip
    return RunRecord("qemu", "qemu", "tcg", "hypervisors.yaml", ("aarch64",), {f"{fw}/aarch64": record}, 0, "2.0",
                     clauses, results, started="2026-12-04T10:00:00Z", hypervisor_binary="/usr/bin/qemu-system-aarch64",
                     hypervisor_version=version)  # fmt: skip


FLAKY = {"flaky": True, "repeats": [{"observed": o, "stop": s} for o, s in
                                    (("boots", "matched"), ("no-probe", "timeout"), ("boots", "matched"))]}  # fmt: skip


def pair() -> tuple[RunRecord, RunRecord]:
    """A on edk2-2022.11, B on edk2-2026.08: one case unchanged, a regression, a fix, a flake, a new and a
    removed case; FW-1 regresses, FW-7 is fixed."""
    old, new = "edk2-2022.11", "edk2-2026.08"
    a = run(old, IDENT_OLD, "a", (
        case("test_removable_media_boot", "aarch64-reference", "passed", old, IDENT_OLD),
        case("test_must_boot", "aarch64-esp-second", "passed", old, IDENT_OLD),
        case("test_malformed_image", "aarch64-gpt-primary-crc-ro", "failed", old, IDENT_OLD, "FW-7"),
        case("test_must_boot", "aarch64-esp-last", "passed", old, IDENT_OLD),
        case("test_must_boot", "aarch64-esp-among", "passed", old, IDENT_OLD),
    ), (clause("FW-1", "pass"), clause("FW-7", "fail")))  # fmt: skip
    b = run(new, IDENT_NEW, "b", (
        case("test_removable_media_boot", "aarch64-reference", "passed", new, IDENT_NEW),
        case("test_must_boot", "aarch64-esp-second", "failed", new, IDENT_NEW),
        case("test_malformed_image", "aarch64-gpt-primary-crc-ro", "passed", new, IDENT_NEW, "FW-7"),
        case("test_must_boot", "aarch64-esp-last", "failed", new, IDENT_NEW, **FLAKY),
        case("test_must_boot", "aarch64-4kn", "passed", new, IDENT_NEW),
    ), (clause("FW-1", "fail"), clause("FW-7", "pass")), version="QEMU emulator version 10.0.2")  # fmt: skip
    return a, b


def only(run_: RunRecord, *names: str) -> RunRecord:
    """The run with only these catalogue cases (clauses kept)."""
    return replace(run_, results=tuple(r for r in run_.results if r.case in names))


def write(folder: Path, run_: RunRecord) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(run_.dumps())
    return folder
