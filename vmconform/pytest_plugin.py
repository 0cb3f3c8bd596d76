"""The pytest plugin: options, case parametrization, boot fixtures and reports.

Registered through the ``pytest11`` entry point, so ``pytest --help`` always lists
the options. It switches itself on (:func:`activate`) only when a run collects the
suite directory (ini key ``vmconform_suite``, default ``suite``): only then is
``hypervisors.yaml`` read and the chosen hypervisor checked, so the project's own
unit tests never need a VM.

Outputs of a run go to ``<reports-dir>/<run-id>/``: ``junit.xml``,
``results.json`` and ``cases/<test>/`` (the VM command line and console
transcripts); ``<reports-dir>/latest`` points at the newest run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vmconform import cases as casemod
from vmconform import clauses as clmod
from vmconform import config as cfgmod
from vmconform import firmware as fwmod
from vmconform import nvram, reaper
from vmconform import report as rpmod
from vmconform import verdicts as vdmod
from vmconform import verdicts_firmware as vfmod
from vmconform.check import DiskError, check_image
from vmconform.facts import EfiStatus, ProbeFacts
from vmconform.firmware import Firmware, copy_vars_template, file_sha256
from vmconform.hypervisors import Backend, Disk, backend_for
from vmconform.hypervisors.qemu import gic_variant
from vmconform.nvram import NvramOutcome
from vmconform.probe import ProbeLine, build_probe
from vmconform.probe.program import NV_VARIABLE_PREFIX, VENDOR_GUID
from vmconform.runner import BootResult, boot

RUN_DIR_KEY = "vmconform_run_dir"


@dataclass
class SuiteContext:
    """What one run is about: the hypervisor entry, arches, firmwares, where reports go."""

    hvfile: cfgmod.HypervisorsFile
    entry: cfgmod.HypervisorEntry
    arches: list[str]
    firmwares: dict[tuple[str, str], Firmware]  # (firmware name, arch) -> firmware
    firmware_names: list[str]
    backend: Backend
    run_dir: Path
    timeout: float
    spec: str
    fw_sha256: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # at the start of the run

    def firmware(self, name: str, arch: str) -> Firmware:
        return self.firmwares[(name, arch)]


CTX = pytest.StashKey[SuiteContext]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "vmconform_suite",
        "directory under the rootdir that holds the conformance suite; the plugin reads hypervisors.yaml and "
        "boots VMs only when a run collects it",
        default="suite",
    )
    g = parser.getgroup(
        "vmconform",
        "vmconform: VM System Specification for Arm Processors conformance "
        "(these apply when the suite in suite/ runs; see README.md)",
    )
    g.addoption(
        "--hypervisor",
        metavar="NAME",
        help="which entry of hypervisors.yaml to boot on (default: its 'default' key, normally 'qemu')",
    )
    g.addoption(
        "--hypervisors-file",
        metavar="PATH",
        help="the hypervisor configuration (default: hypervisors.yaml in the rootdir)",
    )
    g.addoption(
        "--arch",
        action="append",
        choices=casemod.ARCH_NAMES,
        help="guest architecture(s) to test, repeatable (default: every arch the hypervisor entry "
        "configures and vmconform has a probe for)",
    )
    g.addoption(
        "--firmware",
        action="append",
        metavar="NAME",
        help="firmware(s) of the hypervisor entry to test, repeatable (default: the first one listed)",
    )
    g.addoption(
        "--boot-timeout",
        type=float,
        metavar="SECONDS",
        help="backstop for one boot (default: the entry's 'timeout'); known firmware dead ends end a case at once",
    )
    g.addoption(
        "--case",
        action="append",
        metavar="NAME",
        help="only these catalogue cases, repeatable (names as in `vmconform gen --list`, e.g. aarch64-esp-second; "
        "a trailing * matches a prefix)",
    )
    g.addoption(
        "--clause",
        action="append",
        metavar="ID",
        help="only the tests that evidence these clauses, repeatable (IDs as in shared/spec/clauses.md, e.g. FW-5)",
    )
    g.addoption(
        "--spec",
        choices=clmod.SPEC_VERSIONS,
        default=clmod.DEFAULT_SPEC,
        help="spec version whose clause levels apply (default: %(default)s): 1.0 wants a DT and UEFI 2.4, "
        "2.0 wants ACPI and DT, UEFI 2.6, PSCI 0.2, GICv2 and v3",
    )
    g.addoption(
        "--reports-dir",
        metavar="DIR",
        default="reports",
        help="where each run writes <run-id>/{junit.xml,results.json,cases/} (default: reports)",
    )


def activate(config: pytest.Config) -> None:
    """Switch the plugin on for this run: read and check hypervisors.yaml, set up the report folder.

    Raises pytest.UsageError with one line on any configuration problem.
    """
    path = config.getoption("hypervisors_file")
    hvpath = Path(path) if path else Path(config.rootpath) / "hypervisors.yaml"
    try:
        hvfile = cfgmod.load(hvpath)
        entry = hvfile.get(config.getoption("hypervisor"))
        wanted = config.getoption("arch")
        if wanted:
            arches = list(dict.fromkeys(wanted))
        else:
            arches = [a for a in entry.arches if casemod.has_probe(a)]
        fwnames = list(dict.fromkeys(config.getoption("firmware") or [entry.default_firmware]))
        cfgmod.check_ready(entry, arches, fwnames)
        firmwares = {(fw, a): cfgmod.resolve_firmware(entry, fw, a) for fw in fwnames for a in arches}
    except cfgmod.ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    for a in arches:
        if not casemod.has_probe(a):
            raise pytest.UsageError(f"--arch {a}: vmconform has no {a} probe yet; choose another --arch")
    for clause_id in config.getoption("clause") or []:
        if clause_id not in clmod.BY_ID:
            near = difflib.get_close_matches(clause_id, list(clmod.BY_ID), n=3)
            hint = f"did you mean {', '.join(near)}?" if near else f"known: {', '.join(clmod.BY_ID)}"
            raise pytest.UsageError(f"--clause {clause_id}: no such clause; {hint}")
    names = [c.name for c in casemod.catalogue() if c.arch in arches]
    for wanted_case in config.getoption("case") or []:
        if not any(_name_matches(n, wanted_case) for n in names):
            near = difflib.get_close_matches(wanted_case, names, n=3)
            hint = f"did you mean {', '.join(near)}?" if near else "`vmconform gen --list` lists them"
            raise pytest.UsageError(
                f"--case {wanted_case}: no such case for {', '.join(arches)}; {hint} (a trailing * matches a prefix)"
            )

    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        run_dir = Path(workerinput[RUN_DIR_KEY])
    else:
        run_dir = _new_run_dir(Path(config.getoption("reports_dir")), entry.name)
        if not config.option.xmlpath:
            config.option.xmlpath = str(run_dir / "junit.xml")
    timeout = config.getoption("boot_timeout") or entry.timeout
    spec = config.getoption("spec")
    backend = backend_for(entry)
    check = getattr(backend, "check", None)  # a backend with a daemon says at once when it does not answer
    if check is not None:
        try:
            check()
        except cfgmod.ConfigError as e:
            raise pytest.UsageError(str(e)) from None
    ctx = SuiteContext(hvfile, entry, arches, firmwares, fwnames, backend, run_dir, timeout, spec)
    config.stash[CTX] = ctx
    if workerinput is None and not config.option.collectonly:
        config.pluginmanager.register(SuiteReporter(ctx), "vmconform-reporter")
        ctx.fw_sha256 = {key: fw.sha256() for key, fw in firmwares.items()}


def _new_run_dir(reports: Path, hv: str) -> Path:
    reports = reports.resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        run_dir = reports / (f"{stamp}-{hv}" if n == 0 else f"{stamp}-{hv}-{n}")
        try:
            run_dir.mkdir(parents=True)
            break
        except FileExistsError:
            continue
    latest = reports / "latest"
    try:
        if latest.is_symlink() or not latest.exists():
            latest.unlink(missing_ok=True)
            latest.symlink_to(run_dir.name)
    except OSError:
        pass
    return run_dir


def _runs_suite(config: pytest.Config) -> bool:
    """True when the run collects (part of) the suite directory named by the ``vmconform_suite`` ini key."""
    suite_dir = (config.rootpath / str(config.getini("vmconform_suite"))).resolve()
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == suite_dir or suite_dir in path.parents or path in suite_dir.parents:
            return True
    return False


def _misread_path_option(config: pytest.Config) -> str | None:
    """pytest finds its rootdir before plugin options are known, so ``--reports-dir /existing/dir`` (with a
    space) makes it take the directory for a test path, lose the checkout's ini and its testpaths."""
    if config.inipath is not None:
        return None
    for opt, flag in (("reports_dir", "--reports-dir"), ("hypervisors_file", "--hypervisors-file")):
        value = config.getoption(opt)
        if value and value in config.invocation_params.args and Path(value).exists():
            return (
                f"{flag} {value}: pytest took {value} for a test path while finding its rootdir; write {flag}={value}"
            )
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(*ids): spec clauses a test evidences (shared/spec/clauses.md)")
    config.addinivalue_line("markers", "cases(**filters): which catalogue cases a suite test runs on")
    misread = _misread_path_option(config)
    if misread:
        raise pytest.UsageError(misread)
    if _runs_suite(config):
        activate(config)
        return
    given = [o for o in ("hypervisor", "hypervisors_file", "arch", "firmware") if config.getoption(o)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise pytest.UsageError(
            f"{flag} applies to the conformance suite ({config.getini('vmconform_suite')}/ under the rootdir): "
            f"run pytest from the vmconform checkout or name the suite on the command line"
        )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker writes into the controller's run folder."""
    ctx = node.config.stash.get(CTX, None)
    if ctx is not None:
        node.workerinput[RUN_DIR_KEY] = str(ctx.run_dir)


def _ctx(config: pytest.Config) -> SuiteContext:
    ctx = config.stash.get(CTX, None)
    if ctx is None:
        raise pytest.UsageError(
            "vmconform's case fixtures belong to the conformance suite (ini key vmconform_suite, default suite/)"
        )
    return ctx


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    ctx = _ctx(metafunc.config)
    marker = metafunc.definition.get_closest_marker("cases")
    filters = dict(marker.kwargs) if marker else {}
    wanted = metafunc.config.getoption("case")
    # a test that names its clauses keeps them; otherwise it evidences the case's
    own_clauses = metafunc.definition.get_closest_marker("clause") is not None
    params = []
    for fw in ctx.firmware_names:
        for case in casemod.catalogue():
            if case.arch not in ctx.arches:
                continue
            if wanted and not any(_name_matches(case.name, w) for w in wanted):
                continue
            if any(not (v(getattr(case, k)) if callable(v) else getattr(case, k) == v) for k, v in filters.items()):
                continue
            params.append(
                pytest.param(
                    (fw, case),
                    id=f"{ctx.entry.name}-{fw}-{case.name}",
                    marks=[pytest.mark.boot] + ([] if own_clauses else [pytest.mark.clause(*case.clauses)]),
                )
            )
    metafunc.parametrize("case", params, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A suite test that no selected case applies to (an empty parameter set) is deselected, not skipped."""
    if CTX not in config.stash:
        return
    drop = [it for it in items if it.name.endswith("[NOTSET]") and it.get_closest_marker("cases") is not None]
    wanted = set(config.getoption("clause") or ())
    if wanted:
        drop += [it for it in items if not wanted & {c for m in it.iter_markers("clause") for c in m.args}]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [it for it in items if it not in drop]


def _name_matches(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


@pytest.fixture
def case(request: pytest.FixtureRequest) -> casemod.Case:
    fw, c = request.param
    request.node.stash[_FW] = fw
    assert isinstance(c, casemod.Case)
    return c


_FW = pytest.StashKey[str]()


def _slug(nodeid: str) -> str:
    name = nodeid.split("::")[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:120]


@dataclass(frozen=True)
class CaseRun:
    """One boot of a case: what the probe(s) said, and the outcome in the catalogue's words."""

    result: BootResult
    nonce: str
    fallback_nonce: str | None
    observed: str  # boots | recovers | falls-through | no-probe | wrong-probe
    gpt_changed: tuple[str, ...]
    disks: tuple[Disk, ...]

    def describe(self) -> str:
        changed = f"; GPT rewritten: {', '.join(self.gpt_changed)}" if self.gpt_changed else ""
        return f"observed {self.observed}{changed}"


@pytest.fixture
def boot_case(request: pytest.FixtureRequest, case: casemod.Case, tmp_path: Path) -> Callable[..., CaseRun]:
    """Build the case's disk(s) with fresh nonces, boot them, and return what happened (:class:`CaseRun`).

    A case that may fall through gets a second, valid disk after its own (the fallback, with its own
    nonce), so a firmware that skips the bad disk is seen reaching it at once. The console transcript
    lands in the run's report folder; images and the vars copy live in the test's private tmp_path.
    """
    ctx = _ctx(request.config)
    fwname = request.node.stash[_FW]
    fw = ctx.firmware(fwname, case.arch)
    case_dir = ctx.run_dir / "cases" / _slug(request.node.nodeid)

    def run(
        nonce: str | None = None,
        *,
        mode: str = "boot",
        facts: Collection[str] = (),
        gic_version: int | None = None,
        label: str = "",
    ) -> CaseRun:
        """One boot; `mode`/`facts` build the probe with `build_probe(..., mode=, facts=)`, `gic_version` boots
        a VM with that GIC (the backend must be able to set it), `label` names a sub-folder for the transcript
        when a test boots more than once."""
        nonce = nonce or casemod.new_nonce()
        fb_nonce = casemod.new_nonce() if case.needs_fallback else None
        probe = build_probe(case.arch, nonce, mode=mode, facts=facts) if (mode, tuple(facts)) != ("boot", ()) else None
        backend = ctx.backend
        if gic_version is not None:
            backend = backend_for(gic_variant(ctx.entry, case.arch, gic_version))
        work = tmp_path / label if label else tmp_path
        vars_copy: Path | None = work / "vars.fd"
        try:
            disks = casemod.write_disks(case, nonce, work / "disks", fb_nonce, probe)
            vars_copy = copy_vars_template(fw, work / "vars.fd")
        except OSError as e:
            shutil.rmtree(work / "disks", ignore_errors=True)
            (work / "vars.fd").unlink(missing_ok=True)
            pytest.fail(
                f"cannot prepare the case in {tmp_path}: {e.strerror} ({e.filename}); "
                f"free space there or choose another --basetemp",
                pytrace=False,
            )
        tag = f"{ctx.run_dir}/{case_dir.name}"
        expect_nonce = None if fb_nonce else nonce  # with a fallback disk, either probe may legitimately run
        out_dir = case_dir / label if label else case_dir
        result = boot(backend, case.arch, disks, fw, expect_nonce, out_dir, ctx.timeout, vars_path=vars_copy, tag=tag)
        seen = tuple(dict.fromkeys(line.nonce for line in result.lines))
        changed = casemod.gpt_changes(casemod.build_image(case, nonce, probe), disks[0].path, case.sector_size)
        observed = casemod.observed_outcome(nonce, fb_nonce, seen, changed)
        request.node.user_properties.append(
            (
                "vmconform",
                {
                    "case": case.name,
                    "arch": case.arch,
                    "layout": case.layout,
                    "defect": case.defect,
                    "expect": case.expect,
                    "observed": observed,
                    "gpt_changed": list(changed),
                    "clauses": list(case.clauses),
                    "hypervisor": ctx.entry.name,
                    "firmware": fwname,
                    "firmware_code": str(fw.code),
                    "firmware_source": fw.source,
                    "nonce": nonce,
                    "fallback_nonce": fb_nonce,
                    "stop": result.stop.reason,
                    "stop_detail": result.stop.detail,
                    "exit_status": result.exit_status,
                    "boot_seconds": round(result.elapsed, 3),
                    "probe": [ln.raw for ln in result.lines],
                    "transcript": str(result.transcript),
                    **({"probe_mode": mode} if mode != "boot" else {}),
                    **({"probe_facts": list(facts)} if facts else {}),
                    **({"gic_version": gic_version} if gic_version is not None else {}),
                },
            )
        )
        return CaseRun(result, nonce, fb_nonce, observed, changed, disks)

    return run


class Judge:
    """Turns a test's boot results into clause verdicts: records them for the reports, fails the test on a
    MUST-level failure, warns on a SHOULD-level one."""

    def __init__(self, node: pytest.Item, ctx: SuiteContext, case: casemod.Case, fw: Firmware) -> None:
        self.node, self.ctx, self.case, self.firmware = node, ctx, case, fw
        self.spec = ctx.spec

    def record(self, verdicts: list[vdmod.Verdict], result: BootResult | None = None) -> None:
        declared = self.ctx.entry.not_supported
        verdicts = [
            vdmod.Verdict(v.clause, vdmod.NOT_SUPPORTED, f"declared: {declared[v.clause]} ({v.evidence})", v.case)
            if v.clause in declared and v.status != vdmod.PASS
            else v
            for v in verdicts
        ]
        self.node.user_properties.append(("vmconform_verdicts", [v.as_dict() for v in verdicts]))
        vdmod.enforce(verdicts, self.spec, result)

    @property
    def label(self) -> str:
        """How verdict evidence names this case: the test's parameter ID (hypervisor, firmware, case)."""
        callspec = getattr(self.node, "callspec", None)
        return callspec.id if callspec is not None else self.case.name

    def removable_media_boot(self, run: CaseRun) -> None:
        """A conforming layout: it must boot, and the probe's report evidences the firmware clauses."""
        self.record(
            vdmod.removable_media_boot(run.result, self.case.arch, self.spec, self.firmware.mapping, self.label),
            run.result,
        )
        if run.observed not in (casemod.BOOTS, casemod.RECOVERS):
            raise run.result.fail(f"{self.case.name} must boot from its own disk; {run.describe()}")

    def malformed_image(self, run: CaseRun) -> None:
        """A malformed image: the outcome must be one UEFI allows (boots / recovers / falls through), reached
        without hanging; the case's clauses are judged on that."""
        self.record(vdmod.malformed_image(run.result, self.case, run.observed, run.gpt_changed, self.label), run.result)


    # --- firmware, hardware description, platform (suite/test_firmware.py, test_hwdesc.py, test_platform.py)

    @property
    def shape(self) -> vfmod.VmShape:
        """The vCPUs and RAM the hypervisor entry gives this arch's VM."""
        s = self.ctx.entry.arches[self.case.arch]
        return vfmod.VmShape(vfmod.configured_cpus([*self.ctx.entry.extra_args, *s.extra_args]),
                             vfmod.memory_bytes(s.memory))  # fmt: skip

    def _facts(self, run: CaseRun) -> ProbeFacts:
        if not any(line.key == "BOOT" for line in run.result.lines):
            status, evidence = vdmod.boot_failure(run.result)
            raise run.result.fail(f"the probe did not run, so nothing could be judged ({status}): {evidence}")
        return ProbeFacts.from_lines(run.result.lines)

    def rtc(self, run: CaseRun) -> None:
        """FW-9 from the TIME line."""
        self.record(vfmod.rtc(self._facts(run), self.spec, self.label), run.result)

    def hardware_description(self, run: CaseRun) -> None:
        """HW-1, HW-2 / V2-5, PLAT-1, PLAT-3, PLAT-4, V2-3, V2-6 from the TABLES line and the DUMPs."""
        facts = self._facts(run)
        self.record(vfmod.hardware_description(facts, self.shape, self.spec, self.label), run.result)

    def counter(self, run: CaseRun) -> None:
        """PLAT-5 (V2-8) from the CPU line."""
        self.record(vfmod.counter(self._facts(run), self.spec, self.label), run.result)

    def exception_level(self, run: CaseRun) -> None:
        """V2-2 from the CPU line."""
        self.record(vfmod.exception_level(self._facts(run), self.case.arch, self.spec, self.label), run.result)

    def gic_versions(self, runs: dict[int, CaseRun | str]) -> None:
        """V2-7 from one boot per GIC version (a string: why that version could not be booted)."""
        seen: dict[int, tuple[int | None, str]] = {}
        for version, run in runs.items():
            if isinstance(run, str):
                seen[version] = (None, run)
            elif not any(line.key == "BOOT" for line in run.result.lines):
                seen[version] = (None, "did not boot: " + vdmod.boot_failure(run.result)[1])
            else:
                seen[version] = vfmod.gic_seen(ProbeFacts.from_lines(run.result.lines))
        wanted = self.ctx.entry.arches[self.case.arch].gic_versions
        self.record(vfmod.gic_versions(seen, wanted, self.spec, self.label))

    def nvram_preflight(self, clauses: tuple[str, ...], workdir: Path, separate_store: bool = True) -> bool:
        """The checks before an NVRAM test, each with its own message; False (verdicts recorded) when one fails.

        The vars copy is writable, CODE and VARS belong together, the entry does not make the store ephemeral
        (snapshot), and, with `separate_store`, the firmware has a separate store at all (a -bios boot ROM has
        none; FW-6 boots it anyway, to see where its variables go)."""
        fw, entry = self.firmware, self.ctx.entry
        writable: bool | None = None
        copy = workdir / "preflight-vars.fd"
        if fw.vars_template is not None:
            with _prepared(copy):
                copy_vars_template(fw, copy)
                writable = os.access(copy, os.W_OK) and not copy.samefile(fw.vars_template)
            copy.unlink()
        pair = None
        try:
            fwmod.preflight(fw)  # the code is for this arch; CODE and VARS of one build
        except fwmod.FirmwareError as e:
            pair = str(e)
        args = [*entry.extra_args, *entry.arches[self.case.arch].extra_args]
        problems = vfmod.nvram_preflight(fw.mapping if separate_store else "flash", args, writable, pair, fw.name)
        if not problems:
            return True
        verdicts = []
        for clause in clauses:
            status, why = problems[0]
            if clause == "FW-6":  # ephemeral or absent stores hide where variables would be kept
                status = vdmod.ERROR
            verdicts.append(vdmod.Verdict(clause, status, "; ".join(w for _, w in problems), self.label))
        self.record(vfmod.filter_spec(verdicts, self.spec))
        return False

    def instance_store(self, run: StoreRun) -> None:
        """FW-6: the image is byte-identical after the VM set a variable, which is in the instance's store."""
        verdicts = vfmod.instance_store(run.before, run.after, run.set_status, run.records, run.vars_name,
                                        run.image_store, self.spec, self.label)  # fmt: skip
        self.record(verdicts, run.result)

    def nvram_flow(self, mode: str, outcome: NvramOutcome) -> None:
        """FW-4/FW-5 from one NVRAM flow."""
        transcript = str(outcome.boots[-1].transcript) if outcome.boots else ""
        verdicts = vfmod.nvram_flow(mode, outcome.passed, outcome.message, transcript, self.spec, self.label)
        self.record(verdicts, outcome.boots[-1] if outcome.boots else None)


@pytest.fixture
def judge(request: pytest.FixtureRequest, case: casemod.Case) -> Judge:
    """Clause verdicts for this test (see :class:`Judge`)."""
    ctx = _ctx(request.config)
    return Judge(request.node, ctx, case, ctx.firmware(request.node.stash[_FW], case.arch))


@dataclass(frozen=True)
class StoreRun:
    """FW-6: the case's image with an NVRAM (warm) probe, booted once on a fresh vars copy."""

    result: BootResult
    before: str  # sha256 of the disk image before the boot
    after: str
    set_status: str | None  # SetVariable(NV|BS|RT) status name, None when the probe never got there
    records: int | None  # records of the variable in the instance's vars file (None: there is none)
    vars_name: str
    image_store: str  # what `vmconform check` finds stored in the image afterwards ("" when nothing)


class NvramRuns:
    """Boots for the NVRAM tests: the flows of `vmconform.nvram` and the FW-6 image check; transcripts go to the
    case's report folder, disks and vars copies stay in the test's tmp_path."""

    def __init__(self, request: pytest.FixtureRequest, case: casemod.Case, tmp_path: Path) -> None:
        self.request, self.case, self.tmp_path = request, case, tmp_path
        self.ctx = _ctx(request.config)
        self.fwname = request.node.stash[_FW]
        self.firmware = self.ctx.firmware(self.fwname, case.arch)
        self.case_dir = self.ctx.run_dir / "cases" / _slug(request.node.nodeid)

    def _properties(self, nonce: str, boots: tuple[BootResult, ...], extra: dict[str, Any]) -> None:
        last = boots[-1] if boots else None
        self.request.node.user_properties.append(
            (
                "vmconform",
                {
                    "case": self.case.name, "arch": self.case.arch, "layout": self.case.layout,
                    "defect": self.case.defect, "expect": self.case.expect, "observed": "", "gpt_changed": [],
                    "clauses": [], "hypervisor": self.ctx.entry.name, "firmware": self.fwname,
                    "firmware_code": str(self.firmware.code), "firmware_source": self.firmware.source,
                    "nonce": nonce, "fallback_nonce": None,
                    "stop": last.stop.reason if last else "", "stop_detail": last.stop.detail if last else "",
                    "exit_status": last.exit_status if last else None,
                    "boot_seconds": round(sum(b.elapsed for b in boots), 3),
                    "probe": [ln.raw for b in boots for ln in (*b.lines, *b.foreign)],
                    "transcript": str(last.transcript) if last else "",
                    **extra,
                },
            )
        )  # fmt: skip

    def flow(self, mode: str) -> NvramOutcome:
        """One NVRAM flow (`nvram.FLOWS`); its consoles are copied to the report folder."""
        work = self.tmp_path / "flow"
        with _prepared(work):
            outcome = nvram.run_flow(
                self.ctx.backend, self.case.arch, self.firmware, mode, work, self.ctx.timeout,
                tag=f"{self.ctx.run_dir}/{self.case_dir.name}",
            )  # fmt: skip
        boots = []
        for b in outcome.boots:
            dest = self.case_dir / b.workdir.name
            dest.mkdir(parents=True, exist_ok=True)
            for f in ("console.log", "console.raw", "command.sh"):
                if (b.workdir / f).exists():
                    shutil.copyfile(b.workdir / f, dest / f)
            boots.append(dataclasses.replace(b, transcript=dest / b.transcript.name))
        outcome = dataclasses.replace(outcome, boots=tuple(boots))
        self._properties(outcome.nonce, outcome.boots, {"nvram_flow": mode, "nvram_passed": outcome.passed})
        return outcome

    def store(self) -> StoreRun:
        """Boot the case's own image with a probe that sets an NV variable (warm flow) and see where it went."""
        arch, fw = self.case.arch, self.firmware
        nonce = casemod.new_nonce()
        work = self.tmp_path / "store"
        disk = work / f"{self.case.name}.img"
        with _prepared(work):
            work.mkdir(parents=True, exist_ok=True)
            casemod.build_image(self.case, nonce, build_probe(arch, nonce, mode="warm")).save(disk)
            vars_copy = copy_vars_template(fw, work / "vars.fd")
        before = file_sha256(disk)
        phase1: list[str] = []

        def decide(line: ProbeLine) -> str | None:
            if line.nonce != nonce:
                return f"a probe with nonce {line.nonce} ran, but this test's nonce is {nonce} (stale image?)"
            if line.key == "NVRAM" and line.args[:1] == ("phase1",):
                phase1.append(line.raw)
                if len(phase1) > 1:
                    return "phase 1 seen twice: the non-volatile variable did not survive the warm reset"
            return "the probe reported END" if line.key == "END" else None

        disks = (Disk(disk, logical_block_size=self.case.sector_size),)
        result = boot(self.ctx.backend, arch, disks, fw, nonce, self.case_dir, self.ctx.timeout, vars_path=vars_copy,
                      tag=f"{self.ctx.run_dir}/{self.case_dir.name}", decide=decide)  # fmt: skip
        after = file_sha256(disk)
        sets = next((ln for ln in result.lines if ln.key == "NVRAM" and ln.args[:1] == ("set",)), None)
        set_status = EfiStatus.parse(sets.fields["nv"]).name if sets is not None and "nv" in sets.fields else None
        records = None
        if vars_copy is not None:
            name = f"{NV_VARIABLE_PREFIX}{nonce}"
            records = len(nvram.find_variable_records(vars_copy.read_bytes(), name, VENDOR_GUID))
        image_store = ""
        if after != before:
            try:
                rows = check_image(disk, arch, self.case.sector_size).rows
                image_store = "; ".join(r.evidence for r in rows if r.id == "image.vars_store" and r.verdict == "fail")
            except DiskError as e:
                image_store = f"the image no longer reads as a disk: {e}"
        self._properties(nonce, (result,), {"disk_sha256_before": before, "disk_sha256_after": after})
        return StoreRun(result, before, after, set_status, records, "vars file" if vars_copy else "", image_store)


@contextlib.contextmanager
def _prepared(path: Path) -> Iterator[None]:
    """Files a test writes before (or while) booting: on OSError (a full disk) remove `path` and fail in one line."""
    try:
        yield
    except OSError as e:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        pytest.fail(
            f"cannot prepare the case in {path.parent}: {e.strerror} ({e.filename}); free space there or choose "
            f"another --basetemp",
            pytrace=False,
        )


@pytest.fixture
def nvram_runs(request: pytest.FixtureRequest, case: casemod.Case, tmp_path: Path) -> NvramRuns:
    """Boots for the NVRAM tests (see :class:`NvramRuns`)."""
    return NvramRuns(request, case, tmp_path)


def _first_line(rep: pytest.TestReport) -> str:
    text = str(rep.longrepr) if rep.longrepr is not None else ""
    if hasattr(rep.longrepr, "reprcrash") and rep.longrepr.reprcrash is not None:  # type: ignore[union-attr]
        text = rep.longrepr.reprcrash.message  # type: ignore[union-attr]
    return text.strip().splitlines()[0] if text.strip() else ""


class SuiteReporter:
    """Controller-side hooks (xdist forwards worker reports here): results.json and the summary."""

    def __init__(self, ctx: SuiteContext) -> None:
        self.ctx = ctx
        self.reports: list[pytest.TestReport] = []
        self.rows: list[dict[str, Any]] = []
        self.clauses: list[dict[str, Any]] = []
        self.changed_files: list[str] = []
        self.orphans: list[str] = []
        self.verdict = ("", "")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # the call, and any other phase that did not pass (a crashed xdist worker reports when="???")
        if report.when == "call" or (report.when != "teardown" and report.outcome != "passed"):
            self.reports.append(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        ctx = self.ctx
        all_verdicts: list[dict[str, Any]] = []
        for rep in self.reports:
            for key, value in rep.user_properties:
                if key == "vmconform_verdicts":
                    all_verdicts.extend(value)  # type: ignore[arg-type]
        self.clauses = vdmod.roll_up(all_verdicts, ctx.spec)
        for rep in self.reports:
            info: dict[str, Any] = next((v for k, v in rep.user_properties if k == "vmconform"), {})  # type: ignore[misc]
            self.rows.append(
                {
                    "test": rep.nodeid,
                    "outcome": rep.outcome,
                    "when": rep.when,
                    "duration": round(rep.duration, 3),
                    "message": _first_line(rep) if rep.failed else "",
                    **info,
                }
            )
        doc = {
            "hypervisor": ctx.entry.name,
            "backend": ctx.entry.backend,
            "accel": ctx.entry.accel,
            "hypervisors_file": str(ctx.hvfile.path),
            "arches": ctx.arches,
            "firmwares": {
                f"{name}/{arch}": {
                    **{k: str(p) for k, p in fw.files().items()},
                    "mapping": fw.mapping,
                    "source": fw.source,
                    "sha256": ctx.fw_sha256.get((name, arch), {}),
                }
                for (name, arch), fw in ctx.firmwares.items()
            },
            "exit_status": int(exitstatus),
            "spec": ctx.spec,
            "clauses": self.clauses,
            "results": self.rows,
        }
        self.changed_files = [
            f"{path} ({name}/{arch} {what})"
            for (name, arch), fw in ctx.firmwares.items()
            for what, path in fw.files().items()
            if ctx.fw_sha256.get((name, arch), {}).get(what) not in (None, file_sha256(path))
        ]
        doc["vendor_files_changed"] = self.changed_files
        sweep = getattr(ctx.backend, "sweep", None)  # VMs a backend keeps outside our processes (libvirt domains)
        try:
            domains = sweep(str(ctx.run_dir)) if sweep is not None else []
        except (OSError, cfgmod.ConfigError) as e:
            domains = []
            self.orphans.append(f"could not sweep {ctx.entry.backend} for leftover VMs: {e}")
        self.orphans += [f"{ctx.entry.backend} domain {d.name} ({d.tag})" for d in domains]
        self.orphans += [f"pid {o.pid} ({o.tag}): {o.command[:200]}" for o in reaper.reap(str(ctx.run_dir))]
        doc["orphan_vms_killed"] = self.orphans
        if self.changed_files or self.orphans:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        (ctx.run_dir / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
        rpmod.write_html(doc, ctx.run_dir)
        self.verdict = rpmod.overall(doc)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        ctx, tr = self.ctx, terminalreporter
        tr.section("vmconform")
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
        fws = ", ".join(f"{n}/{a}: {fw.code}" for (n, a), fw in ctx.firmwares.items())
        tr.write_line(f"hypervisor {ctx.entry.name} ({ctx.entry.backend}, accel {ctx.entry.accel}); firmware {fws}")
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no cases ran"
        tr.write_line(f"cases: {summary}")
        for row in self.rows:
            if row["outcome"] != "passed":
                tr.write_line(
                    f"  {row['outcome'].upper()} {row['test'].split('::')[-1]}: {vdmod.short(row['message'], 150)}"
                )
        tr.write_line(f"clauses (spec {ctx.spec}):")
        for level in clmod.LEVELS:
            rows = [r for r in self.clauses if r["level"] == level]
            by_status: dict[str, int] = {}
            for r in rows:
                by_status[r["status"]] = by_status.get(r["status"], 0) + 1
            text = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none"
            tr.write_line(f"  {level:<18} {text}")
        for r in self.clauses:
            if r["status"] in (vdmod.FAIL, vdmod.ERROR, vdmod.NOT_SUPPORTED):
                why = vdmod.short(r["evidence"][0], 150) if r["evidence"] else ""
                n = r["deciding_cases"]
                more = f" (and {n - 1} more case{'s' if n > 2 else ''})" if n > 1 else ""
                tr.write_line(f"  {r['status'].upper():<13} {r['clause']} ({r['level']}): {why}{more}")
        for orphan in self.orphans:
            tr.write_line(f"  ERROR a VM outlived its case and was killed at session end: {orphan}", red=True)
        for changed in self.changed_files:
            tr.write_line(f"  ERROR a vendor firmware file changed during the run: {changed}", red=True)
        tr.write_line(f"verdict: {self.verdict[0].upper()} ({self.verdict[1]})", bold=True)
        tr.write_line(f"reports: {ctx.run_dir}/ (report.html, junit.xml, results.json, cases/*/console.log)")
