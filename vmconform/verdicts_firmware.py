"""Verdicts for the firmware, hardware-description and platform clauses, from the probe's facts.

Each function takes what a boot (or an NVRAM flow) showed and returns :class:`~vmconform.verdicts.Verdict`s
for the clauses the spec version has (clauses.md §1.3 FW-4/5/6/9, §1.4 HW-1/2, §1.5 PLAT-1/3/4/5, §1.8
V2-2/3/5/6/7). Evidence names the value seen and what was required, so a firmware engineer can act on it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vmconform import clauses as cl
from vmconform.facts import FactError, ProbeFacts
from vmconform.facts import acpi as acpimod
from vmconform.facts.fdt import Fdt, FdtError, FdtNode
from vmconform.facts.smbios import SmbiosError
from vmconform.verdicts import ERROR, FAIL, PASS, Verdict, collector

__all__ = [
    "VmShape",
    "memory_bytes",
    "configured_cpus",
    "rtc",
    "nvram_flow",
    "nvram_preflight",
    "instance_store",
    "hardware_description",
    "counter",
    "exception_level",
    "gic_versions",
    "gic_seen",
]

GIC_COMPATIBLES = {
    "arm,gic-v3": 3,
    "arm,gic-v4": 4,
    "arm,gic-400": 2,
    "arm,cortex-a15-gic": 2,
    "arm,cortex-a7-gic": 2,
    "arm,cortex-a9-gic": 1,
    "arm,arm11mp-gic": 1,
}
UART_COMPATIBLES = ("arm,pl011", "arm,sbsa-uart")
TIMER_COMPATIBLES = ("arm,armv8-timer", "arm,armv7-timer")
PSCI_02_OR_LATER = re.compile(r"^arm,psci-(\d+)\.(\d+)$")
SPCR_SBSA_TYPES = {0x03: "ARM PL011", 0x0D: "ARM SBSA 32-bit", 0x0E: "ARM SBSA generic"}
STALL_SECONDS = 1.0  # the probe's Stall between the two GetTime / counter reads
COUNTER_TOLERANCE = (0.5, 2.0)  # counter seconds across the Stall, as a factor of STALL_SECONDS
MEMORY_TOLERANCE = 0.10  # described memory within 10 % of the configured size


def filter_spec(verdicts: Sequence[Verdict], spec: str) -> list[Verdict]:
    """The verdicts whose clause the spec version has."""
    return [v for v in verdicts if cl.get(v.clause).level(spec) is not None]


# ------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class VmShape:
    """What the hypervisor entry configures for one arch: vCPUs and RAM in bytes."""

    cpus: int
    memory: int

    @property
    def memory_text(self) -> str:
        return _size_text(self.memory)


def memory_bytes(text: str) -> int:
    """QEMU's -m syntax: a number with an optional k/M/G/T suffix (MiB when none)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", text)
    if not m:
        raise ValueError(f"unreadable memory size {text!r}")
    shift = {"": 20, "k": 10, "m": 20, "g": 30, "t": 40}[m.group(2).lower()]
    return int(float(m.group(1)) * (1 << shift))


def configured_cpus(args: Sequence[str]) -> int:
    """vCPUs from a QEMU ``-smp`` option in `args` (``-smp 4`` or ``-smp cpus=4,...``); 1 when absent."""
    cpus = 1
    for flag, value in zip(args, args[1:], strict=False):
        if flag in ("-smp", "--smp"):
            m = re.search(r"(?:^|,)(?:cpus=)?(\d+)(?:,|$)", value)
            if m:
                cpus = int(m.group(1))
    return cpus


