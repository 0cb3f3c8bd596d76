"""The serial console of one VM: ANSI stripping, transcript, dead-end detection; a pexpect session for a VM process.

The VM process runs on a pty in its own session (pexpect forks with ``setsid``), so
its process id is also its process-group id: :meth:`Console.kill` ends it and
anything it started, whatever state it is in.

Transcripts: ``<name>.raw`` holds every byte as the guest sent it, ``<name>.log``
the same text with terminal escapes removed, one line a line.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Memory bounds for a console that floods: lines kept in memory, and the longest unfinished line.
KEPT_LINES = 10_000
MAX_LINE = 64 * 1024

# Cursor moves and screen clears start a new line; every other escape is dropped.
_ESC_BREAK = re.compile(rb"\x1b\[[0-9;]*[HfJ]")
_ESC_OTHER = re.compile(rb"\x1b(?:\[[0-9;=?]*[A-Za-z]|[()][A-Za-z0-9]|[=>78cDEHMNOZ])")


# An escape sequence cut by the end of a read (a slow VM's console arrives a few bytes at a time): held back
# and stripped once its end has come.
_ESC_UNFINISHED = re.compile(rb"\x1b(?:\[[0-9;=?]*|[()])?\Z")

# "\r\n", "\r\r\n" (a CRLF sent through a tty's onlcr, as U-Boot does) and a lone "\r" each end one line.
_NEWLINE = re.compile(rb"\r*\n|\r")


def strip_ansi(data: bytes) -> bytes:
    return _ESC_OTHER.sub(b"", _ESC_BREAK.sub(b"\n", data))


@dataclass(frozen=True)
class DeadEnd:
    """Console text that shows the firmware will not go on by itself."""

    pattern: re.Pattern[str]
    meaning: str
    partial: bool = False  # also matched on an unfinished line (prompts print no newline)


def _de(rx: str, meaning: str, partial: bool = False) -> DeadEnd:
    return DeadEnd(re.compile(rx), meaning, partial)


# EDK2 (ArmVirtQemu / OvmfPkg PlatformBootManagerLib) and generic CPU exception reports.
LOAD_FAILURE = _de(r"failed to load Boot[0-9A-Fa-f]{4}", "the firmware failed to load a boot option")
DEAD_ENDS: tuple[DeadEnd, ...] = (
    _de(r'starting Boot[0-9A-Fa-f]{4} "EFI Internal Shell"', "the firmware fell back to the UEFI Shell"),
    _de(r"UEFI Interactive Shell", "the firmware fell back to the UEFI Shell"),
    _de(r"^Shell> ", "the firmware sits at the UEFI Shell prompt", partial=True),
    _de(r"No bootable option or device was found", "the firmware found no bootable option"),
    _de(r"Press any key to enter the Boot Manager Menu", "the firmware waits for a key", partial=True),
    _de(
        r"Synchronous Exception|Prefetch Abort|Data Abort|Undefined Instruction|SError Exception",
        "a CPU exception was reported",
    ),
    _de(r"^ASSERT \[", "a firmware assertion failed"),
    _de(r"Kernel panic - not syncing", "the Linux kernel panicked"),  # a boot file that was not the probe
    _de(r'starting Boot[0-9A-Fa-f]{4} "UiApp"|Boot Maintenance Manager', "the firmware shows its front page"),
    _de(
        r"failed to (?:load|start) Boot[0-9A-Fa-f]{4} .*: (?:Access Denied|Security Violation)\s*$",
        "the firmware refused the image (Secure Boot: Access Denied / Security Violation)",
    ),
    # U-Boot
    _de(r"^=> ", "U-Boot stopped at its command prompt", partial=True),
    _de(r"^xenguest# ?$", "U-Boot (xenguest) stopped at its command prompt", partial=True),
    _de(r'"Synchronous Abort" handler|"Error" handler|Resetting CPU \.\.\.', "U-Boot reported a CPU exception"),
)


@dataclass(frozen=True)
class Stop:
    """Why watching the console ended."""

    reason: str  # "matched" | "exited" | "dead-end" | "timeout"
    detail: str = ""  # the matcher's verdict, or the dead end's meaning
    line: str = ""  # the console line that decided it
    elapsed: float = 0.0  # seconds since the console was started


class ConsoleBase:
    """A VM's console, read line by line from some source: transcripts, dead ends, decisions.

    A subclass says where bytes come from (:meth:`_read`), how the VM's exit status is known (:meth:`_reap`)
    and how the VM is ended (:meth:`kill`); use it as a context manager: on exit a VM still running is
    killed and the transcripts are closed.
    """

    def __init__(self, workdir: Path, name: str = "console", echo: Callable[[bytes], None] | None = None) -> None:
        self.workdir = workdir
        self.raw_path = workdir / f"{name}.raw"
        self.log_path = workdir / f"{name}.log"
        self._raw: IO[bytes] = open(self.raw_path, "wb")
        self._log: IO[str] = open(self.log_path, "w", encoding="utf-8")
        self._echo = echo
        self._pending = b""
        self.lines: deque[str] = deque(maxlen=KEPT_LINES)  # the newest lines; the transcript has them all
        self.started = time.monotonic()
        self.first_output: float | None = None  # seconds from start to the VM's first console byte
        self.exit_status: int | None = None
        self.signal_status: int | None = None
        self._eof = False

    # --- the source (subclasses) ------------------------------------------------
    def _read(self, timeout: float) -> bytes | None:
        """Up to 64 KiB the VM printed, b"" when nothing came within `timeout`, None at the end of the output."""
        raise NotImplementedError

    def _reap(self, deadline: float) -> int | None:
        """The VM's exit status once its output ended (negative: killed by that signal); None if unknown by
        `deadline`."""
        raise NotImplementedError

    def kill(self) -> None:
        """End the VM, whatever state it is in (idempotent)."""
        raise NotImplementedError

    def _alive(self) -> bool:
        return not self._eof

    def _release(self) -> None:
        """Free what the source holds once the VM is gone."""

    # --- reading ---------------------------------------------------------
    def _lines_of(self, text: bytes) -> tuple[list[bytes], bytes]:
        """Complete lines and the unfinished rest (a subclass may rejoin lines its source wraps)."""
        *complete, rest = text.split(b"\n")
        return complete, rest

    def _feed(self, data: bytes, from_vm: bool = True) -> list[str]:
        if from_vm:
            if self.first_output is None and data:
                self.first_output = self.elapsed()
            self._raw.write(data)
            self._raw.flush()
            if self._echo is not None:
                self._echo(data)
        text = self._pending + data
        held = b""
        if from_vm:  # an escape or a CR LF cut by the end of this read: decide on it with the next read
            cut = _ESC_UNFINISHED.search(text)
            if cut is not None:
                text, held = text[: cut.start()], text[cut.start() :]
            stripped = text.rstrip(b"\r")
            text, held = stripped, text[len(stripped) :] + held
        text = strip_ansi(text)
        text = _NEWLINE.sub(b"\n", text)
        complete, rest = self._lines_of(text)
        self._pending = rest + held
        if len(self._pending) > MAX_LINE:  # a console that never ends its line is cut, not buffered forever
            complete.append(self._pending)
            self._pending = b""
        new = [c.decode("utf-8", "replace") for c in complete]
        for line in new:
            self._log.write(line + "\n")
        self._log.flush()
        self.lines.extend(new)
        return new

    @property
    def partial_line(self) -> str:
        return self._pending.decode("utf-8", "replace")

    def watch(
        self,
        matcher: Callable[[str], str | None],
        timeout: float,
        dead_ends: Sequence[DeadEnd] = DEAD_ENDS,
    ) -> Stop:
        """Read until ``matcher`` returns a verdict for a line, a dead end shows, the VM exits, or time runs out.

        ``timeout`` counts from now. Lines already read are not offered again.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self._eof:
                return Stop("exited", "the VM process ended", "", self.elapsed())
            left = deadline - time.monotonic()
            if left <= 0:
                return Stop("timeout", f"no decision within {timeout:g} s", self.partial_line, self.elapsed())
            data = self._read(min(left, 1.0))
            if data is None:
                # Offer an unfinished last line too, then report the exit on the next turn.
                self._eof = True
                data = b"\n" if self._pending else b""
            for line in self._feed(data, from_vm=not self._eof) if data else []:
                verdict = matcher(line)
                if verdict is not None:
                    return Stop("matched", verdict, line, self.elapsed())
                for de in dead_ends:
                    if de.pattern.search(line):
                        return Stop("dead-end", de.meaning, line, self.elapsed())
            part = self.partial_line
            if part:
                for de in dead_ends:
                    if de.partial and de.pattern.search(part):
                        return Stop("dead-end", de.meaning, part, self.elapsed())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the VM to end; its exit status, or None if it is still running."""
        deadline = time.monotonic() + timeout
        while not self._eof and time.monotonic() < deadline:
            data = self._read(max(0.0, min(1.0, deadline - time.monotonic())))
            if data is None:
                self._eof = True
            elif data:
                self._feed(data)
        if not self._eof:
            return None
        return self._reap(deadline)

    def tail(self, n: int = 25) -> str:
        lines = [ln for ln in self.lines if ln.strip()][-n:]
        if self.partial_line.strip():
            lines.append(self.partial_line)
        return "\n".join(lines)

    # --- ending ----------------------------------------------------------
    def close(self) -> None:
        for f in (getattr(self, "_raw", None), getattr(self, "_log", None)):
            if f is not None and not f.closed:
                f.close()

    def __enter__(self) -> ConsoleBase:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._alive():
                self.kill()
            self._release()
        finally:
            if self._pending and not self._log.closed:
                self._feed(b"\n", from_vm=False)
            self.close()


class Console(ConsoleBase):
    """A VM process on a pty (pexpect), in its own session: :meth:`kill` ends its whole process group."""

    def __init__(
        self,
        argv: Sequence[str],
        workdir: Path,
        name: str = "console",
        env: Mapping[str, str] | None = None,
        echo: Callable[[bytes], None] | None = None,
    ) -> None:
        import pexpect

        super().__init__(workdir, name, echo)
        self._pexpect = pexpect
        try:
            self.proc = pexpect.spawn(
                argv[0],
                list(argv[1:]),
                cwd=str(workdir),
                env=dict(env) if env else None,
                echo=False,
                timeout=None,
            )
        except pexpect.ExceptionPexpect as e:
            self.close()
            raise OSError(f"cannot start {argv[0]}: {e}") from None
        self.pid: int = self.proc.pid
        # pexpect/ptyprocess sleep 0.1 s on close "to let the child exit"; the harness waits for exit itself.
        self.proc.delayafterclose = 0
        self.proc.ptyproc.delayafterclose = 0

    def _read(self, timeout: float) -> bytes | None:
        try:
            data: bytes = self.proc.read_nonblocking(65536, timeout=timeout)
        except self._pexpect.TIMEOUT:
            return b""
        except self._pexpect.EOF:
            return None
        return data

    def _reap(self, deadline: float) -> int | None:
        # The pty has closed; reap the process.
        while self.proc.isalive() and time.monotonic() < deadline + 5:
            time.sleep(0.01)
        if self.proc.isalive():
            return None
        self.exit_status = self.proc.exitstatus
        self.signal_status = self.proc.signalstatus
        return self.exit_status if self.exit_status is not None else -(self.signal_status or 0)

    def _alive(self) -> bool:
        return bool(self.proc.isalive()) or not self._eof

    def kill(self) -> None:
        """Kill the VM's whole process group (idempotent)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.close(force=True)
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass

    def _release(self) -> None:
        try:
            self.proc.close(force=True)  # release the pty now, not when the object is collected
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass

    def __enter__(self) -> Console:
        return self
