"""report.html in a real browser: headless Chromium (Debian's ``chromium``, installed by ``scripts/setup.sh test``)
opens it with no console message, takes a screenshot, and the numbers the page shows equal those in results.json.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import replace
from pathlib import Path

from compare_pairs import pair, write
from run_records import validate

from vmconform import report
from vmconform.records import load_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is missing: scripts/setup.sh test installs it (apt-get install chromium)"
    argv = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr", "--v=0", "--window-size=1280,1600", *args, page.as_uri()]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_the_console_check_sees_a_page_error(tmp_path):
    """The check below is real: a page that logs and throws is seen doing it."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html><body><script>console.error("x"); nosuchfn();</script></body></html>')
    lines = console_lines(chromium(tmp_path, bad, "--dump-dom").stderr)
    assert len(lines) == 2 and "nosuchfn is not defined" in lines[1]


def test_report_html_in_headless_chromium(tmp_path):
    a, b = pair()
    both = replace(a, firmwares={**a.firmwares, **b.firmwares}, results=a.results + b.results,
                   notes=("firmware edk2-2026.08 has no arm build: its arm cases are not collected",))  # fmt: skip
    run_dir = write(tmp_path / "run", both)
    for r in both.results:
        (run_dir / r.transcript).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / r.transcript).write_text("console\n")
    report.write_html(load_run(run_dir), run_dir)
    doc = json.loads((run_dir / "results.json").read_text())
    validate(doc)

    shot = tmp_path / "report.png"
    done = chromium(tmp_path, run_dir / "report.html", f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    done = chromium(tmp_path, run_dir / "report.html", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_lines(done.stderr) == []
    dom = done.stdout

    # the counts the page shows
    shown = {k: int(v) for k, v in re.findall(r'data-count="([^"]+)">(\d+)<', dom)}
    want = Counter(f"cases-{'flaky' if r.get('flaky') else r['outcome']}" for r in doc["results"])
    want.update(f"clauses-{c['status']}" for c in doc["clauses"])
    assert shown == {"cases": len(doc["results"]), **want}
    # one coloured mark per case record in the matrix, by outcome, each linking to an existing transcript
    marks = re.findall(r'<a class="m ([a-z]+)" data-outcome="\1" title="[^"]*" href="([^"]+)"', dom)
    assert len(marks) == len(doc["results"])
    assert Counter(o for o, _ in marks) == Counter("flaky" if r.get("flaky") else r["outcome"] for r in doc["results"])
    assert all((run_dir / href).is_file() for _, href in marks)
    # columns arch x firmware, rows by case (sorted), failures first in the clause table
    assert re.findall(r"<th>(aarch64 · [^<]+)</th>", dom) == ["aarch64 · edk2-2022.11", "aarch64 · edk2-2026.08"]
    rows = re.findall(r"<tr><td>([a-z0-9-]+)</td><td>", dom.split('id="matrix"')[1].split("</table>")[0])
    assert rows == sorted({r["case"].removeprefix("aarch64-") for r in doc["results"]})
    clause_table = dom.split('id="clauses"')[1].split("</table>")[0]
    statuses = re.findall(r'<td class="(pass|fail|error|not-tested|not-supported)">', clause_table)
    assert statuses == sorted(statuses, key=lambda s: s != "fail") and statuses[0] == "fail"
    assert "note: firmware edk2-2026.08 has no arm build" in dom
