"""Booting the OS probe: its disk, one boot, and the flows that span a running VM or two boots.

- `OsProbeVm`: what every boot of one case's OS probe shares (backend, parts, firmware, folders, timeout, tag).
- `boot_os`: the case's layout with the unified kernel image at the removable-media path (the same GPT/ESP
  layouts as the UEFI probe, `vmconform.image.layouts`), the command line carrying the nonce, the mode and,
  for a DT boot, ``acpi=off``; booted with `vmconform.runner.boot` and the kernel's dead ends added (a panic;
  on a DT boot the EFI stub's "Generating empty DTB", which means the firmware gave no device tree).
- `hotplug_flow` (PLAT-6 / V2-9): the VM gets hot-plug ports through `Backend.hotplug`; when the guest says
  ``OSHOTPLUG ready`` the harness adds a virtio-blk and a virtio-net device, when it says ``seen`` it asks
  for their removal, and the guest reports them ``gone``. With ``ports=0`` (the negative control) the
  devices have no hot-pluggable bus to go to.
- `runtime_variable_flow`: the guest writes a non-volatile variable through efivarfs (runtime services, after
  ExitBootServices), powers off; a new VM on the same variable store reads it back; the host reads the store.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from uuid import UUID

from vmconform.console import DEAD_ENDS, DeadEnd
from vmconform.firmware import Firmware, copy_vars_template
from vmconform.hypervisors import Backend, HotplugControl, HotplugRefused
from vmconform.image.disk import plan_disk, render_disk
from vmconform.image.layouts import LAYOUTS
from vmconform.osprobe.assets import OsProbeParts
from vmconform.osprobe.facts import OsFacts
from vmconform.probe.protocol import ProbeLine
from vmconform.runner import BootResult, boot
from vmconform.vm import Disk

__all__ = ["OS_CPUS", "OsBoot", "OsProbeVm", "HotplugOutcome", "VariableOutcome", "VAR_NAME", "VAR_GUID",
           "boot_os", "hotplug_flow", "runtime_variable_flow"]  # fmt: skip

OS_CPUS = 4
"""vCPUs of every OS probe VM: PLAT-1 counts them online, V2-3 sees every secondary brought up."""
VAR_NAME = "VmconformOsProbe"
VAR_GUID = UUID("5d3e1a4c-7b2f-4e61-9c0a-3f6b8d2e4a17")

NO_DTB = DeadEnd(
    re.compile(r"EFI stub: Generating empty DTB"),
    "the firmware's configuration table has no device tree: a kernel booted with acpi=off has nothing to describe "
    "the VM",
)


@dataclass(frozen=True)
class OsBoot:
    """One OS probe boot: the runner's result, the decoded facts, how it was described, the disk."""

    result: BootResult
    facts: OsFacts
    acpi: bool  # booted with ACPI allowed (False: acpi=off, a DT boot)
    mode: str
    cmdline: str
    disk: Disk
    host_times: tuple[float, float]  # the host's clock (s since the epoch) when the boot started and ended

    @property
    def label(self) -> str:
        """How the boot is named in evidence: by its description for the facts boots, by its flow otherwise."""
        if self.mode != "facts":
            return {"hotplug": "the hot-plug", "var": "the variable"}.get(self.mode, self.mode)
        return "ACPI" if self.acpi else "DT (acpi=off)"


@dataclass(frozen=True)
class OsProbeVm:
    """What every OS probe boot of one case shares: where it runs (`backend`, `firmware`), what boots (`parts`),
    where its files go (the disk and vars copy to `workdir`, transcripts to `out_dir`), how long a boot may take,
    and the tag its VM processes carry (`vmconform.reaper`)."""

    backend: Backend
    parts: OsProbeParts
    firmware: Firmware
    workdir: Path
    out_dir: Path
    timeout: float
    tag: str = ""

    def under(self, name: str) -> OsProbeVm:
        """The same VM with its transcripts in `out_dir`/`name` (a flow's second boot)."""
        return replace(self, out_dir=self.out_dir / name)


