"""Boot one disk image and collect what the probe reports.

A boot ends at the first of: the probe's ``END`` line with this case's nonce (then
the VM must power itself off), a probe line with another nonce (a stale image),
a firmware dead end (shell, boot menu, exception: see :mod:`vmconform.console`),
the VM exiting, or the timeout. The VM's process group is always gone afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vmconform.firmware import Firmware, copy_vars_template
from vmconform.hypervisors import Backend, BootRequest, Disk
from vmconform.probe import ProbeLine, parse_line

if TYPE_CHECKING:
    from collections.abc import Sequence

    from vmconform.console import DeadEnd, Stop


# After the probe's END line, how long the VM may take to power off by itself.
POWER_OFF_GRACE = 15.0


class CaseFailure(AssertionError):
    """A case's expectation did not hold; the message carries the evidence."""


@dataclass(frozen=True)
class BootResult:
    nonce: str | None  # None: any probe was accepted
    stop: Stop
    exit_status: int | None  # None: it did not exit by itself and was killed
    lines: tuple[ProbeLine, ...]  # probe lines carrying this case's nonce, in order
    foreign: tuple[ProbeLine, ...]  # probe lines carrying another nonce
    workdir: Path
    transcript: Path
    command: tuple[str, ...]
    tail: str
    elapsed: float
    facts: dict[str, ProbeLine] = field(default_factory=dict)  # last line per key
    # seconds since boot() was called: "vm_started", "first_output", "first_probe_line", "probe_end",
    # "exited" (each present when it happened) and "total" (the whole call, harness work included)
    timings: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        how = {
            "matched": "the probe finished",
            "exited": "the VM exited before the probe finished",
            "dead-end": "the firmware reached a dead end",
            "timeout": "timed out",
        }[self.stop.reason]
        status = "killed by the harness" if self.exit_status is None else f"exit status {self.exit_status}"
        out = f"{how}: {self.stop.detail}"
        if self.stop.line:
            out += f"\n  at console line: {self.stop.line.strip()!r}"
        return f"{out}\n  VM {status} after {self.elapsed:.1f} s; transcript: {self.transcript}"

    def fail(self, why: str) -> CaseFailure:
        return CaseFailure(f"{why}\n{self.describe()}\n--- console tail ---\n{self.tail}\n---")

    def expect(self, key: str, *args: str) -> ProbeLine:
        """The probe line ``key`` (with leading ``args``) for this nonce, or CaseFailure with the evidence."""
        for line in self.lines:
            if line.key == key and tuple(line.args[: len(args)]) == args:
                return line
        want = " ".join((f"VMCONFORM {self.nonce or '<any nonce>'} {key}",) + args)
        if self.foreign:
            return_line = self.foreign[0].raw.strip()
            raise self.fail(f"expected {want!r} but the probe that ran is another case's: {return_line!r}")
        raise self.fail(f"expected the probe line {want!r}; it never came")

    def expect_clean_poweroff(self) -> None:
        if self.exit_status != 0:
            raise self.fail("expected the VM to power itself off (ResetSystem shutdown) with exit status 0")


MAX_CONSOLE_LOG = 16 << 20  # bytes of a backend's own console log read back (its end)


def _recover(log: Path | None, seen: list[str], matcher: Callable[[str], str | None], stop: Stop) -> Stop:
    """A second source for the console: the backend's own log of the VM's serial port (libvirt's
    ``<log file=.../>``). Probe lines it holds beyond those the harness saw are fed to the matcher in order;
    a decision among them becomes the boot's stop, saying where it came from."""
    if log is None or not log.is_file():
        return stop
    from collections import Counter

    from vmconform.console import Stop, strip_ansi  # loaded already: a console ran

    with log.open("rb") as f:
        f.seek(max(0, log.stat().st_size - MAX_CONSOLE_LOG))
        text = strip_ansi(f.read(MAX_CONSOLE_LOG)).decode("utf-8", "replace")
    already = Counter(seen)
    recovered = 0
    for raw in text.replace("\r", "\n").split("\n"):
        if parse_line(raw) is None:
            continue
        if already[raw.strip()] > 0 or already[raw] > 0:
            already[raw.strip() if already[raw.strip()] else raw] -= 1
            continue
        recovered += 1
        verdict = matcher(raw)
        if verdict is not None:
            why = f"{verdict} (read from {log.name}: the console lost {recovered} probe line(s) the VM printed)"
            return Stop("matched", why, raw)
    return stop


