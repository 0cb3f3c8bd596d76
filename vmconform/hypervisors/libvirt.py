"""The libvirt backend: one transient domain per boot (``virsh create``), its serial console through virsh.

The domain XML is generated from the entry's ``arches`` and the boot request: ``type='qemu'`` (TCG) or
``kvm``/``hvf`` per ``accel``; UEFI CODE as a read-only pflash ``<loader>`` and the per-boot VARS copy
as ``<nvram>`` (never the vendor template), or a boot ROM as ``<loader type='rom'>`` (QEMU ``-bios``);
virtio raw disks in boot order (``<boot order=N>``, ``<blockio>`` for other block sizes,
``<readonly/>``); no network interface, no graphics, no USB, no balloon; one serial port on a pty; and
``<bootmenu enable='yes' timeout='0'/>``, which libvirt turns into ``-boot menu=on,splash-time=0``
(ArmVirtQemu's boot-manager timeout, as in the qemu backend). The domain is called
``vmconform-<hash of tag and work folder>`` and carries the boot's tag in ``<metadata>`` and
``<description>`` (:func:`sweep` finds leftovers by it) and in QEMU's environment (``<qemu:env>``, so
the process sweep of :mod:`vmconform.reaper` finds its QEMU too).

One boot: ``virsh create --paused --console --autodestroy domain.xml`` runs on the harness's pty;
once virsh says the console is attached, the domain is resumed, so no firmware output is lost. When
the guest powers off the transient domain disappears and virsh exits; libvirt's lifecycle events
(``virsh event``, watched from before the domain exists) tell a guest power-off (exit status 0) from
a domain destroyed or crashed (exit status 1, with a ``vmconform:`` line in the transcript). Killing
the console destroys the domain first (``virsh destroy``); ``--autodestroy`` also ends it if virsh
dies. Entry keys: ``uri`` (default ``qemu:///system``) and ``run_as``: ``caller`` (default: QEMU runs
as the user running vmconform, a static DAC label, nothing relabelled, like the qemu backend) or
``libvirt`` (libvirt's configured user, e.g. ``libvirt-qemu``, with its relabelling: the folders of
the images and vars copies must then be reachable by that user).

The work folder gets ``domain.xml``, ``command.sh``, ``libvirt-events.log`` (the lifecycle events) and
``libvirt-qemu.log`` (libvirt's log of the domain, moved out of ``/var/log/libvirt/qemu`` for the local
``qemu:///system``: the QEMU command line libvirt generated). Only the local host's QEMU binaries are
checked (``binary:`` becomes ``<emulator>``), so a remote ``uri`` needs the same paths on both sides.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from vmconform.config import ConfigError, HypervisorEntry, resolve_binary
from vmconform.console import Console
from vmconform.hypervisors import Backend, BootRequest, GicUnsupported, HotplugControl, Leftover
from vmconform.hypervisors.libvirt_xml import (  # noqa: F401  (re-exported: the backend's XML in one place)
    DOMAIN_TYPE,
    LIBVIRT_ARCH,
    MEMORY_UNITS,
    METADATA_NS,
    NAME_PREFIX,
    QEMU_NS,
    Machine,
    cpu_element,
    domain_name,
    domain_xml,
    parse_machine,
    parse_memory,
    serial_log,
)
from vmconform.hypervisors.qemu import gic_variant, kvm_problem
from vmconform.reaper import TAG_ENV

DEFAULT_URI = "qemu:///system"
ATTACHED = "Escape character is"  # virsh's last line once the console is attached
ATTACH_TIMEOUT = 30.0
EVENT_GRACE = 5.0  # how long to wait for libvirt's lifecycle event after the console ends
VIRSH_TIMEOUT = 60.0
QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")  # where qemu:///system keeps each domain's QEMU log


# --- lifecycle events -----------------------------------------------------------------

_EVENT = re.compile(r"event 'lifecycle' for domain '(?P<name>[^']+)': (?P<what>.+?)\s*$")


def lifecycle_events(text: str, name: str) -> list[str]:
    """``virsh event --event lifecycle`` output -> this domain's events, e.g. ``Stopped Shutdown``."""
    out = []
    for line in text.splitlines():
        m = _EVENT.search(line)
        if m and m.group("name") == name:
            out.append(m.group("what"))
    return out


