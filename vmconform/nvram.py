"""The NVRAM flows: does a non-volatile UEFI variable survive a reset and a power cycle (FW-4, FW-5)?

One flow is one fresh disk with a probe built for its mode (see `vmconform.probe.program.MODES`) and one
private copy of the vars template:

* ``warm`` / ``cold``: phase 1 (the probe finds no test variable, sets a non-volatile NV|BS|RT one and a
  volatile BS|RT one, reads both back) ends in ResetSystem(EfiResetWarm / EfiResetCold); the harness keeps
  watching the same VM, where phase 2 must find the NV variable with the same data and attributes and must
  not find the volatile one, then deletes it and shuts down.
* ``power``: phase 1 ends in ResetSystem(EfiResetShutdown); the harness starts the VM again on the same vars
  file for phase 2.
* ``bootnext``: phase 1 writes a Boot#### load option for ``\\EFI\\VMCONFORM\\NEXT.EFI`` (a probe with its own
  nonce) and BootNext, then resets cold; the NEXT probe must run next and see BootCurrent = that option.

Phase 1 seen twice means the store forgot the variable: the boot stops at once (no timeout). After a flow
the host reads the vars file: the test variable must have reached it (an EDK2 variable-store record with its
name, vendor GUID and data, in any state: phase 2 deletes it), else the store is ephemeral, e.g. a vars drive
with ``snapshot=on`` (`ephemeral_vars` builds that negative control).

A firmware with no vars file that keeps its variables in ``\\ubootefi.var`` on the disk's ESP (U-Boot; the
backend's store is an ESP file or a boot ROM) runs the same flows; the host reads the variable out of that file
(`vmconform.varstore_uboot`) after the power-off, or as phase 1 resets (evidence only: the VM is restarting),
and says what it found in `NvramOutcome.host_store`.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from vmconform import cases as casemod
from vmconform.config import HypervisorEntry
from vmconform.enums import StoreKind
from vmconform.facts.probe import EfiStatus
from vmconform.firmware import Firmware, copy_vars_template, file_sha256
from vmconform.hypervisors import Backend, Disk
from vmconform.image import DiskSpec, EspFile, build_disk
from vmconform.probe import ProbeLine, removable_media_path
from vmconform.probe.contract import BOOTNEXT_OPTION, NEXT_PATH, NV_VARIABLE_PREFIX, VENDOR_GUID
from vmconform.runner import BootResult, boot
from vmconform.varstore import HostVariable, VarRecord, find_variable_records, read_variable
from vmconform.varstore_uboot import read_uboot_variable, uboot_store_evidence

__all__ = ["FLOWS", "NvramOutcome", "StoreOutcome", "run_flow", "run_store_flow", "ephemeral_vars"]

FLOWS = ("warm", "cold", "power", "bootnext")
NV_ATTRIBUTES = 0x7  # NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS
VOLATILE_ATTRIBUTES = 0x6
NEXT_ESP_PATH = NEXT_PATH.strip("\\").replace("\\", "/")
GLOBAL_VARIABLE = UUID("8BE4DF61-93CA-11D2-AA0D-00E098032B8C")  # EFI_GLOBAL_VARIABLE: Boot####, BootNext


def ephemeral_vars(entry: HypervisorEntry) -> HypervisorEntry:
    """The entry with QEMU's ``-snapshot`` (snapshot=on for every drive, the vars pflash included): writes go
    to a temporary overlay that is dropped when QEMU exits. The negative control of the NVRAM flows."""
    return dataclasses.replace(entry, extra_args=(*entry.extra_args, "-snapshot"))


@dataclass(frozen=True)
class NvramOutcome:
    mode: str
    nonce: str
    passed: bool
    message: str  # the verdict: what held, or the first thing that did not, with the evidence line
    boots: tuple[BootResult, ...]
    vars_path: Path | None  # None: the firmware keeps its variables in \ubootefi.var on the disk's ESP
    records: tuple[VarRecord, ...]  # the test variable's records in the vars file after the flow
    host_store: str = ""  # with no vars file: what the host found of the variable in the disk's \ubootefi.var

    def lines(self) -> tuple[ProbeLine, ...]:
        return tuple(line for b in self.boots for line in b.lines)


class _Fail(Exception):
    pass


def _line(lines: list[ProbeLine], key: str, *args: str) -> ProbeLine:
    for line in lines:
        if line.key == key and line.args[: len(args)] == args:
            return line
    raise _Fail(f"the probe never printed {' '.join((key, *args))}")


def _status(line: ProbeLine, name: str) -> EfiStatus:
    return EfiStatus.parse(line.fields[name])


def _check_status(line: ProbeLine, name: str, want: str, what: str) -> None:
    got = _status(line, name)
    if got.name != want:
        raise _Fail(f"{what}: {got} (expected {want}) in {line.raw.strip()!r}")


def _phase_watch(nonce: str, seen: list[ProbeLine]) -> Callable[[ProbeLine], str | None]:
    """The one phase watcher of every flow: stop at END, at a stale probe, or at once when phase 1 starts a
    second time (the store forgot the variable); `seen` collects the phase-1 lines."""

    def decide(line: ProbeLine) -> str | None:
        if line.nonce != nonce:
            return f"a probe with nonce {line.nonce} ran, but this flow's nonce is {nonce} (stale image?)"
        if line.key == "NVRAM" and line.args[:1] == ("phase1",):
            seen.append(line)
            if len(seen) > 1:
                return "phase 1 seen twice: the non-volatile variable did not survive"
        if line.key == "END":
            return "the probe reported END"
        return None

    return decide


def build_probe(arch: str, nonce: str, mode: str, firmware: Firmware | None = None) -> bytes:
    """The flow's probe (the assembler loads here, on first use); signed when `firmware` is a Secure Boot one."""
    from vmconform.probe import build_probe as build

    image = build(arch, nonce, mode=mode)
    if firmware is not None and firmware.secure_boot:
        from vmconform.secureboot import SIGNED, prepare_probe

        return prepare_probe(image, SIGNED)
    return image