def _size_text(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"


# ------------------------------------------------------------------------------------------ FW-9 RTC


def rtc(facts: ProbeFacts, spec: str, case: str = "") -> list[Verdict]:
    """FW-9: GetTime succeeds with an EFI_TIME in range, twice, advancing across the Stall; SetTime succeeds."""
    out, v = collector(spec, case)
    t = facts.time
    if t is None:
        v("FW-9", ERROR, "the probe printed no TIME line (it stopped before the time services were called)")
        return out
    problems = []
    for name, status in (("GetTime #1", t.get0), ("GetTime #2", t.get1)):
        if not status.ok:
            problems.append(f"{name} returned {status} (required EFI_SUCCESS)")
    for name, when in (("first", t.t0), ("second", t.t1)):
        bad = when.problems()
        if bad:
            problems.append(f"the {name} EFI_TIME is invalid: {'; '.join(bad)} (UEFI §8.3 ranges)")
    advanced = t.advanced
    if not t.stall.ok:
        problems.append(f"Stall(1 s) returned {t.stall}")
    elif advanced is not None and not 0 < advanced <= 5 * STALL_SECONDS:
        problems.append(
            f"the time moved {advanced:+.0f} s across a {STALL_SECONDS:.0f} s Stall (required: it "
            f"advances, by about {STALL_SECONDS:.0f} s)"
        )
    if not t.set.ok:
        problems.append(f"SetTime(the time just read) returned {t.set} (required EFI_SUCCESS)")
    seen = f"GetTime {t.t0} then {t.t1} (TimeZone {t.t0.time_zone:#x}), SetTime {t.set}"
    if problems:
        v("FW-9", FAIL, f"{'; '.join(problems)}; seen: {seen}")
    else:
        v("FW-9", PASS, f"{seen}: valid, advanced {advanced:.0f} s across the {STALL_SECONDS:.0f} s Stall")
    return out


# ------------------------------------------------------------------------------------------ FW-4/5/6 NVRAM

FLOW_CLAUSES = {"warm": ("FW-5",), "cold": ("FW-5",), "power": ("FW-4", "FW-5"), "bootnext": ("FW-4", "FW-5")}


def nvram_preflight(
    mapping: str,
    args: Sequence[str],
    vars_copy_writable: bool | None,
    pair_problem: str | None,
    firmware: str,
) -> list[tuple[str, str]]:
    """What stops an NVRAM test before it boots: (status for FW-4/FW-5, message) per problem found.

    `mapping` is the firmware's ("flash"/"bios"), `args` every extra argument the VM gets, `vars_copy_writable`
    whether the per-test copy of the vars template can be written (None: there is no template), `pair_problem`
    why CODE and VARS do not belong together (None: they do).
    """
    problems: list[tuple[str, str]] = []
    if mapping == "bios":
        problems.append(
            (
                FAIL,
                f"pre-flight: firmware {firmware} is loaded as the boot ROM (-bios) with no separate variable "
                f"store: the VM gives the firmware no persistent storage of its own (U-Boot writes ubootefi.var "
                f"into the image's ESP instead, see FW-6); declare FW-4/FW-5 under not_supported: with the "
                f"reason if that is by design",
            )
        )
    snap = [a for a in args if a == "-snapshot" or "snapshot=on" in a]
    if snap:
        problems.append(
            (
                FAIL,
                f"pre-flight: the vars store is ephemeral: extra_args has {snap[0]!r}, so QEMU "
                f"drops every write to the vars pflash when it exits; remove it",
            )
        )
    if mapping != "bios" and vars_copy_writable is False:
        problems.append(
            (
                ERROR,
                "pre-flight: the per-test copy of the vars template is not writable; "
                "check the permissions of the base temp folder",
            )
        )
    if pair_problem:
        problems.append((ERROR, f"pre-flight: CODE and VARS do not belong together: {pair_problem}"))
    return problems


def nvram_flow(mode: str, passed: bool, message: str, transcript: str, spec: str, case: str = "") -> list[Verdict]:
    """FW-4/FW-5 from one NVRAM flow (`vmconform.nvram.run_flow`)."""
    out, v = collector(spec, case)
    first = message.strip().splitlines()[0] if message.strip() else f"{mode}: no message"
    evidence = first if passed else f"{first} (transcript: {transcript})"
    for clause in FLOW_CLAUSES[mode]:
        v(clause, PASS if passed else FAIL, evidence)
    return out


def instance_store(
    before: str,
    after: str,
    set_status: str | None,
    records: int | None,
    vars_name: str,
    image_store: str,
    spec: str,
    case: str = "",
) -> list[Verdict]:
    """FW-6 after a VM set an NV variable: the disk image is byte-identical, the variable is in the instance's store.

    `before`/`after` are the disk image's sha256, `set_status` the SetVariable(NV|BS|RT) status name (None: never
    called), `records` how many records of the variable the instance's vars file holds (None: there is no vars
    file), `image_store` what `vmconform check` found stored in the image after the run ("" when nothing).
    """
    out, v = collector(spec, case)
    if set_status is None:
        v("FW-6", ERROR, "the probe never reached SetVariable(NV|BS|RT): where variables are kept is unknown")
        return out
    if set_status != "EFI_SUCCESS":
        v("FW-6", ERROR, f"SetVariable(NV|BS|RT) returned {set_status}: no variable was stored to look for")
        return out
    if after != before:
        found = f" ({image_store})" if image_store else ""
        v(
            "FW-6",
            FAIL,
            f"setting a UEFI variable wrote into the portable disk image{found}: sha256 {before[:16]}… before, "
            f"{after[:16]}… after; variables must live in a store of the VM instance, not in the image",
        )
        return out
    if records is None:
        v(
            "FW-6",
            ERROR,
            f"the disk image is byte-identical (sha256 {before[:16]}…) but the VM has no vars file: the "
            f"variable was kept nowhere persistent (see FW-5)",
        )
    elif records == 0:
        v(
            "FW-6",
            ERROR,
            f"the disk image is byte-identical (sha256 {before[:16]}…) but the variable never reached "
            f"the instance's {vars_name}: the store is not persistent (see FW-5)",
        )
    else:
        v(
            "FW-6",
            PASS,
            f"the disk image is byte-identical after the VM set a variable (sha256 {before[:16]}…); "
            f"the variable is in the instance's {vars_name}",
        )
    return out


# ------------------------------------------------------------------------------------------ hardware description


def _fdt(facts: ProbeFacts) -> tuple[Fdt | None, str]:
    try:
        return facts.fdt(), ""
    except (FdtError, FactError) as e:
        return None, f"the DTB does not decode: {e}"


def _acpi(facts: ProbeFacts) -> tuple[Mapping[str, bytes] | None, str]:
    try:
        a = facts.acpi()
    except (acpimod.AcpiError, FactError) as e:
        return None, f"the ACPI tables do not decode: {e}"
    if a is None:
        return None, ""
    problems = []
    if a.rsdp.revision < 2 or not a.rsdp.checksum_ok or not a.rsdp.extended_checksum_ok or not a.rsdp.xsdt_address:
        problems.append(
            f"RSDP revision {a.rsdp.revision}, checksums {a.rsdp.checksum_ok}/"
            f"{a.rsdp.extended_checksum_ok}, XSDT at {a.rsdp.xsdt_address:#x} (need revision >= 2, "
            f"both checksums, an XSDT)"
        )
    bad = [h.signature for h in a.headers if not h.checksum_ok]
    if bad:
        problems.append(f"tables with a bad checksum: {', '.join(bad)}")
    if problems:
        return None, "; ".join(problems)
    return a.tables, ""


def _cells(node: FdtNode, name: str, default: int) -> int:
    c = node.cells(name)
    return c[0] if c else default


def _fdt_memory(tree: Fdt) -> int:
    ac, sc = _cells(tree.root, "#address-cells", 2), _cells(tree.root, "#size-cells", 1)
    total = 0
    for _, node in tree.root.walk():
        if node.string("device_type") != "memory" or not tree.status_okay(node):
            continue
        reg = node.cells("reg")
        step = ac + sc
        for i in range(0, len(reg) - step + 1, step):
            size = 0
            for cell in reg[i + ac : i + step]:
                size = (size << 32) | cell
            total += size
    return total


def _fdt_cpus(tree: Fdt) -> list[str]:
    cpus = tree.find("/cpus")
    if cpus is None:
        return []
    return [c.name for c in cpus.children if c.string("device_type") == "cpu" or c.name.split("@")[0] == "cpu"]


def gic_seen(facts: ProbeFacts) -> tuple[int | None, str]:
    """(GIC version, how it was read) from the MADT GICD entry or the DT interrupt controller."""
    tables, _ = _acpi(facts)
    if tables is not None and "APIC" in tables:
        madt = acpimod.parse_madt(tables["APIC"])
        if madt.gic_version:
            return madt.gic_version, f"MADT GICD GicVersion {madt.gic_version} at {madt.gicd_base or 0:#x}"
    tree, _ = _fdt(facts)
    if tree is not None:
        for path, node in tree.root.walk():
            for comp in node.compatible:
                if comp in GIC_COMPATIBLES and "interrupt-controller" in node.properties:
                    return GIC_COMPATIBLES[comp], f"DT {path} compatible {comp!r}"
    return None, "no MADT GICD entry and no DT GIC node"


Item = tuple[bool, str]  # (as required, evidence) for one thing a description must give


def _describe_fdt(tree: Fdt, shape: VmShape) -> dict[str, Item]:
    """What a DTB says about the VM, item by item: cpus, memory, gic, uart, timer, psci."""
    items: dict[str, Item] = {}
    cpus = _fdt_cpus(tree)
    items["cpus"] = (
        len(cpus) == shape.cpus,
        f"DT /cpus has {len(cpus)} cpu node(s), the VM is configured with {shape.cpus} vCPU(s)",
    )
    mem = _fdt_memory(tree)
    items["memory"] = (
        abs(mem - shape.memory) <= MEMORY_TOLERANCE * shape.memory,
        f"DT memory nodes describe {_size_text(mem)}, the VM is configured with {shape.memory_text}",
    )
    gics = [(p, c) for p, n in tree.root.walk() for c in n.compatible if GIC_COMPATIBLES.get(c, 0) >= 2]
    items["gic"] = (
        (True, f"DT {gics[0][0]} compatible {gics[0][1]!r}")
        if gics
        else (False, "DT has no GICv2+ interrupt controller (compatible arm,gic-400, arm,cortex-a15-gic or arm,gic-v3)")
    )
    uarts = [(p, n) for p, n in tree.compatible(*UART_COMPATIBLES) if tree.status_okay(n)]
    if uarts:
        comp = next(c for c in uarts[0][1].compatible if c in UART_COMPATIBLES)
        items["uart"] = (True, f"DT {uarts[0][0]} compatible {comp!r}")
    else:
        items["uart"] = (False, "DT has no enabled PL011/SBSA UART (compatible arm,pl011 or arm,sbsa-uart)")
    timers = tree.compatible(*TIMER_COMPATIBLES)
    if not timers:
        items["timer"] = (False, "DT has no architected timer (compatible arm,armv8-timer or arm,armv7-timer)")
    else:
        ints = len(timers[0][1].cells("interrupts")) // 3
        items["timer"] = (
            ints >= 4,
            f"DT {timers[0][0]} ({timers[0][1].compatible[0]}) lists {ints} PPI(s) "
            f"(required: 4: secure, non-secure, virtual, hypervisor)",
        )
    psci = tree.find("/psci")
    if psci is None:
        items["psci"] = (False, "DT has no /psci node")
    else:
        versions = [m for m in (PSCI_02_OR_LATER.match(c) for c in psci.compatible) if m]
        method = psci.string("method")
        if not versions:
            items["psci"] = (False, f"DT /psci compatible {list(psci.compatible)} names no arm,psci-0.2 or later")
        elif method not in ("hvc", "smc"):
            items["psci"] = (False, f"DT /psci method is {method!r} (required: the conduit, hvc or smc)")
        else:
            best = max(versions, key=lambda m: (int(m.group(1)), int(m.group(2))))
            items["psci"] = (True, f"DT /psci compatible {best.group(0)!r}, method {method}")
    return items


def _smbios_memory(facts: ProbeFacts) -> int | None:
    """Installed memory from SMBIOS type 17 Memory Device sizes (SMBIOS 3.x §7.18.5), None when not given."""
    try:
        sm = facts.smbios3()
    except (SmbiosError, FactError):
        return None
    if sm is None:
        return None
    total, found = 0, False
    for s in sm[1]:
        if s.type != 17 or len(s.formatted) < 0x0E:
            continue
        (size,) = struct.unpack_from("<H", s.formatted, 0x0C)
        if size in (0, 0xFFFF):
            continue
        found = True
        if size == 0x7FFF and len(s.formatted) >= 0x20:
            total += struct.unpack_from("<I", s.formatted, 0x1C)[0] << 20
        else:
            total += (size & 0x7FFF) << (10 if size & 0x8000 else 20)
    return total if found else None


def _describe_acpi(tables: Mapping[str, bytes], facts: ProbeFacts, shape: VmShape) -> dict[str, Item]:
    """What the ACPI tables say, item by item: tables, cpus, gic, psci, uart, timer, and memory (from SMBIOS)."""
    items: dict[str, Item] = {}
    missing = [s for s in ("FACP", "APIC", "GTDT", "SPCR") if s not in tables]
    items["tables"] = (
        not missing,
        f"the XSDT lists no {', '.join(missing)}" if missing else f"the XSDT lists {', '.join(tables)}",
    )
    if "APIC" in tables:
        madt = acpimod.parse_madt(tables["APIC"])
        enabled = [g for g in madt.gicc if g[2]]
        items["cpus"] = (
            len(enabled) == shape.cpus,
            f"the MADT has {len(enabled)} enabled GICC entries, the VM is configured with {shape.cpus} vCPU(s)",
        )
        if madt.gic_version is None or madt.gic_version == 1:
            items["gic"] = (False, f"the MADT GICD entry gives GicVersion {madt.gic_version} (required: GICv2+)")
        else:
            items["gic"] = (
                True,
                f"MADT GICD GicVersion {madt.gic_version or 'from hardware'} at {madt.gicd_base or 0:#x}",
            )
    if "GTDT" in tables:
        gtdt = acpimod.parse_gtdt(tables["GTDT"])
        gsivs = (gtdt.secure_el1, gtdt.non_secure_el1, gtdt.virtual_el1, gtdt.non_secure_el2)
        items["timer"] = (
            all(gsivs),
            f"GTDT timer GSIVs secure {gsivs[0]}, non-secure {gsivs[1]}, virtual {gsivs[2]}, EL2 {gsivs[3]}",
        )
    if "FACP" in tables:
        fadt = acpimod.parse_fadt(tables["FACP"])
        conduit = "hvc" if fadt.psci_use_hvc else "smc"
        items["psci"] = (
            fadt.psci_compliant,
            f"FADT ARM_BOOT_ARCH {fadt.arm_boot_arch:#x}: "
            + (f"PSCI_COMPLIANT, conduit {conduit}" if fadt.psci_compliant else "PSCI_COMPLIANT not set"),
        )
    if "SPCR" in tables:
        spcr = acpimod.parse_spcr(tables["SPCR"])
        items["uart"] = (
            spcr.interface_type in SPCR_SBSA_TYPES,
            f"SPCR interface type {spcr.interface_type:#x} ({spcr.interface}) at {spcr.base_address:#x}",
        )
    mem = _smbios_memory(facts)
    if mem is not None:
        items["memory"] = (
            abs(mem - shape.memory) <= MEMORY_TOLERANCE * shape.memory,
            f"SMBIOS type 17 memory devices total {_size_text(mem)}, the VM is configured with {shape.memory_text}",
        )
    return items


DT_ITEMS = ("cpus", "memory", "gic", "uart", "timer", "psci")
ACPI_ITEMS = ("tables", "cpus", "gic", "uart", "timer", "psci")


def _complete(name: str, items: Mapping[str, Item], needed: Sequence[str]) -> list[str]:
    """What a description lacks or gets wrong (empty: it describes the VM)."""
    return [items[k][1] if k in items else f"{name} gives no {k}" for k in needed if not items.get(k, (False,))[0]]


def hardware_description(facts: ProbeFacts, shape: VmShape, spec: str, case: str = "") -> list[Verdict]:
    """HW-1, HW-2 (1.0), V2-5 (2.0), PLAT-1, PLAT-3, PLAT-4, V2-3, V2-6 from the TABLES line and the DUMPs."""
    out, v = collector(spec, case)
    platform = ("PLAT-1", "PLAT-3", "PLAT-4", "V2-3", "V2-6")
    if facts.tables is None:
        for c in ("HW-1", "HW-2", "V2-5", *platform):
            v(c, ERROR, "the probe printed no TABLES line: the configuration table was not read")
        return out
    names = facts.tables.names
    listed = f"configuration table: {', '.join(names) or 'empty'}"
    has_acpi, has_dtb = "ACPI_20" in names or "ACPI_10" in names, "DTB" in names
    if has_acpi or has_dtb:
        v("HW-1", PASS, listed)
    else:
        v("HW-1", FAIL, f"no ACPI (8868E871-…) or DTB (B1B621D5-…) entry; {listed}")

    tree, fdt_error = _fdt(facts) if has_dtb else (None, "")
    if has_dtb and tree is None and not fdt_error:
        fdt_error = "the DTB entry is listed but the probe dumped no DTB"
    tables, acpi_error = _acpi(facts) if has_acpi else (None, "")
    if has_acpi and tables is None and not acpi_error:
        acpi_error = "the ACPI entry is listed but the probe dumped no RSDP"
    dt = _describe_fdt(tree, shape) if tree is not None else {}
    ac = _describe_acpi(tables, facts, shape) if tables is not None else {}
    dt_wrong = _complete("the DTB", dt, DT_ITEMS)
    ac_wrong = _complete("ACPI", ac, ACPI_ITEMS)

    # HW-2 (spec 1.0): a complete DTB
    if not has_dtb:
        v("HW-2", FAIL, f"no DTB entry (B1B621D5-F19C-41A5-830B-D9152C69AAE0) in the {listed}")
    elif tree is None:
        v("HW-2", FAIL, fdt_error)
    elif dt_wrong:
        v("HW-2", FAIL, f"the DTB does not describe the VM: {'; '.join(dt_wrong)}")
    else:
        v("HW-2", PASS, f"DTB v{tree.version}: {'; '.join(dt[k][1] for k in DT_ITEMS)}")

    # V2-5 (spec 2.0): both, and both describe the VM
    if not (has_acpi and has_dtb):
        gone = " and ".join(
            n
            for n, there in (
                ("ACPI 2.0 (8868E871-E4F1-11D3-BC22-0080C73C8881)", has_acpi),
                ("DTB (B1B621D5-F19C-41A5-830B-D9152C69AAE0)", has_dtb),
            )
            if not there
        )
        v("V2-5", FAIL, f"both ACPI and a DTB are required; no {gone} entry in the {listed}")
    else:
        problems = [p for p in (fdt_error, acpi_error) if p]
        problems += [f"DT: {p}" for p in dt_wrong if tree is not None] + [f"ACPI: {p}" for p in ac_wrong if ac]
        if problems:
            v("V2-5", FAIL, "; ".join(problems))
        else:
            v("V2-5", PASS, f"ACPI and DTB both describe the VM; {listed}")

    descs = [(n, d) for n, d in (("DT", dt), ("ACPI", ac)) if d]
    if not descs:
        why = "; ".join(p for p in (fdt_error, acpi_error) if p) or f"no decodable ACPI or DTB; {listed}"
        for c in platform:
            v(c, FAIL, why)
        return out

    def judge(clause: str, keys: Sequence[str]) -> None:
        # every description present must give each item, and give it right
        wrong = [
            e
            for name, d in descs
            for e in _complete(name, d, [k for k in keys if name == "DT" or k != "memory" or k in d])
        ]
        good = [d[k][1] for _, d in descs for k in keys if k in d and d[k][0]]
        v(clause, FAIL if wrong else PASS, "; ".join(wrong + good) if wrong else "; ".join(good))

    judge("PLAT-1", ("cpus", "memory"))
    judge("PLAT-3", ("uart",))
    judge("PLAT-4", ("gic",))
    judge("V2-3", ("psci",))
    judge("V2-6", ("uart",))
    return out


# ------------------------------------------------------------------------------------------ platform


def counter(facts: ProbeFacts, spec: str, case: str = "") -> list[Verdict]:
    """PLAT-5 (V2-8 in spec 2.0): CNTFRQ is non-zero and CNTVCT advances by about CNTFRQ x the Stall."""
    out, v = collector(spec, case)
    cpu = facts.cpu
    if cpu is None:
        v("PLAT-5", ERROR, "the probe printed no CPU line")
        return out
    freq = cpu.counter_frequency
    regs = cpu.registers
    if not freq:
        v("PLAT-5", FAIL, "CNTFRQ reads 0: the generic timer's frequency is not programmed (required: non-zero)")
        return out
    ticks = regs.get("cntvct1", 0) - regs.get("cntvct0", 0)
    secs = ticks / freq
    lo, hi = COUNTER_TOLERANCE
    seen = (
        f"CNTFRQ {freq} Hz ({freq / 1e6:g} MHz); CNTVCT {regs.get('cntvct0', 0):#x} -> "
        f"{regs.get('cntvct1', 0):#x} across a {STALL_SECONDS:.0f} s Stall = {secs:.3f} s"
    )
    if lo * STALL_SECONDS <= secs <= hi * STALL_SECONDS:
        v("PLAT-5", PASS, seen)
    else:
        v("PLAT-5", FAIL, f"{seen} (required: {lo:g}..{hi:g} s: the virtual counter advances at CNTFRQ)")
    return out


def exception_level(facts: ProbeFacts, arch: str, spec: str, case: str = "") -> list[Verdict]:
    """V2-2: the firmware runs the application at EL1 (AArch64 CurrentEL) or PL1 (AArch32, e.g. SVC)."""
    out, v = collector(spec, case)
    cpu = facts.cpu
    if cpu is None:
        v("V2-2", ERROR, "the probe printed no CPU line")
        return out
    where = cpu.privilege
    if arch == "aarch64":
        raw = f"CurrentEL {cpu.registers.get('el', 0):#x}"
        ok = where == "EL1"
    else:
        raw = f"CPSR {cpu.registers.get('cpsr', 0):#x}"
        ok = "(PL1)" in where
    need = "EL1" if arch == "aarch64" else "a PL1 mode (SVC)"
    v("V2-2", PASS if ok else FAIL, f"{raw}: the application runs at {where} (required: {need})")
    return out


def gic_versions(
    runs: Mapping[int, tuple[int | None, str]], wanted: Sequence[int], spec: str, case: str = ""
) -> list[Verdict]:
    """V2-7: the VM boots with each GIC version asked for and describes that version.

    `runs` maps a configured version to (the version the hardware description gives or None, evidence); a
    version missing from `runs` was not configurable (evidence in `wanted`'s absence)."""
    out, v = collector(spec, case)
    if not wanted:
        v(
            "V2-7",
            ERROR,
            "the hypervisor entry lists no gic_versions for this arch: V2-7 needs boots with GICv2 and "
            "GICv3 (add gic_versions: [2, 3] to its arches entry)",
        )
        return out
    problems, seen = [], []
    for version in (2, 3):
        if version not in wanted:
            problems.append(f"GICv{version} is not configured (gic_versions: {list(wanted)})")
            continue
        got, evidence = runs.get(version, (None, "not booted"))
        if got == version:
            seen.append(f"gic-version={version}: {evidence}")
        else:
            problems.append(f"gic-version={version}: {evidence}" + (f" (GICv{got})" if got else ""))
    if problems:
        v("V2-7", FAIL, "; ".join(problems + seen))
    else:
        v("V2-7", PASS, "; ".join(seen))
    return out