def write_os_disk(
    parts: OsProbeParts, cmdline: str, path: Path, layout: str = "reference", *, signed: bool = False
) -> Disk:
    """The layout's disk with the OS probe's boot files (`OsProbeParts.boot_files`) for `cmdline`."""
    files = parts.boot_files(cmdline, signed=signed)
    spec = LAYOUTS[layout].build(files, f"osprobe:{parts.arch}:{cmdline}", parts.arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    render_disk(plan_disk(spec)).image.save(path)
    return Disk(path, logical_block_size=LAYOUTS[layout].sector_size)


def boot_os(
    vm: OsProbeVm,
    nonce: str,
    *,
    mode: str = "facts",
    acpi: bool = True,
    layout: str = "reference",
    vars_path: Path | None = None,
    decide: Callable[[ProbeLine], str | None] | None = None,
    disk: Disk | None = None,
) -> OsBoot:
    """One boot of the OS probe with `OS_CPUS` vCPUs (`disk`: boot this one again, written before with the same
    nonce, mode and `acpi`)."""
    parts, firmware, workdir = vm.parts, vm.firmware, vm.workdir
    arch = parts.arch
    cmdline = parts.cmdline(nonce, mode, acpi=acpi, console=vm.backend.linux_console(arch))
    signed = firmware.secure_boot == "test-key"  # a VM that runs only images signed by vmconform's test key
    if disk is None:
        try:
            disk = write_os_disk(parts, cmdline, workdir / f"os-{arch}.img", layout, signed=signed)
        except FileNotFoundError:
            # a build of other inputs (another checkout's version sharing the cache) pruned the folder meanwhile
            from vmconform.osprobe.assets import parts as current

            parts = current(arch)
            disk = write_os_disk(parts, cmdline, workdir / f"os-{arch}.img", layout, signed=signed)
    if vars_path is None:
        vars_path = copy_vars_template(firmware, workdir / "vars.fd")
    ends = DEAD_ENDS if acpi or arch != "aarch64" else (*DEAD_ENDS, NO_DTB)
    started = time.time()
    result = boot(vm.backend.with_cpus(arch, OS_CPUS), arch, (disk,), firmware, nonce, vm.out_dir, vm.timeout,
                  vars_path=vars_path, tag=vm.tag, decide=decide, dead_ends=ends)  # fmt: skip
    return OsBoot(result, OsFacts.from_lines(result.lines), acpi, mode, cmdline, disk, (started, time.time()))


@dataclass(frozen=True)
class HotplugOutcome:
    """What happened in the hot-plug flow: the boot, the harness's actions (with the hypervisor's answers)."""

    boot: OsBoot
    ports: int
    actions: tuple[str, ...]
    refused: str  # the hypervisor's refusal, "" when it took every request
    removed: tuple[str, ...] = field(default=())  # device IDs the hypervisor reported deleted
    placement: str = ""  # where the devices went, in the hypervisor's words ("2 pcie-root-port(s)")
    removed_words: str = ""  # how the hypervisor reported the removals
    broken: str = ""  # the control channel failed (the harness could not ask): no claim about the hypervisor


def hotplug_flow(vm: OsProbeVm, nonce: str, *, ports: int = 2) -> HotplugOutcome:
    """Boot with `ports` hot-plug ports, add a virtio-blk and a virtio-net device, see them appear, remove them.

    HotplugUnsupported (from the backend) when it has no hot-plug control."""
    control_dir = Path(tempfile.mkdtemp(prefix="vmc-hp-"))  # a UNIX socket path must stay under 108 bytes
    try:
        variant, control = vm.backend.hotplug(vm.parts.arch, ports, control_dir)
        actions: list[str] = []
        refused: list[str] = []
        broken: list[str] = []
        removed: list[str] = []

        def decide(line: ProbeLine) -> str | None:
            if line.nonce != nonce:
                return f"a probe with nonce {line.nonce} ran, but this case's nonce is {nonce}"
            if line.key == "END":
                return "the probe reported END"
            if line.key != "OSHOTPLUG" or not line.args:
                return None
            try:
                if line.args[0] == "ready":
                    actions.append(control.add("blk", "vmc-hp-blk", 0))
                    actions.append(control.add("net", "vmc-hp-net", 1))
                elif line.args[0] == "seen":
                    actions.append(control.remove("vmc-hp-blk"))
                    actions.append(control.remove("vmc-hp-net"))
                elif line.args[0] == "gone":
                    removed.extend(control.removed())
            except HotplugRefused as e:
                refused.append(str(e))
                return f"the hypervisor refused the hot-plug request: {e}"
            except OSError as e:  # the control channel broke (the VM or its host went away, or never answered)
                broken.append(str(e))
                return f"the hot-plug control failed: {e}"
            return None

        run = boot_os(replace(vm, backend=variant), nonce, mode="hotplug", decide=decide)
        _close(control)
        return HotplugOutcome(run, ports, tuple(actions), "; ".join(refused), tuple(removed),
                              control.placement(ports), control.removed_words, "; ".join(broken))  # fmt: skip
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)


def _close(control: HotplugControl) -> None:
    try:
        control.close()
    except OSError:
        pass


@dataclass(frozen=True)
class VariableOutcome:
    """The runtime-variable flow: the writing boot, the reading boot, what the host read from the store."""

    set_boot: OsBoot
    get_boot: OsBoot | None
    host: str  # what the host found in the store: "data=<text> attributes=<hex>" or why nothing
    host_data: bytes | None
    vars_path: Path | None


def runtime_variable_flow(vm: OsProbeVm, nonce: str) -> VariableOutcome:
    """Set a non-volatile variable from Linux (efivarfs), power off, start a new VM on the same store, read it."""
    from vmconform.varstore import read_variable

    firmware = vm.firmware
    vm.workdir.mkdir(parents=True, exist_ok=True)
    vars_path = copy_vars_template(firmware, vm.workdir / "vars.fd")
    first = boot_os(vm.under("first"), nonce, mode="var", vars_path=vars_path)
    if first.facts.phase("OSVAR", "set") is None or first.result.exit_status is None:
        return VariableOutcome(first, None, "not read: the first boot did not finish", None, vars_path)
    # the same disk again (a firmware that keeps variables on the ESP keeps them there) on the same store
    second = boot_os(vm.under("second"), nonce, mode="var", vars_path=vars_path, disk=first.disk)
    if vars_path is None:
        return VariableOutcome(first, second, f"{firmware.name} has no variable store file", None, None)
    found = read_variable(vars_path, VAR_NAME, VAR_GUID)
    if isinstance(found, str):
        return VariableOutcome(first, second, found, None, vars_path)
    text = f"data={found.data.decode('ascii', 'replace')} attributes={found.attributes:#x}"
    return VariableOutcome(first, second, text, found.data, vars_path)