def run_flow(
    backend: Backend,
    arch: str,
    firmware: Firmware,
    mode: str,
    workdir: Path,
    timeout: float,
    nonce: str | None = None,
    echo: Callable[[bytes], None] | None = None,
    tag: str = "",
) -> NvramOutcome:
    """Run one NVRAM flow (`FLOWS`) on a fresh disk and vars copy in `workdir`; never raises on a failing VM."""
    if mode not in FLOWS:
        raise ValueError(f"unknown NVRAM flow {mode!r}; known: {', '.join(FLOWS)}")
    nonce = nonce or secrets.token_hex(6)
    workdir.mkdir(parents=True, exist_ok=True)
    disk = workdir / "disk.img"
    vars_path = copy_vars_template(firmware, workdir / "vars.fd")
    if vars_path is None and backend.variable_store(firmware).kind not in (StoreKind.ESP_FILE, StoreKind.BOOT_ROM):
        raise ValueError(f"firmware {firmware.name} has no variable store to test")
    if mode == "bootnext":
        return _bootnext(backend, arch, firmware, workdir, timeout, nonce, disk, vars_path, echo, tag)
    files = (EspFile(removable_media_path(arch), build_probe(arch, nonce, mode=mode, firmware=firmware)),)
    build_disk(DiskSpec(files=files, seed=f"nvram-{mode}:{nonce}")).save(disk)
    name = f"{NV_VARIABLE_PREFIX}{nonce}"
    seen: list[ProbeLine] = []
    host_read: list[HostVariable | str] = []
    watch = _phase_watch(nonce, seen)

    def decide(line: ProbeLine) -> str | None:
        if vars_path is None and line.key == "RESET" and line.nonce == nonce and not host_read:
            host_read.append(read_uboot_variable(disk, name, VENDOR_GUID))  # see run_store_flow
        return watch(line)

    boots = [boot(backend, arch, (disk,), firmware, nonce, workdir / "boot1", timeout, echo=echo,
                  vars_path=vars_path, decide=decide, tag=tag)]  # fmt: skip
    if mode == "power" and boots[0].stop.reason == "matched" and boots[0].lines[-1].key == "END" \
            and boots[0].exit_status == 0 and len(seen) == 1:  # fmt: skip
        # powered off: the host reads the variable out of the instance's store before the VM comes back
        host_read[:] = [read_variable(vars_path, name, VENDOR_GUID) if vars_path is not None
                        else read_uboot_variable(disk, name, VENDOR_GUID)]  # fmt: skip
        boots.append(boot(backend, arch, (disk,), firmware, nonce, workdir / "boot2", timeout, echo=echo,
                          vars_path=vars_path, decide=_phase_watch(nonce, seen), tag=tag))  # fmt: skip
    records = find_variable_records(vars_path.read_bytes(), name, VENDOR_GUID) if vars_path is not None else ()
    read = host_read[0] if host_read else None
    host_store = "" if vars_path is not None else _host_words(mode, name, read)
    try:
        _judge(mode, nonce, boots, seen, records, vars_path, read)
    except _Fail as exc:
        return NvramOutcome(mode, nonce, False, _with_evidence(str(exc), boots), tuple(boots), vars_path, records,
                            host_store)  # fmt: skip
    where = vars_path.name if vars_path is not None else "\\ubootefi.var on the disk's ESP"
    message = (
        f"{mode}: the NV variable survived ({'power cycle' if mode == 'power' else mode + ' reset'}) with "
        f"its data and attributes, the volatile one did not, and the variable reached {where}"
    )
    return NvramOutcome(mode, nonce, True, message, tuple(boots), vars_path, records, host_store)


