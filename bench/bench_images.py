#!/usr/bin/env python3
"""Benchmarks for the image matrix and `vmconform check` (run by hand or in CI; not a test).

    .venv/bin/python bench/bench_images.py              # matrix time and sizes, then 10,000 fuzz mutations
    .venv/bin/python bench/bench_images.py --fuzz 500   # fewer mutations

Budgets (issue 3): generating the whole matrix (every arch with a probe) in under 1 s in total, each
image under 1 MiB on disk; `check` gives a verdict on every mutated image without an exception.
Exit status 1 when a budget is missed or a mutation raised.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the mutation engine shared with tests/test_check_fuzz.py

from test_check_fuzz import BASES, EXTREMES, base_image, mutate  # noqa: E402

from vmconform import cases  # noqa: E402
from vmconform.check import check_source  # noqa: E402

MATRIX_BUDGET_S = 1.0
IMAGE_BUDGET_BYTES = 1 << 20


def bench_matrix() -> bool:
    todo = [c for c in cases.catalogue() if cases.has_probe(c.arch)]
    for c in todo[:2]:  # warm the probe assembler and imports; the budget is for the matrix itself
        cases.build_image(c, "warm")
    start = time.perf_counter()
    images = [(c, cases.build_image(c, cases.default_nonce(c))) for c in todo]
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="vmconform-bench-") as tmp:
        start = time.perf_counter()
        sizes = []
        for case, image in images:
            path = Path(tmp) / f"{case.name}.img"
            image.save(path)
            sizes.append((path.stat().st_blocks * 512, case.name, image.size))
        save_s = time.perf_counter() - start
    biggest = max(sizes)
    total_on_disk = sum(s for s, _n, _l in sizes)
    logical = sum(n for _s, _c, n in sizes)
    print(f"matrix: {len(images)} images ({', '.join(sorted({c.arch for c in todo}))})")
    print(f"  build  {build_s:.3f} s   ({1000 * build_s / len(images):.1f} ms per image)   budget {MATRIX_BUDGET_S} s")
    print(f"  save   {save_s:.3f} s")
    print(
        f"  on disk {total_on_disk / 2**20:.1f} MiB in total for {logical / 2**40:.1f} TiB of logical size;"
        f" largest {biggest[0] / 1024:.0f} KiB ({biggest[1]})   budget {IMAGE_BUDGET_BYTES >> 10} KiB each"
    )
    ok = build_s < MATRIX_BUDGET_S and biggest[0] < IMAGE_BUDGET_BYTES
    print(f"  {'PASS' if ok else 'FAIL'}")
    return ok


def bench_check_fuzz(n: int, seed: int) -> bool:
    rng = random.Random(seed)
    failures = 0
    slowest = (0.0, "")
    verdicts: dict[str, int] = {}
    start = time.perf_counter()
    for i in range(n):
        base = rng.choice(BASES)
        edits = [
            (
                rng.randrange(10_000),
                rng.randrange(1 << 20),
                rng.randbytes(rng.randint(1, 8)) if rng.random() < 0.5 else rng.choice(EXTREMES).to_bytes(8, "little"),
            )
            for _ in range(rng.randint(1, 8))
        ]
        fix = rng.random() < 0.5
        cut = None if rng.random() < 0.8 else rng.randint(512, 8 << 20)
        try:
            t0 = time.perf_counter()
            report = check_source(mutate(base_image(base), edits, fix, cut), "fuzz")
            took = time.perf_counter() - t0
            slowest = max(slowest, (took, f"#{i} {base}"))
            for row in report.failed:
                verdicts[row.id] = verdicts.get(row.id, 0) + 1
        except Exception:  # the point of the benchmark: count and show, do not stop
            failures += 1
            if failures <= 3:
                print(f"mutation #{i} on {base} (fix={fix}, cut={cut}) raised:", file=sys.stderr)
                traceback.print_exc()
    total = time.perf_counter() - start
    print(
        f"check fuzz: {n} mutated images in {total:.1f} s ({1000 * total / n:.2f} ms each), "
        f"slowest {1000 * slowest[0]:.1f} ms ({slowest[1]}); {failures} raised"
    )
    print("  failing rows seen: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
    print(f"  {'PASS' if failures == 0 else 'FAIL'}")
    return failures == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fuzz", type=int, default=10_000, help="mutations to check (default: 10000)")
    parser.add_argument("--seed", type=int, default=3, help="random seed for the mutations")
    args = parser.parse_args()
    ok = bench_matrix()
    ok = bench_check_fuzz(args.fuzz, args.seed) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
