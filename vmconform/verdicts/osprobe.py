"""Verdicts of suite/test_os.py: what a Linux guest (the OS probe) saw, clause by clause, with its lines as evidence.

- HW-2 (spec 1.0) / V2-5 (spec 2.0), end to end: the kernel booted with ``acpi=off`` on the DT, and (aarch64)
  with ACPI, and probed from each the UART, virtio (the boot disk), the GIC and the architected timer; in a Xen
  domU the console may be Xen's PV console (hvc0) and the boot disk a PV disk (xen-blkfront), as PLAT-3 allows.
  Debian's armmp kernel has no ACPI (none exists for AArch32 Linux): on arm the DT boot is judged alone.
- PLAT-1: every configured vCPU online, System RAM close to the configured memory, the buses enumerated (the boot
  disk's virtio-pci function bound to its driver, or its Xen PV device on xenbus).
- V2-3: PSCI 0.2 or later as the kernel found it, and every secondary CPU brought up (through PSCI CPU_ON).
- PLAT-5 (V2-8): the kernel runs on the virtual timer and its interrupt (INTID 27) is counted on the CPUs.
- FW-9: rtc0 is rtc-efi (the UEFI time services, after ExitBootServices), its time is near the host's and does not go
  back (that it advances is timed by the UEFI probe across a Stall).
- PLAT-6 (V2-9): a block and a network device hot-plugged while the guest runs (virtio onto pcie-root-ports;
  PV devices through xl on Xen) appear in the guest and go; a refusal is `fail`, a broken control `error`.
- FW-5: a non-volatile variable written at runtime (efivarfs) is there after a power-off, in the guest and in
  the host's store.

A boot that never ran Linux because of the harness or the host (``xl create`` failed, no output at all) gives
``error``, never ``fail``; when Linux did not reach /init, only HW-2/V2-5 fail and the clauses /init would have
shown are ``error`` (not judged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vmconform.enums import Arch
from vmconform.osprobe.run import OS_CPUS, HotplugOutcome, OsBoot, VariableOutcome
from vmconform.verdicts import ERROR, FAIL, PASS, Verdict, boot_failure, collector, short
from vmconform.vm import VmShape

__all__ = ["described_boot", "description", "hotplug", "platform", "runtime_variables", "VIRTUAL_TIMER_INTID"]

VIRTUAL_TIMER_INTID = 27  # the EL1 virtual timer's PPI (PPI 11) as the GIC numbers it
MEMORY_FLOOR = 0.85  # System RAM the kernel finds, as a share of the configured memory (firmware keeps some)
RTC_SKEW_S = 600  # how far the guest's rtc-efi may be from the host's clock (QEMU's RTC starts at host UTC)


def _failed_boot(b: OsBoot) -> str | None:
    """Why a boot gave no usable report (None when /init reported and finished)."""
    r = b.result
    if b.facts.booted and b.facts.finished:
        return None
    how = r.stop.detail or r.stop.reason
    at = f" at {short(r.stop.line)!r}" if r.stop.line else ""
    said = "the kernel ran /init but it did not finish" if b.facts.booted else "Linux never reached /init"
    return f"{b.label} boot: {said}: {how}{at} (transcript {r.transcript})"


def _not_described(b: OsBoot) -> str:
    """The status of a boot that did not describe the VM: FAIL, or ERROR when Linux never ran because of the
    harness or the host (e.g. ``xl create`` failed, or no output at all)."""
    return FAIL if b.facts.booted else boot_failure(b.result)[0]


def described_boot(b: OsBoot) -> tuple[bool, str]:
    """Whether one boot probed the VM's devices from the description it was meant to use, and the evidence."""
    why = _failed_boot(b)
    if why:
        return False, why
    f = b.facts
    want = "ACPI" if b.acpi else "DT"
    uart = f.dev("uart")
    if f.xen and uart == "none" and "hvc0" in f.dev("console").split(","):
        uart = "none, console hvc0 (Xen PV console)"  # PLAT-3 allows it; V2-6 (SBSA UART) is judged from the DT
    buses = {"Xen PV": ",".join(f"{t}:{d}" for t, d in f.xen)} if f.xen else {}
    seen = {
        "UART": uart,
        "virtio": ",".join(f"{t}:{d}" for t, d in f.virtio) or "none",
        **buses,
        "GIC": f.dev("gic") if f.dev("gic") != "none" else f.dev("irqchip"),
        "timer": f"{f.dev('timer')} ({f.dev('clocksource')})",
    }
    optional = ("virtio", "UART") if f.xen else ()  # a domU's devices are Xen PV ones
    missing = [
        k for k, v in seen.items() if k not in optional and (v in ("none", "none (none)") or v.startswith("none "))
    ]
    if f.boot_disk_driver is None:
        missing.append("the boot disk (bound to virtio_blk, or xen-blkfront in a Xen domU)")
    text = f"{b.label} boot: Linux {f.field('OSBOOT', 'release')} described by {f.description}: " + ", ".join(
        f"{k} {v}" for k, v in seen.items()
    )
    if want not in f.description:
        return False, f"{text}; the kernel was not described by {want}"
    if missing:
        return False, f"{text}; not probed: {', '.join(missing)}"
    return True, text


