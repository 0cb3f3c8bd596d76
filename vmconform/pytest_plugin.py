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

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vmconform import cases as casemod
from vmconform import clauses as clmod
from vmconform import config as cfgmod
from vmconform import reaper
from vmconform import report as rpmod
from vmconform import verdicts as vdmod
from vmconform.firmware import Firmware, copy_vars_template, file_sha256
from vmconform.hypervisors import Backend, Disk, backend_for
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

    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        run_dir = Path(workerinput[RUN_DIR_KEY])
    else:
        run_dir = _new_run_dir(Path(config.getoption("reports_dir")), entry.name)
        if not config.option.xmlpath:
            config.option.xmlpath = str(run_dir / "junit.xml")
    timeout = config.getoption("boot_timeout") or entry.timeout
    spec = config.getoption("spec")
    ctx = SuiteContext(hvfile, entry, arches, firmwares, fwnames, backend_for(entry), run_dir, timeout, spec)
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
                    marks=[pytest.mark.clause(*case.clauses), pytest.mark.boot],
                )
            )
    metafunc.parametrize("case", params, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A suite test that no selected case applies to (an empty parameter set) is deselected, not skipped."""
    if CTX not in config.stash:
        return
    empty = [it for it in items if it.name.endswith("[NOTSET]") and it.get_closest_marker("cases") is not None]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [it for it in items if it not in empty]


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

    def run(nonce: str | None = None) -> CaseRun:
        nonce = nonce or casemod.new_nonce()
        fb_nonce = casemod.new_nonce() if case.needs_fallback else None
        vars_copy: Path | None = tmp_path / "vars.fd"
        try:
            disks = casemod.write_disks(case, nonce, tmp_path / "disks", fallback_nonce=fb_nonce)
            vars_copy = copy_vars_template(fw, tmp_path / "vars.fd")
        except OSError as e:
            shutil.rmtree(tmp_path / "disks", ignore_errors=True)
            (tmp_path / "vars.fd").unlink(missing_ok=True)
            pytest.fail(
                f"cannot prepare the case in {tmp_path}: {e.strerror} ({e.filename}); "
                f"free space there or choose another --basetemp",
                pytrace=False,
            )
        tag = f"{ctx.run_dir}/{case_dir.name}"
        expect_nonce = None if fb_nonce else nonce  # with a fallback disk, either probe may legitimately run
        result = boot(
            ctx.backend, case.arch, disks, fw, expect_nonce, case_dir, ctx.timeout, vars_path=vars_copy, tag=tag
        )
        seen = tuple(dict.fromkeys(line.nonce for line in result.lines))
        changed = casemod.gpt_changes(casemod.build_image(case, nonce), disks[0].path, case.sector_size)
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


@pytest.fixture
def judge(request: pytest.FixtureRequest, case: casemod.Case) -> Judge:
    """Clause verdicts for this test (see :class:`Judge`)."""
    ctx = _ctx(request.config)
    return Judge(request.node, ctx, case, ctx.firmware(request.node.stash[_FW], case.arch))


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
        self.orphans = [f"pid {o.pid} ({o.tag}): {o.command[:200]}" for o in reaper.reap(str(ctx.run_dir))]
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
