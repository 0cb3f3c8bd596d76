"""vmconform compare on crafted record pairs (a regression, a fix, a flake, a new and a removed case, a changed
firmware and hypervisor), with the exact output and exit status; compare of two firmwares of one run; merge of
shards and the history page."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from compare_pairs import IDENT_NEW, IDENT_OLD, only, pair, write
from run_records import validate

from vmconform.records import load_run

HEAD = """\
A: a (hypervisor qemu: QEMU emulator version 7.2.22; firmware edk2-2022.11; spec 2.0; 2026-12-04T10:00:00Z)
B: b (hypervisor qemu: QEMU emulator version 10.0.2; firmware edk2-2026.08; spec 2.0; 2026-12-04T10:00:00Z)
set-up:
  hypervisor version: QEMU emulator version 7.2.22 -> QEMU emulator version 10.0.2
  firmware aarch64: edk2-2022.11 -> edk2-2026.08
  firmware aarch64 identity: EDK II, firmware revision 0x00010000, UEFI revision 0x00020046 -> Debian distribution \
of EDK II, firmware revision 0x00010000, UEFI revision 0x00020046
  firmware aarch64 code sha256: aaaaaaaaaaaaaaaa -> bbbbbbbbbbbbbbbb
"""


def vmconform(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmconform.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def pair_dirs(tmp_path: Path, *cases: str, clauses: bool = True) -> None:
    a, b = pair()
    if cases:
        a, b = only(a, *cases), only(b, *cases)
    if not clauses:
        b = replace(b, clauses=a.clauses)
    write(tmp_path / "a", a)
    write(tmp_path / "b", b)


def test_every_kind_of_change_exact_text_and_exit_1(tmp_path):
    pair_dirs(tmp_path)
    p = vmconform(tmp_path, "compare", "a", "b")
    assert p.returncode == 1, p.stderr
    assert p.stderr == ""
    assert (
        p.stdout
        == HEAD
        + """\
cases: 4 paired; 1 regressed, 1 fixed, 1 flaky, 1 new, 1 removed, 0 otherwise changed
  REGRESSION test_must_boot[aarch64-esp-second]: passed -> failed (aarch64-esp-second must boot from its own disk; \
observed no-probe)
  FLAKE      test_must_boot[aarch64-esp-last]: passed -> failed (B: boots, no-probe, boots)
  FIX        test_malformed_image[aarch64-gpt-primary-crc-ro]: failed -> passed
  NEW        test_must_boot[aarch64-4kn]: passed
  REMOVED    test_must_boot[aarch64-esp-among]: passed
clauses (spec 2.0): 1 regressed, 1 fixed, 0 flaky, 0 otherwise changed
  REGRESSION FW-1 (MUST): pass -> fail (c: FW-1 fail)
  FIX        FW-7 (MUST): fail -> pass
verdict: REGRESSION (1 case, 1 clause)
"""
    )


def test_a_fix_alone_is_exit_0(tmp_path):
    pair_dirs(tmp_path, "aarch64-reference", "aarch64-gpt-primary-crc-ro", clauses=False)
    p = vmconform(tmp_path, "compare", "a", "b")
    assert p.returncode == 0, p.stderr
    assert (
        p.stdout
        == HEAD
        + """\
cases: 2 paired; 0 regressed, 1 fixed, 0 flaky, 0 new, 0 removed, 0 otherwise changed
  FIX        test_malformed_image[aarch64-gpt-primary-crc-ro]: failed -> passed
clauses (spec 2.0): 0 regressed, 0 fixed, 0 flaky, 0 otherwise changed
verdict: no regression
"""
    )


def test_a_flake_is_listed_apart_and_is_no_regression(tmp_path):
    pair_dirs(tmp_path, "aarch64-esp-last", clauses=False)
    p = vmconform(tmp_path, "compare", "a", "b")
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("""\
cases: 1 paired; 0 regressed, 0 fixed, 1 flaky, 0 new, 0 removed, 0 otherwise changed
  FLAKE      test_must_boot[aarch64-esp-last]: passed -> failed (B: boots, no-probe, boots)