def _host_words(mode: str, name: str, read: HostVariable | str | None) -> str:
    """What the host found of the flow's variable in \\ubootefi.var, in words for the evidence."""
    when = "after phase 1 powered the VM off" if mode == "power" else "at phase 1's reset (the VM restarting)"
    if read is None:
        end = "power-off" if mode == "power" else "reset"
        return f"the host never read \\ubootefi.var: phase 1 never got to its {end}"
    if isinstance(read, str):
        return f"{when}: {read}"
    data = repr(read.data) if len(read.data) <= 32 else f"{len(read.data)} bytes {read.data[:24]!r}…"
    return f"{when} the host found {name} in \\ubootefi.var: attributes {read.attributes:#x}, data {data}"


def _with_evidence(why: str, boots: list[BootResult]) -> str:
    last = boots[-1]
    return f"{why}\n{last.describe()}\n--- console tail ---\n{last.tail}\n---"


def _judge(mode: str, nonce: str, boots: list[BootResult], seen: list[ProbeLine], records: tuple[VarRecord, ...],
           vars_path: Path | None, host_read: HostVariable | str | None = None) -> None:  # fmt: skip
    lines = [line for b in boots for line in b.lines]
    if len(seen) > 1:
        where = "across the power cycle (a new VM on the same vars file)" if mode == "power" else \
            f"across ResetSystem({mode})"  # fmt: skip
        raise _Fail(f"{mode}: phase 1 ran twice: the non-volatile variable did not persist {where}")
    phase1 = _line(lines, "NVRAM", "phase1")
    _check_status(phase1, "get", "EFI_NOT_FOUND", "phase 1: GetVariable of a fresh test variable")
    sets = _line(lines, "NVRAM", "set")
    _check_status(sets, "nv", "EFI_SUCCESS", "phase 1: SetVariable(NV|BS|RT)")
    _check_status(sets, "vol", "EFI_SUCCESS", "phase 1: SetVariable(BS|RT)")
    readback = _line(lines, "NVRAM", "readback")
    _check_status(readback, "nv", "EFI_SUCCESS", "phase 1: reading the NV variable back")
    expected = nonce.encode("ascii")
    if int(readback.fields["nv_attr"], 16) != NV_ATTRIBUTES or bytes.fromhex(readback.fields["nv_data"]) != expected:
        raise _Fail(f"phase 1: the NV variable read back differs from what was written: {readback.raw.strip()!r}")
    if mode in ("warm", "cold"):
        _line(lines, "RESET", mode)
    when = "after phase 1 powered the VM off" if mode == "power" else "at phase 1's reset"
    store = "the vars file (read with virt-firmware)" if vars_path is not None else "\\ubootefi.var on the ESP"
    if vars_path is None and mode != "power":
        host_read = None  # read while the VM restarts: evidence only (a backend may write the disk back later)
    if isinstance(host_read, str):
        raise _Fail(f"{mode}: {when}, {host_read}")
    if host_read is not None and (host_read.attributes, host_read.data) != (NV_ATTRIBUTES, expected):
        raise _Fail(f"{mode}: {when} {store} holds the variable with attributes {host_read.attributes:#x} and data "
                    f"{host_read.data!r}, expected {NV_ATTRIBUTES:#x} and {expected!r}")  # fmt: skip
    if not any(line.key == "NVRAM" and line.args[:1] == ("phase2",) for line in lines):
        last = boots[-1]
        raise _Fail(f"{mode}: phase 2 never ran ({last.stop.detail})")
    phase2 = _line(lines, "NVRAM", "phase2")
    _check_status(phase2, "get", "EFI_SUCCESS", f"phase 2: GetVariable of the NV variable after the {mode}")
    attr, data = int(phase2.fields["get_attr"], 16), bytes.fromhex(phase2.fields["get_data"])
    if attr != NV_ATTRIBUTES:
        raise _Fail(f"phase 2: the NV variable has attributes {attr:#x}, expected {NV_ATTRIBUTES:#x}: "
                    f"{phase2.raw.strip()!r}")  # fmt: skip
    if data != expected:
        raise _Fail(f"phase 2: the NV variable holds {data!r}, expected {expected!r}: {phase2.raw.strip()!r}")
    volatile = _line(lines, "NVRAM", "volatile")
    _check_status(volatile, "get", "EFI_NOT_FOUND", f"phase 2: the volatile variable after the {mode}")
    _check_status(_line(lines, "NVRAM", "delete"), "status", "EFI_SUCCESS", "phase 2: deleting the test variable")
    _line(lines, "NVRAM", "done")
    _line(lines, "END", "shutdown")
    if boots[-1].exit_status != 0:
        raise _Fail("the VM did not power itself off with status 0 after phase 2")
    if vars_path is None:
        return  # the variable's way into \\ubootefi.var is the host's evidence (NvramOutcome.host_store)
    if not any(r.data == expected and r.attributes == NV_ATTRIBUTES for r in records):
        raise _Fail(f"{mode}: the NV variable never reached the vars file {vars_path} (no variable-store record "
                    f"with its name and data): the variable store is not persistent storage of the VM instance "
                    f"(an ephemeral store, e.g. snapshot=on?)")  # fmt: skip