def description(boots: Mapping[str, OsBoot], arch: str, spec: str, case: str = "") -> list[Verdict]:
    """HW-2 from the DT boot; V2-5 from the DT and the ACPI boot (aarch64) or the DT boot alone (arm)."""
    out, v = collector(spec, case)
    dt = boots.get("dt")
    if dt is None:
        v("HW-2", ERROR, "no DT boot was made")
        v("V2-5", ERROR, "no DT boot was made")
        return out
    ok_dt, ev_dt = described_boot(dt)
    st_dt = PASS if ok_dt else _not_described(dt)
    v("HW-2", st_dt, ev_dt)
    if arch != Arch.AARCH64:
        note = "; AArch32 Linux has no ACPI, so the ACPI half is judged from the tables only (test_hwdesc)"
        v("V2-5", st_dt, ev_dt + note)
        return out
    acpi = boots.get("acpi")
    if acpi is None:
        v("V2-5", ERROR, "no ACPI boot was made; " + ev_dt)
        return out
    ok_acpi, ev_acpi = described_boot(acpi)
    statuses = {st_dt, PASS if ok_acpi else _not_described(acpi)}
    v("V2-5", FAIL if FAIL in statuses else ERROR if ERROR in statuses else PASS, f"{ev_acpi}; {ev_dt}")
    return out


def platform(b: OsBoot, shape: VmShape, host_times: tuple[float, float], spec: str, case: str = "") -> list[Verdict]:
    """PLAT-1, V2-3, PLAT-5 and FW-9 from one finished boot with `OS_CPUS` vCPUs and `shape`'s memory."""
    out, v = collector(spec, case)
    why = _failed_boot(b)
    if why:
        for clause in ("PLAT-1", "V2-3", "PLAT-5", "FW-9"):
            v(clause, ERROR, f"not judged: {why}")
        return out
    f = b.facts
    # PLAT-1
    online, ram, pci = f.cpus_online, f.memory, f.pci
    bound = [d for d in pci if d.driver != "none"]
    problems = []
    if len(online) != OS_CPUS:
        problems.append(f"{len(online)} CPUs online, {OS_CPUS} configured")
    if ram is None or not MEMORY_FLOOR * shape.memory <= ram <= shape.memory:
        problems.append(f"System RAM {ram} bytes, configured {shape.memory_text} (required {MEMORY_FLOOR:.0%}..100%)")
    if f.xen:
        if ("vbd", "vbd") not in f.xen:
            problems.append("the boot disk's Xen PV device (vbd) is not on xenbus, bound to xen-blkfront")
    elif not any(d.vendor == "1af4" and d.driver == "virtio-pci" for d in pci):
        problems.append("the boot disk's virtio-pci function is not enumerated")
    ram_text = f"{ram / (1 << 20):.1f} MiB" if ram is not None else "unknown"
    seen = (
        f"CPUs online {f.field('OSCPU', 'online')} ({len(online)} of {OS_CPUS} configured); System RAM {ram_text} of "
        f"{shape.memory_text}; PCI: {len(pci)} functions ({'; '.join(map(str, bound)) or 'none bound'})"
        + (f"; xenbus: {f.field('OSDEV', 'xen')}" if f.xen else "")
    )
    v("PLAT-1", FAIL if problems else PASS, seen + (f"; {'; '.join(problems)}" if problems else ""))
    # V2-3
    version = f.psci_version
    brought = f.field("OSSMP", "brought") or ""
    up = int(brought.split(",")[-2]) if brought.count(",") >= 2 and brought.split(",")[-2].isdigit() else None
    text = f"kernel: {f.psci_text or 'no psci: line'}; {brought.replace(',', ' ') or 'no Brought up line'}"
    if version is None or version < (0, 2):
        v("V2-3", FAIL, f"{text} (required: PSCI 0.2 or later)")
    elif up != OS_CPUS or len(online) != OS_CPUS or (f.secondaries or 0) and f.secondaries != OS_CPUS - 1:
        v("V2-3", FAIL, f"{text}; {len(online)} online (required: all {OS_CPUS} brought up through CPU_ON)")
    else:
        v("V2-3", PASS, f"{text}; CPUs {f.field('OSCPU', 'online')} online")
    # PLAT-5
    counts, intid, timer = f.timer_counts, f.timer_intid, f.dev("timer")
    line = (f.field("OSTIMER", "line") or "").replace(",", " ")
    tseen = f"arch_timer running on the {timer} timer; /proc/interrupts: {line or 'no arch_timer line'}"
    if counts is None or counts[1] <= counts[0] or timer != "virt" or intid != VIRTUAL_TIMER_INTID:
        v("PLAT-5", FAIL, f"{tseen} (required: the virtual timer, INTID {VIRTUAL_TIMER_INTID}, counting interrupts)")
    else:
        v("PLAT-5", PASS, f"{tseen}; {counts[1] - counts[0]} interrupts during /init")
    # FW-9
    driver, e0, e1 = f.rtc
    rseen = f"rtc0: {f.field('OSRTC', 'name') or 'none'} (driver {driver}), time {e0} -> {e1} s since the epoch"
    lo, hi = host_times
    if driver != "rtc-efi" or e0 is None or e1 is None:
        v("FW-9", FAIL, f"{rseen} (required: rtc-efi, the UEFI time services after ExitBootServices)")
    elif e1 < e0 or not lo - RTC_SKEW_S <= e0 <= hi + RTC_SKEW_S:
        v("FW-9", FAIL, f"{rseen}; host clock {lo:.0f}..{hi:.0f} (required: within {RTC_SKEW_S} s, not going back)")
    else:
        v("FW-9", PASS, f"{rseen}; host clock {lo:.0f}..{hi:.0f}")
    return out


