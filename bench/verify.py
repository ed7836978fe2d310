"""The scheduler's verifier: recompute k rows of C from the seed (all of B, block by block).

Run: .venv/bin/python bench/verify.py [--n 8192] [--rows 16] [--repeats 5]
Prints the median time with the two-thread block pool and single-threaded (target: 16 rows at n=8192 <= 2 s).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor

from function_node.challenges.matmul.generate import MatrixKeys, Seed
from function_node.challenges.matmul.verify import choose_rows, recompute_row_digests


def _time(n: int, k: int, repeats: int, executor: Executor | None) -> float:
    samples = []
    for i in range(repeats):
        seed = MatrixKeys.bind(Seed(hashlib.sha256(f"verify-{n}-{i}".encode()).digest()), "0x" + "fb" * 20)
        rows = choose_rows(n, k)
        t0 = time.perf_counter()
        recompute_row_digests(seed, n, rows, executor=executor)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", default="4096,8192")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", *sys.argv]), f"(cpus={os.cpu_count()})")
    print(f"{'n':>6} {'rows':>5} {'2 threads ms':>13} {'1 thread ms':>12}")
    with ThreadPoolExecutor(2) as pool:
        for n in (int(s) for s in args.n.split(",")):
            threaded = _time(n, args.rows, args.repeats, pool)
            single = _time(n, args.rows, args.repeats, None)
            print(f"{n:>6} {args.rows:>5} {threaded * 1000:>13.1f} {single * 1000:>12.1f}")


if __name__ == "__main__":
    main()