def guest_powered_off(events: Sequence[str]) -> bool | None:
    """True: the guest powered itself off; False: the domain stopped otherwise; None: not stopped yet."""
    for ev in events:
        if ev == "Shutdown Finished after guest request":
            return True
        if ev.startswith("Stopped"):
            host_asked = "Shutdown Finished after host request" in events
            return ev == "Stopped Shutdown" and not host_asked
    return None


# --- virsh ------------------------------------------------------------------------------


def virsh_binary() -> str:
    found = shutil.which("virsh")
    if found is None:
        raise ConfigError("virsh not found on PATH; install libvirt-clients (and libvirt-daemon-system)")
    return found


def virsh(uri: str, *args: str, timeout: float = VIRSH_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [virsh_binary(), "-q", "-c", uri, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"


def check_reachable(uri: str) -> None:
    """ConfigError (one line) unless libvirt answers on ``uri``."""
    try:
        r = virsh(uri, "uri", timeout=30)
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"libvirt does not answer on {uri} within 30 s; start it with scripts/start-libvirt"
        ) from None
    if r.returncode != 0:
        raise ConfigError(
            f"libvirt does not answer on {uri} ({_one_line(r.stderr)}); start it with scripts/start-libvirt"
        )


def destroy(uri: str, name: str, timeout: float = VIRSH_TIMEOUT) -> bool:
    """Destroy domain ``name`` and wait until libvirt no longer lists it; False if it is still there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            virsh(uri, "destroy", name, timeout=max(1.0, deadline - time.monotonic()))
            gone = virsh(uri, "domid", name, timeout=max(1.0, deadline - time.monotonic())).returncode != 0
        except subprocess.TimeoutExpired:
            return False
        if gone:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


LeftoverDomain = Leftover  # a libvirt domain found alive at session end


def our_domains(uri: str) -> list[LeftoverDomain]:
    """Every domain vmconform started on ``uri`` that still exists, with its tag."""
    r = virsh(uri, "list", "--all", "--name")
    if r.returncode != 0:
        raise OSError(f"virsh -c {uri} list failed: {_one_line(r.stderr)}")
    found = []
    for name in r.stdout.split():
        if not name.startswith(NAME_PREFIX):
            continue
        x = virsh(uri, "dumpxml", name)
        if x.returncode != 0:
            continue  # gone meanwhile
        boot = ET.fromstring(x.stdout).find(f"metadata/{{{METADATA_NS}}}boot")
        found.append(LeftoverDomain(name, boot.get("tag", "") if boot is not None else ""))
    return found


def _local_system(uri: str) -> bool:
    return uri.rstrip("/") == "qemu:///system"


def sweep(uri: str, run_id: str, log_dir: Path = QEMU_LOG_DIR) -> list[LeftoverDomain]:
    """Destroy every vmconform domain on ``uri`` whose tag belongs to ``run_id`` (``<run_id>/...``); those found.

    On the local ``qemu:///system`` it also removes libvirt's QEMU logs of the run's domains (each boot keeps
    a copy in its work folder); other runs' logs and the logs of domains that still exist are left alone.
    """
    domains = our_domains(uri)
    left = [d for d in domains if d.tag.startswith(f"{run_id}/")]
    for d in left:
        destroy(uri, d.name)
    if _local_system(uri):
        live = {d.name for d in domains} - {d.name for d in left}
        mine = re.compile(rf"^{TAG_ENV}='?{re.escape(run_id)}/", re.MULTILINE)
        for log in log_dir.glob(f"{NAME_PREFIX}*.log"):
            try:
                if log.stem not in live and mine.search(log.read_text(errors="replace")):
                    log.unlink()
            except OSError:
                pass
    return left


# --- the console --------------------------------------------------------------------------


class LibvirtConsole(Console):
    """``virsh create --console`` on a pty: the transient domain's serial console.

    Differs from :class:`Console` only in how it ends: :meth:`kill` destroys the domain before killing
    virsh, and :meth:`wait_exit` reports 0 only when libvirt says the guest powered itself off.
    """

    def __init__(
        self,
        argv: Sequence[str],
        workdir: Path,
        uri: str,
        domain: str,
        events_path: Path,
        events: subprocess.Popen[bytes] | None = None,
        env: Mapping[str, str] | None = None,
        echo: Callable[[bytes], None] | None = None,
    ) -> None:
        self.uri = uri
        self.domain = domain
        self.events_path = events_path
        self._events = events
        self._destroyed = False
        self._gone = False  # libvirt no longer has the domain
        super().__init__(argv, workdir, env=env, echo=echo)

    def note(self, text: str) -> None:
        """A harness line in the transcript (``vmconform: ...``), so failures show what libvirt said."""
        if not self._log.closed:
            self._feed(f"vmconform: {text}\n".encode(), from_vm=False)

    def events(self) -> list[str]:
        try:
            return lifecycle_events(self.events_path.read_text(errors="replace"), self.domain)
        except OSError:
            return []

    def wait_exit(self, timeout: float) -> int | None:
        status = super().wait_exit(timeout)
        if status != 0:
            return status  # still running (None), or virsh failed (its error is in the transcript)
        deadline = time.monotonic() + EVENT_GRACE
        while (clean := guest_powered_off(self.events())) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if clean:
            return 0
        if clean is None:  # virsh left, but libvirt did not report the domain stopping
            self._destroy()
        evs = ", ".join(self.events()) or "none"
        why = "stopped without a guest power-off" if clean is False else "reported no stop event"
        self.note(f"libvirt: domain {self.domain} {why} (lifecycle events: {evs})")
        self.exit_status = 1
        return 1

    def kill(self) -> None:
        self._destroy()
        super().kill()

    def _destroy(self) -> None:
        if not self._destroyed:
            self._destroyed = True
            self._gone = destroy(self.uri, self.domain)
            if not self._gone:
                self.note(f"libvirt: could not destroy domain {self.domain}; the session sweep will retry")

    def close(self) -> None:
        if not self._gone and self.events():
            # It ran: wait until libvirt has finished stopping it (~0.2 s after a guest power-off), so that no
            # domain outlives its boot and libvirt's log of it is complete.
            deadline = time.monotonic() + EVENT_GRACE
            while not (gone := any(ev.startswith("Stopped") for ev in self.events())) and time.monotonic() < deadline:
                time.sleep(0.02)
            self._gone = gone
        elif not self._gone:  # no event: it never started (virsh create failed), or the watcher saw nothing
            try:
                self._gone = virsh(self.uri, "domid", self.domain, timeout=30).returncode != 0
            except (subprocess.TimeoutExpired, ConfigError):
                pass
        if self._events is not None and self._events.poll() is None:
            self._events.kill()
            self._events.wait()
        super().close()
        # Move libvirt's per-domain QEMU log (the command line it generated) into the work folder;
        # sweep() removes the ones a killed run left behind.
        if _local_system(self.uri):
            src = QEMU_LOG_DIR / f"{self.domain}.log"
            try:
                shutil.copyfile(src, self.workdir / "libvirt-qemu.log")
                if self._gone:
                    src.unlink()
            except OSError:
                pass


# --- the backend ----------------------------------------------------------------------


class LibvirtBackend(Backend):
    """A transient libvirt domain per boot; the GIC version is ``<gic version=N/>``."""

    name = "libvirt"

    def __init__(self, entry: HypervisorEntry) -> None:
        super().__init__(entry)
        self.uri = entry.options.get("uri", DEFAULT_URI)
        self.run_as = entry.options.get("run_as", "caller")
        for arch, s in entry.arches.items():
            for key, parse in (("machine", parse_machine), ("cpu", cpu_element), ("memory", parse_memory)):
                try:
                    parse(getattr(s, key))
                except ValueError as e:
                    raise ConfigError(
                        f"{entry.source}:{entry.line}: hypervisors.{entry.name}.arches.{arch}.{key}: {e}"
                    ) from None

    def preflight(self) -> None:
        """ConfigError (one line) unless libvirt answers on the entry's URI (and KVM is usable, for accel kvm)."""
        if self.entry.accel == "kvm":
            for arch in self.entry.arches:
                problem = kvm_problem(arch)
                if problem:
                    raise ConfigError(f"hypervisor {self.entry.name}: accel kvm cannot run here: {problem}")
        check_reachable(self.uri)

    def with_gic(self, arch: str, version: int) -> Backend:
        if version not in (2, 3, 4):
            raise GicUnsupported(f"GIC version {version}: libvirt's <gic version=N/> takes 2, 3 or 4")
        return type(self)(gic_variant(self.entry, arch, version))

    def xml_path(self, req: BootRequest) -> Path:
        return req.workdir / "domain.xml"

    def domain_xml(self, req: BootRequest) -> str:
        run_as = (os.getuid(), os.getgid()) if self.run_as == "caller" else None
        return domain_xml(self.entry, req, resolve_binary(self.entry, req.arch), run_as)

    def command(self, req: BootRequest) -> list[str]:
        return [virsh_binary(), "-c", self.uri, "create", "--paused", "--console", "--autodestroy",
                str(self.xml_path(req))]  # fmt: skip

    def start(self, req: BootRequest, echo: Callable[[bytes], None] | None = None) -> Console:
        argv = self.command(req)
        name = domain_name(req)
        self.xml_path(req).write_text(self.domain_xml(req))
        resume = [argv[0], "-c", self.uri, "resume", name]
        (req.workdir / "command.sh").write_text(
            f"# libvirt transient domain {name}: started paused with its console attached, then resumed\n"
            f"{shlex.join(argv)}\n# once the console is attached (from another shell):\n# {shlex.join(resume)}\n"
        )
        env = {**os.environ, TAG_ENV: req.tag} if req.tag else None
        # Lifecycle events are watched from before the domain exists: they tell a guest power-off from a destroy.
        events_path = req.workdir / "libvirt-events.log"
        with open(events_path, "wb") as out:
            events = subprocess.Popen(
                [argv[0], "-c", self.uri, "event", "--event", "lifecycle", "--loop", "--timestamp"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        try:
            console = LibvirtConsole(argv, req.workdir, self.uri, name, events_path, events, env=env, echo=echo)
        except BaseException:
            events.kill()
            events.wait()
            raise
        try:
            self._attach_and_resume(console)
        except BaseException:
            console.__exit__(None, None, None)
            raise
        return console

    def _attach_and_resume(self, console: LibvirtConsole) -> None:
        stop = console.watch(lambda line: "attached" if line.startswith(ATTACHED) else None, ATTACH_TIMEOUT, ())
        if stop.reason == "exited":
            return  # virsh could not create the domain; its error is in the transcript, the runner reports it
        if stop.reason != "matched":
            raise OSError(f"virsh did not attach the console of domain {console.domain} within {ATTACH_TIMEOUT:g} s")
        # The event watcher has registered once it reports this domain's start; resume only then.
        deadline = time.monotonic() + EVENT_GRACE
        while not console.events() and time.monotonic() < deadline:
            time.sleep(0.02)
        r = virsh(self.uri, "resume", console.domain)
        if r.returncode != 0:
            raise OSError(f"virsh resume {console.domain} failed: {_one_line(r.stderr)}")

    def hotplug(self, arch: str, ports: int, control: Path) -> tuple[Backend, HotplugControl]:
        """virsh attach-device / detach-device-alias --live (`vmconform.hypervisors.libvirt_hotplug`)."""
        from vmconform.hypervisors.libvirt_hotplug import hotplug_variant

        return hotplug_variant(self, arch, ports, control)

    def console_log(self, req: BootRequest) -> Path | None:
        """virtlogd's log of the serial port (``<log file=.../>``): virsh's console can lose the last lines of a
        guest that powers off at once under load; this copy does not."""
        return serial_log(req)

    def sweep(self, run_id: str) -> list[Leftover]:
        """Destroy the domains a run left behind on this entry's URI (tags ``<run_id>/...``); those found."""
        return sweep(self.uri, run_id)
