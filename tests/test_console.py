"""The console layer on real processes: line splitting, ANSI stripping, dead ends, timeouts, killing."""

import os
import sys
import textwrap
import time

import pytest

from vmconform.console import Console, strip_ansi


def script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_strip_ansi_breaks_lines_at_cursor_moves():
    raw = b"\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: loading\r\n\x1b[1m\x1b[33mmap\x1b[0m: x\x1b[05;01HPress"
    assert strip_ansi(raw).replace(b"\r\n", b"\n").split(b"\n") == [
        b"",
        b"",
        b"BdsDxe: loading",
        b"map: x",
        b"Press",
    ]


def test_matcher_sees_clean_lines_and_transcripts_are_written(tmp_path):
    argv = script(r"""
        import sys
        sys.stdout.write("\x1b[2Jnoise\r\nVMCONFORM abc BOOT aarch64\r\n")
        sys.stdout.flush()
        import time; time.sleep(30)
    """)
    with Console(argv, tmp_path) as con:
        stop = con.watch(lambda ln: "found" if ln.startswith("VMCONFORM") else None, timeout=20)
        pid = con.pid
    assert stop.reason == "matched" and stop.line == "VMCONFORM abc BOOT aarch64"
    assert not alive(pid), "the context manager must kill the VM's process group"
    assert "VMCONFORM abc BOOT aarch64\n" in (tmp_path / "console.log").read_text()
    assert b"\x1b[2J" in (tmp_path / "console.raw").read_bytes()


def test_dead_end_prompt_without_newline_ends_at_once(tmp_path):
    argv = script(r"""
        import sys, time
        sys.stdout.write("UEFI firmware\r\n\x1b[06;01HShell> ")
        sys.stdout.flush()
        time.sleep(30)
    """)
    with Console(argv, tmp_path) as con:
        stop = con.watch(lambda ln: None, timeout=20)
    assert stop.reason == "dead-end"
    assert stop.detail == "the firmware sits at the UEFI Shell prompt"
    assert stop.elapsed < 10


def test_escapes_cut_between_reads_are_still_stripped(tmp_path):
    """A VM slowed down by a loaded host prints a menu a byte or two per read (systemd-boot's, as it drew it in
    CI): escape sequences cut by a read's end must still become line breaks, the title a clean line of its own."""
    argv = script(r"""
        import sys, time
        menu = ("\x1b[2J\x1b[25;16H\x1b[0m   VMCONFORM-PAYLOAD abc systemd-boot   \x1b[26;16H\x1b[0m\x1b[37m"
                "\x1b[40m   Reboot Into Firmware Interface   \x1b[27;01H      ")
        for i in range(0, len(menu), 2):
            sys.stdout.write(menu[i : i + 2])
            sys.stdout.flush()
            time.sleep(0.01)
        time.sleep(30)
    """)
    with Console(argv, tmp_path) as con:
        stop = con.watch(lambda ln: "menu" if "VMCONFORM-PAYLOAD abc systemd-boot" in ln else None, timeout=20)
        assert stop.reason == "matched" and stop.line == "   VMCONFORM-PAYLOAD abc systemd-boot   "
        con.watch(lambda ln: "next" if "Reboot" in ln else None, timeout=20)
    assert "\x1b" not in (tmp_path / "console.log").read_text()


def test_timeout_kills_the_whole_process_group(tmp_path):
    # the "VM" starts a child of its own; both must be gone afterwards
    argv = script(r"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("child", child.pid, flush=True)
        time.sleep(60)
    """)
    with Console(argv, tmp_path) as con:
        up = con.watch(lambda ln: ln if ln.startswith("child") else None, timeout=30)
        assert up.reason == "matched", up
        child = int(up.line.split()[1])
        stop = con.watch(lambda ln: None, timeout=1.0)
        assert stop.reason == "timeout"
        parent = con.pid
    # SIGKILL reaches the group at once, but a process needs a moment to die after it: poll, briefly
    deadline = time.monotonic() + 5
    while (alive(parent) or alive(child)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(parent) and not alive(child)


def test_exit_status_is_reported(tmp_path):
    with Console(script("print('bye'); raise SystemExit(3)"), tmp_path) as con:
        stop = con.watch(lambda ln: None, timeout=20)
        assert stop.reason == "exited"
        assert con.wait_exit(10) == 3
    assert con.lines[-1] == "bye"


def test_last_unfinished_line_is_offered_at_exit(tmp_path):
    with Console(
        script("import sys; sys.stdout.write('VMCONFORM x END shutdown'); sys.stdout.flush()"), tmp_path
    ) as con:
        stop = con.watch(lambda ln: "end" if ln.endswith("END shutdown") else None, timeout=20)
    assert stop.reason == "matched"


def test_missing_binary_is_a_clean_error(tmp_path):
    with pytest.raises(OSError, match="cannot start /nonexistent/qemu"):
        Console(["/nonexistent/qemu"], tmp_path)


def test_a_flooding_console_stays_bounded_in_memory(tmp_path):
    """A fake VM (a fault real firmware does not produce on purpose): 20 MB without a newline, then lines."""
    body = r"""
        import sys
        sys.stdout.write("x" * 20_000_000)
        for i in range(30_000):
            sys.stdout.write(f"line {i}\r\n")
        sys.stdout.write("DONE\r\n")
        sys.stdout.flush()
        import time; time.sleep(30)
    """
    with Console(script(body), tmp_path) as con:
        stop = con.watch(lambda ln: "done" if ln == "DONE" else None, timeout=60)
        assert stop.reason == "matched"
        assert len(con.lines) == con.lines.maxlen and con.lines[-1] == "DONE" and con.lines[-2] == "line 29999"
        assert max(len(ln) for ln in con.lines) <= 64 * 1024
    assert (tmp_path / "console.raw").stat().st_size > 20_000_000


def test_u_boot_xenguest_prompt_is_a_dead_end():
    """Debian's stock xenguest_arm64 U-Boot cannot boot a GPT image and stops at its own prompt."""
    from vmconform.console import DEAD_ENDS

    hits = [de.meaning for de in DEAD_ENDS if de.partial and de.pattern.search("xenguest# ")]
    assert hits == ["U-Boot (xenguest) stopped at its command prompt"]
    assert not [de for de in DEAD_ENDS if de.pattern.search("VMCONFORM n1 BOOT aarch64 path=xenguest# x")]
