#!/usr/bin/env python3
"""The structure-aware fuzzer of `vmconform check`, run for minutes (not a test; no assertions on time).

    .venv/bin/python bench/fuzz_check.py                 # 3 minutes
    .venv/bin/python bench/fuzz_check.py --seconds 600 --seed 7
    .venv/bin/python bench/fuzz_check.py --hostile --seconds 0   # only the hostile trees of issue 14
    .venv/bin/python bench/fuzz_check.py --containers 300 --seconds 0   # qcow2/qed/vmdk headers twisted

Builds valid GPT/FAT32/PE trees with tests/hostile_fat.py, twists one field or link each
(tests/fuzz_twists.py), checks each image and prints the throughput, how many cases ended with each
exit status and each row verdict, the slowest case and the peak memory of sampled cases (tracemalloc).
With --hostile it first times the hostile trees of tests/test_check_hostile_fs.py (nested directories,
shared looping runs, files sharing a chain, a chain past the link budget): time and traced peak each.
With --containers N it twists N container headers (tests/hostile_containers.py) and checks each file
through qemu-img: every one must end in a verdict or a one-line refusal (exit 2), never an exception.
Exit status 1 when a case raised, broke a row invariant or read past its budget.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the builders and the twist engine shared with the tests

import fuzz_twists as fz  # noqa: E402

from vmconform.check.budget import UNIT_BYTES  # noqa: E402


def bench_hostile() -> None:
    import test_check_hostile_fs as hostile

    from vmconform.check import check_source

    print("hostile trees (tests/test_check_hostile_fs.py):")
    for name, make in hostile.CASES.items():
        img = make()
        start = time.perf_counter()
        report = check_source(img, name)
        elapsed = time.perf_counter() - start
        tracemalloc.start()
        check_source(img, name)
        _cur, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows = ", ".join(f"{r.id} {r.verdict}" for r in report.rows if r.verdict in ("fail", "error"))
        size = f"{img.allocated / 2**20:5.1f} MiB allocated"
        print(f"  {name:14s} {size}: {elapsed:.2f} s, peak {top / 2**20:.1f} MiB; {rows}")


def bench_containers(n: int, seed: int) -> int:
    import struct
    import tempfile

    import hostile_containers as hc

    from vmconform.check import DiskError, check_image

    bases = {
        "qcow2": (lambda: hc.qcow2_bomb(4 << 20), ">", 112),
        "qcow2-data-file": (lambda: hc.qcow2_with_data_file(b"/nonexistent"), ">", 112),
        "qed": (lambda: hc.qed_with_backing(b"/nonexistent"), "<", 64),
        "vmdk-sparse": (lambda: hc.vmdk_sparse_with_parent("/nonexistent"), "<", 80),
        "vmdk-text": (lambda: hc.vmdk_descriptor("/nonexistent"), "<", 200),
    }
    rng = random.Random(seed)
    outcomes: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vmconform-fuzz-") as tmp:
        path = Path(tmp) / "twisted.img"
        for _ in range(n):
            name = rng.choice(sorted(bases))
            make, order, span = bases[name]
            data = bytearray(make())
            width = rng.choice((1, 2, 4, 8))
            at = rng.randrange(min(span, len(data) - width))
            value = rng.choice((0, 1, 0xFF, (1 << (8 * width)) - 1, 1 << (8 * width - 1), rng.getrandbits(8 * width)))
            struct.pack_into(f"{order}{'BHIQ'[(1, 2, 4, 8).index(width)]}", data, at, value)
            path.write_bytes(data)
            what = f"{name}: {width} bytes at {at} = {value:#x}"
            try:
                report = check_image(path)
                outcomes[f"exit {report.exit_status}"] += 1
            except DiskError as e:
                outcomes["exit 2"] += 1
                if "\n" in str(e):
                    problems.append(f"a message of several lines on {what}")
            except Exception as e:  # noqa: BLE001 - what the fuzzer looks for
                problems.append(f"{type(e).__name__}: {e} on {what}")
    wall = time.perf_counter() - start
    print(f"container headers twisted: {n} files in {wall:.0f} s ({n / wall:.1f} a second): {dict(outcomes)}")
    print(f"  exceptions: {len(problems)}")
    for p in problems[:10]:
        print(f"    {p}")
    return len(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory-every", type=int, default=100, help="measure tracemalloc's peak every N cases")
    parser.add_argument("--hostile", action="store_true", help="first time the hostile trees of issue 14")
    parser.add_argument("--containers", type=int, default=0, help="first twist N container headers")
    args = parser.parse_args()
    if args.hostile:
        bench_hostile()
    container_problems = bench_containers(args.containers, args.seed) if args.containers else 0
    rng = random.Random(args.seed)
    for name in fz.BASES:  # build the bases outside the measured loop
        fz.base(name)
    exits: collections.Counter[int] = collections.Counter()
    verdicts: collections.Counter[str] = collections.Counter()
    failing_rows: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    slowest = (0.0, "")
    peak = (0, "")
    cases = 0
    check_time = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        name, twists = fz.random_twists(rng)
        img, what = fz.twisted(name, twists)
        sample = args.memory_every and cases % args.memory_every == 0
        if sample:
            tracemalloc.start()
        t0 = time.perf_counter()
        try:
            report = fz.run_case(img, what)
        except AssertionError as e:
            problems.append(str(e))
            cases += 1
            continue
        finally:
            elapsed = time.perf_counter() - t0
            if sample:
                _cur, top = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                if top > peak[0]:
                    peak = (top, what)
        check_time += elapsed
        units = max(1, -(-img.allocated // UNIT_BYTES))
        if elapsed / units > slowest[0]:
            slowest = (elapsed / units, what)
        cases += 1
        exits[report.exit_status] += 1
        for row in report.rows:
            verdicts[row.verdict] += 1
            if row.verdict in ("fail", "error"):
                failing_rows[f"{row.id} {row.verdict}"] += 1
    wall = time.perf_counter() - start
    if not cases:
        return 1 if container_problems else 0
    print(f"structure-aware fuzz of vmconform check: {cases} cases in {wall:.0f} s (seed {args.seed})")
    print(f"  throughput {cases / wall:.0f} cases/s; check alone {1000 * check_time / max(cases, 1):.2f} ms a case")
    print(f"  exit status: {dict(sorted(exits.items()))}   (3 would be an internal error)")
    print(f"  row verdicts: {dict(verdicts.most_common())}")
    print("  rows failing or in error most often:")
    for row, count in failing_rows.most_common(12):
        print(f"    {count:7d}  {row}")
    print(f"  slowest: {slowest[0] * 1000:.1f} ms per 64 MiB unit ({slowest[1]})")
    print(f"  peak traced memory of sampled cases: {peak[0] / 2**20:.1f} MiB ({peak[1]})")
    print(f"  exceptions / broken invariants: {len(problems)}")
    for p in problems[:10]:
        print(f"    {p}")
    return 1 if problems or container_problems else 0


if __name__ == "__main__":
    sys.exit(main())