def _bootnext(backend: Backend, arch: str, firmware: Firmware, workdir: Path, timeout: float, nonce: str,
              disk: Path, vars_path: Path | None, echo: Callable[[bytes], None] | None,
              tag: str = "") -> NvramOutcome:  # fmt: skip
    next_nonce = secrets.token_hex(6)
    files = (
        EspFile(removable_media_path(arch), build_probe(arch, nonce, mode="bootnext", firmware=firmware)),
        EspFile(NEXT_ESP_PATH, build_probe(arch, next_nonce, mode="next", firmware=firmware)),
    )
    build_disk(DiskSpec(files=files, seed=f"nvram-bootnext:{nonce}")).save(disk)

    option = f"Boot{BOOTNEXT_OPTION:04X}"
    host_read: list[HostVariable | str] = []

    def decide(line: ProbeLine) -> str | None:
        if line.nonce not in (nonce, next_nonce):
            return f"a probe with nonce {line.nonce} ran (stale image?)"
        if vars_path is None and line.key == "RESET" and line.nonce == nonce and not host_read:
            host_read.append(read_uboot_variable(disk, option, GLOBAL_VARIABLE))  # see run_store_flow
        if line.key == "END" and line.args[:1] != ("reset-returned",) or line.key == "END" and line.nonce == nonce:
            return "the probe reported END"
        return None

    result = boot(backend, arch, (disk,), firmware, nonce, workdir / "boot1", timeout, echo=echo,
                  vars_path=vars_path, decide=decide, tag=tag)  # fmt: skip
    first, nxt = list(result.lines), [line for line in result.foreign if line.nonce == next_nonce]
    records = find_variable_records(vars_path.read_bytes(), option, GLOBAL_VARIABLE) if vars_path else ()
    host_store = "" if vars_path is not None else _host_words("bootnext", option, host_read[0] if host_read else None)
    try:
        phase1 = _line(first, "BOOTNEXT", "phase1")
        _check_status(phase1, "get", "EFI_NOT_FOUND", f"phase 1: GetVariable(Boot{BOOTNEXT_OPTION:04X})")
        sets = _line(first, "BOOTNEXT", "set")
        _check_status(sets, "option_status", "EFI_SUCCESS", f"phase 1: SetVariable(Boot{BOOTNEXT_OPTION:04X})")
        _check_status(sets, "next_status", "EFI_SUCCESS", "phase 1: SetVariable(BootNext)")
        _line(first, "RESET", "cold")
        again = [line for line in first if line.key == "BOOTNEXT" and line.args[:1] == ("again",)]
        if again:
            raise _Fail(f"after the reset the firmware booted the removable-media probe again, not BootNext "
                        f"({NEXT_PATH}): {again[0].raw.strip()!r}")  # fmt: skip
        if not nxt:
            raise _Fail(f"the probe at {NEXT_PATH} never ran after BootNext={BOOTNEXT_OPTION:04X} and a reset "
                        f"({result.stop.detail})")  # fmt: skip
        boot_line = _line(nxt, "BOOT")
        if boot_line.fields.get("path", "").upper() != NEXT_PATH.upper():
            raise _Fail(f"the NEXT probe reports a load path other than {NEXT_PATH}: {boot_line.raw.strip()!r}")
        current = _line(nxt, "BOOTNEXT", "next")
        _check_status(current, "current_status", "EFI_SUCCESS", "GetVariable(BootCurrent) in the NEXT probe")
        if int(current.fields["current"], 16) != BOOTNEXT_OPTION:
            raise _Fail(f"BootCurrent is {current.fields['current']}, expected {BOOTNEXT_OPTION:04X}: "
                        f"{current.raw.strip()!r}")  # fmt: skip
        _check_status(_line(nxt, "BOOTNEXT", "delete"), "status", "EFI_SUCCESS", "deleting the load option")
        _line(nxt, "END", "shutdown")
        if result.exit_status != 0:
            raise _Fail("the VM did not power itself off with status 0 after the NEXT probe")
    except _Fail as exc:
        return NvramOutcome("bootnext", nonce, False, _with_evidence(str(exc), [result]), (result,), vars_path,
                            records, host_store)  # fmt: skip
    return NvramOutcome("bootnext", nonce, True,
                        f"bootnext: the firmware booted Boot{BOOTNEXT_OPTION:04X} ({NEXT_PATH}) after the reset",
                        (result,), vars_path, records, host_store)  # fmt: skip


