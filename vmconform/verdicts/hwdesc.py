"""Verdicts of suite/test_hwdesc.py: the DTB and ACPI describe the VM (HW-1, HW-2 / V2-5, PLAT-1/3/4, V2-3, V2-6).

Evidence names the value seen and what was required, so a firmware engineer can act on it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping, Sequence

from vmconform.facts import FactError, ProbeFacts
from vmconform.facts import acpi as acpimod
from vmconform.facts.fdt import Fdt, FdtError, FdtNode
from vmconform.facts.smbios import SmbiosError
from vmconform.verdicts import ERROR, FAIL, PASS, Verdict, collector
from vmconform.vm import VmShape, size_text

__all__ = ["hardware_description", "gic_seen"]

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
MEMORY_TOLERANCE = 0.10  # described memory within 10 % of the configured size


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
        f"DT memory nodes describe {size_text(mem)}, the VM is configured with {shape.memory_text}",
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
            f"SMBIOS type 17 memory devices total {size_text(mem)}, the VM is configured with {shape.memory_text}",
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