def hotplug(o: HotplugOutcome | str, spec: str, case: str = "") -> list[Verdict]:
    """PLAT-6 (V2-9) from the hot-plug flow (a string: why the backend could not run it)."""
    out, v = collector(spec, case)
    if isinstance(o, str):
        v("PLAT-6", ERROR, o)
        return out
    f = o.boot.facts
    ready, seen, gone = f.phase("OSHOTPLUG", "ready"), f.phase("OSHOTPLUG", "seen"), f.phase("OSHOTPLUG", "gone")
    done = "; ".join(o.actions) or "nothing was added"
    where = o.placement or f"{o.ports} pcie-root-port(s)"
    if o.refused:
        v("PLAT-6", FAIL, f"{where}: the hypervisor refused: {o.refused} (done before: {done})")
        return out
    if o.broken:
        v("PLAT-6", ERROR, f"{where}: the harness's hot-plug control failed: {o.broken} (done before: {done})")
        return out
    why = _failed_boot(o.boot)
    if ready is None or why:
        v("PLAT-6", ERROR, why or "the guest never said it was ready")
        return out
    blk = seen.fields.get("blk", "none") if seen else "none"
    net = seen.fields.get("net", "none") if seen else "none"
    left = (gone.fields.get("blk", "none"), gone.fields.get("net", "none")) if gone else ("?", "?")
    text = f"{where}: {done}; the guest saw block {blk}, network {net}; after the removal: left {left[0]}, {left[1]}"
    if o.removed:
        text += f"; {o.removed_words or 'the hypervisor reported removed:'} {', '.join(o.removed)}"
    ok = blk != "none" and net != "none" and left == ("none", "none")
    v("PLAT-6", PASS if ok else FAIL, text)
    return out


def runtime_variables(o: VariableOutcome, nonce: str, spec: str, case: str = "") -> list[Verdict]:
    """FW-5 at runtime: set through efivarfs, there after a power-off in the guest and in the host's store."""
    out, v = collector(spec, case)
    set_line = o.set_boot.facts.phase("OSVAR", "set")
    why = _failed_boot(o.set_boot)
    if set_line is None or why:
        v("FW-5", ERROR, why or "the guest printed no OSVAR set line")
        return out
    st, wrote = set_line.fields.get("status"), set_line.fields.get("data")
    first = f"set from Linux (efivarfs, attributes NV|BS|RT): write status {st}, read back {wrote!r}"
    if st != "0" or wrote != nonce:
        v("FW-5", FAIL, f"{first} (required: written and read back as {nonce!r})")
        return out
    get_line = o.get_boot.facts.phase("OSVAR", "get") if o.get_boot else None
    host = f"the host's store: {o.host}"
    if o.get_boot is not None and get_line is None and o.get_boot.facts.phase("OSVAR", "set") is not None:
        v("FW-5", FAIL, f"{first}; after power-off, a new VM on the same store does not have it (it set it again); "
                        f"{host}")  # fmt: skip
        return out
    if o.get_boot is None or get_line is None:
        why2 = _failed_boot(o.get_boot) if o.get_boot else "no second boot"
        v("FW-5", ERROR, f"{first}; the second boot gave no report: {why2}")
        return out
    got = get_line.fields.get("data", "") if get_line.fields.get("present") == "yes" else None
    second = f"after power-off, a new VM on the same store reads {got!r}" if got is not None else (
        "after power-off, a new VM on the same store does not have it")  # fmt: skip
    ok = got == nonce and o.host_data == nonce.encode()
    v("FW-5", PASS if ok else FAIL, f"{first}; {second}; {host}")
    return out


def boots_summary(boots: Sequence[OsBoot]) -> str:
    """One line per boot: how it was described and how it ended (for failure messages)."""
    return "; ".join(f"{b.label}: {b.result.stop.reason} ({b.result.stop.detail})" for b in boots)
