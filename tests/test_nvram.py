"""The NVRAM flows' orchestration and judging, with a scripted stand-in for the VM (no QEMU).

Each fake boot replays console lines (what a firmware and probe would print) and may write a variable
record into the vars file, so the host-side check of the store is exercised too. Real boots are in
tests/test_nvram_boot.py.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest

from vmconform import nvram, varstore
from vmconform.console import Stop
from vmconform.firmware import Firmware
from vmconform.hypervisors import BootRequest
from vmconform.probe.program import VENDOR_GUID

NONCE = "c0ffee"
OK = "0000000000000000"
NOT_FOUND = "800000000000000E"
DATA = NONCE.encode().hex().upper()


def auth_record(name: str, guid: UUID, data: bytes, state: int = 0x3F, attributes: int = 7) -> bytes:
    """An EDK2 AUTHENTICATED_VARIABLE_HEADER record (MdeModulePkg VariableFormat.h) with name and data."""
    raw_name = name.encode("utf-16-le") + b"\0\0"
    header = struct.pack("<HBBIQ16sIII16s", 0x55AA, state, 0, attributes, 0, bytes(16), 0, len(raw_name), len(data),
                         guid.bytes_le)  # fmt: skip
    assert len(header) == 60
    return header + raw_name + data


def plain_record(name: str, guid: UUID, data: bytes, state: int = 0x3F, attributes: int = 7) -> bytes:
    raw_name = name.encode("utf-16-le") + b"\0\0"
    return struct.pack("<HBBIII16s", 0x55AA, state, 0, attributes, len(raw_name), len(data), guid.bytes_le) \
        + raw_name + data  # fmt: skip


def test_find_variable_records_in_both_formats() -> None:
    name = f"VmcNv-{NONCE}"
    store = b"".join([
        b"\xff" * 100,
        auth_record(name, VENDOR_GUID, b"old", state=0x3D),
        auth_record("Other", VENDOR_GUID, b"x"),
        plain_record(name, VENDOR_GUID, NONCE.encode()),
        auth_record(name, UUID(int=5), b"wrong guid"),
    ])  # fmt: skip
    records = varstore.find_variable_records(store, name, VENDOR_GUID)
    assert [(r.state_name, r.attributes, r.data) for r in records] == [("deleted", 7, b"old"), ("added", 7, b"c0ffee")]
    assert records[0].offset == 100
    assert varstore.find_variable_records(store, "VmcNv-absent", VENDOR_GUID) == ()


# ---------------------------------------------------------------------------------------------- a scripted VM


@dataclass
class Script:
    lines: list[str]
    exits: bool = True  # the VM powers off after the last line
    writes: bytes = b""  # appended to the vars file (what the firmware would have flushed)


@dataclass
class FakeConsole:
    script: Script
    workdir: Path
    vars_path: Path | None
    shown: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    first_output: float | None = 0.0

    @property
    def log_path(self) -> Path:
        return self.workdir / "console.log"

    def __enter__(self) -> FakeConsole:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.log_path.write_text("\n".join(self.shown) + "\n")

    def watch(self, matcher: Callable[[str], str | None], timeout: float) -> Stop:
        for line in self.script.lines:
            self.shown.append(line)
            verdict = matcher(line)
            if verdict is not None:
                return Stop("matched", verdict, line, 0.1)
        if self.vars_path is not None:
            with open(self.vars_path, "ab") as f:
                f.write(self.script.writes)
        return Stop("exited" if self.script.exits else "timeout", "the VM process ended", "", 0.1)

    def wait_exit(self, timeout: float) -> int | None:
        if self.vars_path is not None and self.script.writes:
            with open(self.vars_path, "ab") as f:
                f.write(self.script.writes)
            self.script.writes = b""
        return 0 if self.script.exits else None

    def kill(self) -> None:
        self.script.exits = False

    def elapsed(self) -> float:
        return 0.1

    def tail(self) -> str:
        return "\n".join(self.shown[-5:])


class FakeBackend:
    entry = None

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.boots = 0

    def command(self, req: BootRequest) -> list[str]:
        return ["fake-vm", str(req.vars_path)]

    def start(self, req: BootRequest, echo: object = None) -> FakeConsole:
        script = self.scripts[self.boots]
        self.boots += 1
        return FakeConsole(script, req.workdir, req.vars_path)


def firmware(tmp_path: Path) -> Firmware:
    template = tmp_path / "VARS.fd"
    template.write_bytes(b"\xff" * 256)
    return Firmware("edk2", "aarch64", tmp_path / "CODE.fd", template, "test")


def v(key: str, rest: str = "") -> str:
    return f"VMCONFORM {NONCE} {key}" + (f" {rest}" if rest else "")


PHASE1 = [
    "BdsDxe: starting Boot0001",
    v("BOOT", "aarch64"),
    v("NVRAM", f"phase1 mode=MODE get={NOT_FOUND}"),
    v("NVRAM", f"set nv={OK} vol={OK}"),
    v(
        "NVRAM",
        f"readback nv={OK} nv_attr=00000007 nv_size=00000006 nv_data={DATA} vol={OK} vol_attr=00000006 "
        f"vol_size=00000006 vol_data={DATA}",
    ),  # fmt: skip
]
PHASE2 = [
    v("BOOT", "aarch64"),
    v("NVRAM", f"phase2 mode=MODE get={OK} get_attr=00000007 get_size=00000006 get_data={DATA}"),
    v("NVRAM", f"volatile get={NOT_FOUND}"),
    v("NVRAM", f"delete status={OK}"),
    v("NVRAM", "done"),
    v("END", "shutdown"),
]
RECORD = auth_record(f"VmcNv-{NONCE}", VENDOR_GUID, NONCE.encode(), state=0x3D)


def flow(tmp_path: Path, mode: str, scripts: list[Script]) -> tuple[nvram.NvramOutcome, FakeBackend]:
    backend = FakeBackend(scripts)
    outcome = nvram.run_flow(backend, "aarch64", firmware(tmp_path), mode, tmp_path / "flow", 10,  # type: ignore[arg-type]
                             nonce=NONCE)  # fmt: skip
    return outcome, backend


def lines(mode: str, *parts: list[str]) -> list[str]:
    return [line.replace("MODE", mode) for part in parts for line in part]


@pytest.mark.parametrize("mode", ["warm", "cold"])
def test_reset_flow_passes_in_one_boot(tmp_path: Path, mode: str) -> None:
    outcome, backend = flow(tmp_path, mode, [Script(lines(mode, PHASE1, [v("RESET", mode)], PHASE2), writes=RECORD)])
    assert outcome.passed, outcome.message
    assert backend.boots == 1 and [r.state_name for r in outcome.records] == ["deleted"]


def test_power_flow_restarts_the_vm_on_the_same_vars_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake VM appends a bare record, not a whole EDK2 store, so the host-side virt-firmware read (tested on
    # real vars files in test_nvram_boot.py) is replaced here by what it would report for a persisted variable.
    monkeypatch.setattr(nvram, "read_variable", lambda *a: nvram.HostVariable(nvram.NV_ATTRIBUTES, b"c0ffee"))
    outcome, backend = flow(tmp_path, "power", [Script(lines("power", PHASE1, [v("END", "shutdown")]), writes=RECORD),
                                                 Script(lines("power", PHASE2))])  # fmt: skip
    assert outcome.passed, outcome.message
    assert backend.boots == 2 and len(outcome.boots) == 2
    assert outcome.boots[0].workdir != outcome.boots[1].workdir


def test_power_flow_fails_when_the_host_cannot_read_the_variable_after_the_power_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nvram, "read_variable", lambda *a: "vars.fd holds no live variable VmcNv-c0ffee")
    outcome, _ = flow(tmp_path, "power", [Script(lines("power", PHASE1, [v("END", "shutdown")]), writes=RECORD),
                                          Script(lines("power", PHASE2))])  # fmt: skip
    assert not outcome.passed
    assert outcome.message.startswith("power: after phase 1 powered the VM off, vars.fd holds no live variable")


def test_phase_one_twice_stops_at_once_and_fails(tmp_path: Path) -> None:
    never = v("BOOT", "this line must never be read")
    outcome, _ = flow(tmp_path, "cold", [Script(lines("cold", PHASE1, [v("RESET", "cold")], PHASE1, [never]))])
    assert not outcome.passed
    assert "phase 1 ran twice" in outcome.message and "across ResetSystem(cold)" in outcome.message
    boot = outcome.boots[0]
    assert boot.stop.detail == "phase 1 seen twice: the non-volatile variable did not survive"
    assert boot.exit_status is None  # killed at once, not waited for
    assert never not in (boot.workdir / "console.log").read_text()


def test_power_flow_phase_one_again_in_the_second_vm(tmp_path: Path) -> None:
    outcome, backend = flow(tmp_path, "power", [Script(lines("power", PHASE1, [v("END", "shutdown")])),
                                                 Script(lines("power", PHASE1, [v("END", "shutdown")]))])  # fmt: skip
    assert not outcome.passed and backend.boots == 2
    assert "did not persist across the power cycle" in outcome.message


def test_variable_that_never_reaches_the_vars_file(tmp_path: Path) -> None:
    outcome, _ = flow(tmp_path, "warm", [Script(lines("warm", PHASE1, [v("RESET", "warm")], PHASE2))])
    assert not outcome.passed and outcome.records == ()
    assert "never reached the vars file" in outcome.message and "snapshot=on" in outcome.message


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        (f"volatile get={NOT_FOUND}", f"volatile get={OK}", "the volatile variable after the warm: EFI_SUCCESS"),
        ("get_attr=00000007", "get_attr=00000003", "attributes 0x3, expected 0x7"),
        (f"get_data={DATA}", "get_data=00", "holds b'\\x00'"),
        (f"phase1 mode=warm get={NOT_FOUND}", f"phase1 mode=warm get={OK}", "GetVariable of a fresh test variable"),
        (f"delete status={OK}", "delete status=8000000000000008", "EFI_WRITE_PROTECTED"),
    ],
)
def test_wrong_values_fail_with_the_evidence(tmp_path: Path, replace: str, by: str, message: str) -> None:
    script = [line.replace(replace, by) for line in lines("warm", PHASE1, [v("RESET", "warm")], PHASE2)]
    outcome, _ = flow(tmp_path, "warm", [Script(script, writes=RECORD)])
    assert not outcome.passed
    assert message in outcome.message, outcome.message
    assert "--- console tail ---" in outcome.message


def test_phase_two_never_comes(tmp_path: Path) -> None:
    outcome, _ = flow(tmp_path, "warm", [Script(lines("warm", PHASE1, [v("RESET", "warm")]), exits=False)])
    assert not outcome.passed and "phase 2 never ran" in outcome.message


def test_stale_probe_stops_the_flow(tmp_path: Path) -> None:
    outcome, _ = flow(tmp_path, "warm", [Script(["VMCONFORM deadbeef BOOT aarch64", *lines("warm", PHASE1)])])
    assert not outcome.passed
    assert outcome.boots[0].stop.detail.startswith("a probe with nonce deadbeef ran")


def test_ephemeral_vars_and_unknown_flow(tmp_path: Path) -> None:
    from vmconform.config import HypervisorEntry

    entry = HypervisorEntry("qemu", "qemu", tmp_path / "h.yaml", 1, extra_args=("-s",))
    assert nvram.ephemeral_vars(entry).extra_args == ("-s", "-snapshot")
    with pytest.raises(ValueError, match="unknown NVRAM flow 'hot'"):
        nvram.run_flow(FakeBackend([]), "aarch64", firmware(tmp_path), "hot", tmp_path, 1)  # type: ignore[arg-type]