def boot(
    backend: Backend,
    arch: str,
    disks: tuple[Path | Disk, ...],
    firmware: Firmware,
    nonce: str | None,
    workdir: Path,
    timeout: float,
    echo: Callable[[bytes], None] | None = None,
    vars_path: Path | None = None,
    tag: str = "",
    decide: Callable[[ProbeLine], str | None] | None = None,
    dead_ends: Sequence[DeadEnd] | None = None,
) -> BootResult:
    """Boot ``disks`` and watch for the probe with ``nonce`` (None: any); always leaves no VM behind.

    ``disks`` are attached in order (the firmware's boot options follow it); a ``Disk`` also gives the
    logical block size and read-only flag, a bare ``Path`` is a writable 512-byte-block disk.

    ``decide``, when given, replaces the default decision (stop at this nonce's END or at any other nonce):
    it sees every probe line, whatever its nonce, after it is filed under ``lines`` or ``foreign``, and a
    verdict it returns ends the boot. Flows that span resets or several probes (NVRAM, BootNext) use it.
    The VM is given time to power itself off only when the deciding line is an ``END`` line.
    ``dead_ends`` replaces the console's list of dead ends (the OS probe adds the kernel's).
    """
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    if vars_path is None:
        vars_path = copy_vars_template(firmware, workdir / "vars.fd")  # None when the firmware has no store
    req = BootRequest(arch=arch, disks=disks, firmware=firmware, workdir=workdir, vars_path=vars_path, tag=tag)
    mine: list[ProbeLine] = []
    foreign: list[ProbeLine] = []

    decided_by: list[ProbeLine] = []
    timings: dict[str, float] = {}

    def now() -> float:
        return time.monotonic() - t0

    def default_decision(line: ProbeLine) -> str | None:
        if nonce is not None and line.nonce != nonce:
            return f"a probe with nonce {line.nonce} ran, but this case's nonce is {nonce} (stale image?)"
        if line.key == "END":
            return "the probe reported END"
        return None

    def matcher(text: str) -> str | None:
        line = parse_line(text)
        if line is None:
            return None
        timings.setdefault("first_probe_line", now())
        if line.key == "END":
            timings.setdefault("probe_end", now())
        (foreign if nonce is not None and line.nonce != nonce else mine).append(line)
        verdict = (decide or default_decision)(line)
        if verdict is not None:
            decided_by.append(line)
        return verdict

    command = tuple(backend.command(req))
    with backend.start(req, echo=echo) as console:
        stop = console.watch(matcher, timeout) if dead_ends is None else console.watch(matcher, timeout, dead_ends)
        exit_status: int | None = None
        if stop.reason == "exited" or (stop.reason == "matched" and decided_by[-1].key == "END"):
            exit_status = console.wait_exit(POWER_OFF_GRACE if stop.reason == "matched" else 5.0)
        if exit_status is not None:
            timings["exited"] = now()
        else:
            console.kill()
        if stop.reason == "exited":  # the VM is gone undecided: did the console lose its last lines?
            stop = _recover(backend.console_log(req), [ln.raw for ln in (*mine, *foreign)], matcher, stop)
        timings["vm_started"] = console.started - t0
        if console.first_output is not None:
            timings["first_output"] = timings["vm_started"] + console.first_output
        elapsed = console.elapsed()
        tail = console.tail()
        transcript = console.log_path
    facts = {ln.key: ln for ln in mine}
    return BootResult(
        nonce=nonce,
        stop=stop,
        exit_status=exit_status,
        lines=tuple(mine),
        foreign=tuple(foreign),
        workdir=workdir,
        transcript=transcript,
        command=command,
        tail=tail,
        elapsed=elapsed,
        facts=facts,
        timings=timings | {"total": now()},
    )