clauses (spec 2.0): 0 regressed, 0 fixed, 0 flaky, 0 otherwise changed
verdict: no regression
""")


def test_a_new_case_and_a_changed_firmware_alone(tmp_path):
    pair_dirs(tmp_path, "aarch64-reference", "aarch64-4kn", clauses=False)
    p = vmconform(tmp_path, "compare", "a", "b")
    assert p.returncode == 0, p.stderr
    assert (
        p.stdout
        == HEAD
        + """\
cases: 1 paired; 0 regressed, 0 fixed, 0 flaky, 1 new, 0 removed, 0 otherwise changed
  NEW        test_must_boot[aarch64-4kn]: passed
clauses (spec 2.0): 0 regressed, 0 fixed, 0 flaky, 0 otherwise changed
verdict: no regression
"""
    )


def test_json_and_html(tmp_path):
    pair_dirs(tmp_path)
    p = vmconform(tmp_path, "compare", "a", "b", "--json")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["regression"] is True and doc["paired"] == 4
    assert doc["counts"] == {"regression": 1, "fix": 1, "flake": 1, "new": 1, "removed": 1, "changed": 0}
    kinds = {(c["kind"], c["case"]) for c in doc["cases"]}
    assert ("flake", "aarch64-esp-last") in kinds and ("new", "aarch64-4kn") in kinds
    assert {"what": "firmware aarch64 identity", "a": IDENT_OLD, "b": IDENT_NEW} in doc["setup"]
    p = vmconform(tmp_path, "compare", "a", "b", "--html", "cmp.html")
    assert p.returncode == 1 and p.stdout.endswith("verdict: REGRESSION (1 case, 1 clause)\n")
    page = (tmp_path / "cmp.html").read_text()
    assert "<h1>vmconform compare: REGRESSION</h1>" in page and "aarch64-esp-last" in page


def test_two_firmwares_of_one_run(tmp_path):
    a, b = pair()
    both = replace(a, firmwares={**a.firmwares, **b.firmwares}, results=a.results + b.results)
    write(tmp_path / "run", both)
    p = vmconform(tmp_path, "compare", "run", "--firmware", "edk2-2022.11", "--firmware", "edk2-2026.08")
    assert p.returncode == 1, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == ("A: run firmware edk2-2022.11 (hypervisor qemu: QEMU emulator version 7.2.22; firmware "
                        "edk2-2022.11; spec 2.0; 2026-12-04T10:00:00Z)")  # fmt: skip
    assert "  firmware aarch64: edk2-2022.11 -> edk2-2026.08" in lines
    # the clauses are rolled up again from each firmware's own cases: FW-1 fails only on edk2-2026.08
    assert "  REGRESSION FW-1 (MUST): pass -> fail (qemu-edk2-2026.08-aarch64-esp-second: FW-1 fail)" in lines
    assert "  FIX        FW-7 (MUST): fail -> pass" in lines
    p = vmconform(tmp_path, "compare", "run", "--firmware", "edk2-2022.11", "--firmware", "nope")
    assert p.returncode == 2
    assert p.stderr == (
        "vmconform: error: run firmware nope: no firmware 'nope' in this run; it has: edk2-2022.11, edk2-2026.08\n"
    )


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    pair_dirs(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "results.json").write_text("{")
    for args, tail in (
        (("a", "nope"), "not found; give a run folder under reports/ or its results.json"),
        (("a", "junk"), "not a readable results.json (JSONDecodeError: Expecting property name enclosed in double "
                        "quotes: line 1 column 2 (char 1))"),
        (("a",), "one run: give two firmwares of it (--firmware A --firmware B); or give two runs"),
        (("a", "b", "a"), "give two runs (A B), or one run with --firmware A --firmware B; got 3"),
        (("a", "b", "--firmware", "x"), "--firmware: give it twice (A's and B's), or not at all"),
    ):  # fmt: skip
        p = vmconform(tmp_path, "compare", *args)
        assert p.returncode == 2 and p.stdout == "", args
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("vmconform: error: "), p.stderr
        assert p.stderr.rstrip().endswith(tail), p.stderr


def test_merge_shards_and_refuse_a_mix(tmp_path):
    a, b = pair()
    write(tmp_path / "s1", only(a, "aarch64-reference", "aarch64-esp-second"))
    write(tmp_path / "s2", only(a, "aarch64-gpt-primary-crc-ro"))
    (tmp_path / "s2" / "cases" / "t").mkdir(parents=True)
    (tmp_path / "s2" / "cases" / "t" / "console.log").write_text("console\n")
    p = vmconform(tmp_path, "report", "merge", "s1", "s2", "-o", "merged")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "DOES NOT CONFORM: MUST clauses failing: FW-7\n"
    doc = json.loads((tmp_path / "merged" / "results.json").read_text())
    validate(doc)
    merged = load_run(tmp_path / "merged")
    assert [r.case for r in merged.results] == ["aarch64-reference", "aarch64-esp-second", "aarch64-gpt-primary-crc-ro"]
    assert {c.clause: c.status for c in merged.clauses}["FW-7"] == "fail"  # rolled up again over every case
    assert merged.notes[-1] == "merged from 2 runs: s1, s2"
    assert (tmp_path / "merged" / "cases" / "t" / "console.log").read_text() == "console\n"
    assert (tmp_path / "merged" / "report.html").exists()
    write(tmp_path / "other", b)
    p = vmconform(tmp_path, "report", "merge", "s1", "other", "-o", "m2")
    assert p.returncode == 2 and not (tmp_path / "m2").exists()
    assert p.stderr == (
        "vmconform: error: other: hypervisor version 'QEMU emulator version 10.0.2', but s1 has 'QEMU emulator "
        "version 7.2.22'; merge shards of one hypervisor and spec version (or pass --allow-mixed)\n"
    )
    write(tmp_path / "spec1", replace(only(a, "aarch64-4kn"), spec="1.0"))
    p = vmconform(tmp_path, "report", "merge", "s1", "spec1", "-o", "m3")
    assert p.returncode == 2 and "spec '1.0', but s1 has '2.0'" in p.stderr
    p = vmconform(tmp_path, "report", "merge", "s1", "other", "-o", "m4", "--allow-mixed")
    assert p.returncode == 0, p.stderr
    assert "the runs differ in hypervisor_version (merged with --allow-mixed)" in load_run(tmp_path / "m4").notes


def test_history_a_row_per_clause_or_case_a_column_per_run(tmp_path):
    a, b = pair()
    write(tmp_path / "a", a)
    write(tmp_path / "b", b)
    p = vmconform(tmp_path, "history", "a", "b", "-o", "h.html")
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "h.html").read_text()
    assert page.count("<th><div>2026-12-04T10:00:00Z</div>") == 2
    assert "<div>edk2-2022.11</div>" in page and "QEMU emulator version 10.0.2" in page
    row = page.split("<th class=row>FW-1 (MUST)</th>")[1].split("</tr>")[0]
    assert row.count("<td") == 2 and 'background:#2da44e" title="c: FW-1 fail">fail' not in row
    assert ">pass</td>" in row and ">fail</td>" in row
    p = vmconform(tmp_path, "history", "a", "b", "--by-case", "-o", "c.html")
    page = (tmp_path / "c.html").read_text()
    row = page.split("<th class=row>test_must_boot[aarch64-esp-last]</th>")[1].split("</tr>")[0]
    assert ">passed</td>" in row and ">flaky</td>" in row
    row = page.split("<th class=row>test_must_boot[aarch64-4kn]</th>")[1].split("</tr>")[0]
    assert row.startswith('<td class="none"')


def test_a_key_twice_on_one_side_is_a_note(tmp_path):
    a, b = pair()
    a = only(a, "aarch64-reference")
    write(tmp_path / "a", replace(a, results=a.results * 2))
    write(tmp_path / "b", replace(only(b, "aarch64-reference"), clauses=a.clauses))
    p = vmconform(tmp_path, "compare", "a", "b")
    assert p.returncode == 0, p.stdout
    assert p.stdout.splitlines()[2] == "note: a: 1 case record(s) repeat another's key; the last one is compared"
    assert "cases: 1 paired; 0 regressed" in p.stdout