@dataclass(frozen=True)
class StoreOutcome:
    """FW-6: a case's image with a probe that sets a non-volatile variable, booted once: where did it go?"""

    result: BootResult
    nonce: str
    before: str  # sha256 of the disk image before the boot
    after: str
    set_status: str | None  # SetVariable(NV|BS|RT) status name, None when the probe never got there
    records: int | None  # records of the variable in the instance's vars file (None: there is none)
    vars_name: str  # how the evidence names the instance's store ("" when there is none)
    image_store: str  # what `vmconform check` finds stored in the image afterwards ("" when nothing)
    esp_store: str = ""  # what the host read of the variable in the image's \ubootefi.var ("" when not looked for)


def run_store_flow(
    backend: Backend,
    case: casemod.Case,
    firmware: Firmware,
    workdir: Path,
    out_dir: Path,
    timeout: float,
    tag: str = "",
    echo: Callable[[bytes], None] | None = None,
) -> StoreOutcome:
    """Boot `case`'s image with the warm flow's probe on a fresh vars copy and see where the variable went.

    Disk and vars copy live in `workdir`, the transcript in `out_dir`; never raises on a failing VM.
    """
    from vmconform.check import DiskError, check_image

    arch, nonce = case.arch, casemod.new_nonce()
    workdir.mkdir(parents=True, exist_ok=True)
    disk = workdir / f"{case.name}.img"
    casemod.build_image(case, nonce, build_probe(arch, nonce, mode="warm", firmware=firmware)).save(disk)
    vars_copy = copy_vars_template(firmware, workdir / "vars.fd")
    before = file_sha256(disk)
    seen: list[ProbeLine] = []
    disks = (Disk(disk, logical_block_size=case.sector_size),)
    name = f"{NV_VARIABLE_PREFIX}{nonce}"
    esp_file = backend.variable_store(firmware).kind in (StoreKind.ESP_FILE, StoreKind.BOOT_ROM)
    at_reset: list[str] = []
    watch = _phase_watch(nonce, seen)

    def decide(line: ProbeLine) -> str | None:
        # U-Boot writes \ubootefi.var inside SetVariable, before the probe resets; phase 2 (seconds later, after
        # the firmware booted again) deletes the variable, so the host reads the file as the reset is reported
        if esp_file and line.key == "RESET" and line.nonce == nonce and not at_reset:
            at_reset.append(uboot_store_evidence(disk, name, VENDOR_GUID, case.sector_size))
        return watch(line)

    result = boot(backend, arch, disks, firmware, nonce, out_dir, timeout, vars_path=vars_copy, tag=tag,
                  decide=decide, echo=echo)  # fmt: skip
    after = file_sha256(disk)
    sets = next((ln for ln in result.lines if ln.key == "NVRAM" and ln.args[:1] == ("set",)), None)
    set_status = EfiStatus.parse(sets.fields["nv"]).name if sets is not None and "nv" in sets.fields else None
    records = None
    if vars_copy is not None:
        records = len(find_variable_records(vars_copy.read_bytes(), name, VENDOR_GUID))
    image_store = ""
    if after != before:
        try:
            rows = check_image(disk, arch, case.sector_size).rows
            image_store = "; ".join(r.evidence for r in rows if r.id == "image.vars_store" and r.verdict == "fail")
        except DiskError as e:
            image_store = f"the image no longer reads as a disk: {e}"
    vars_name = "vars file" if vars_copy else ""
    esp_store = ""
    if esp_file:
        after_run = uboot_store_evidence(disk, name, VENDOR_GUID, case.sector_size)
        esp_store = f"at the probe's reset {at_reset[0]}; after the run {after_run}" \
            if at_reset else after_run  # fmt: skip
    return StoreOutcome(result, nonce, before, after, set_status, records, vars_name, image_store, esp_store)
