"""Scheduler-side verification time of one matrix proof, per node per round, at several n.

For each n: a node-side commitment is built (the asked rows' digests computed the node's way, float64
GEMM of those rows of A with all of B; every other leaf is filler, which the verifier never looks at),
k rows are proven, and ``matmul_verifier`` (what ``fxn scheduler run`` uses, with its 2-thread pool)
verifies them. Prints a table of medians; the proofs must verify, or the script exits 1.

    .venv/bin/python bench/scheduler_verify.py [--sizes 2048,8192] [--rows 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from function_node.challenges.matmul.commitment import MerkleTree, row_digests_np
from function_node.challenges.matmul.generate import generate_matrix_np, generate_rows_np, parse_seed
from function_node.scheduler.checks import choose_rows
from function_node.scheduler.verification import matmul_verifier


def node_side(n: int, seed_hex: str, rows: list[int]) -> tuple[str, list[dict[str, object]]]:
    seed = parse_seed(seed_hex)
    c_rows = generate_rows_np(n, seed.a_keys, rows, np.float64) @ generate_matrix_np(
        n, seed.b_keys, np.float64
    )
    honest = row_digests_np(c_rows, *seed.digest_keys)
    digests = [secrets.randbits(64) for _ in range(n)]
    for row, digest in zip(rows, honest, strict=True):
        digests[row] = int(digest)
    tree = MerkleTree.build(digests)
    proofs = [
        {"row": r, "digest": str(digests[r]), "siblings": ["0x" + s.hex() for s in tree.siblings(r)]}
        for r in rows
    ]
    return "0x" + tree.root.hex(), proofs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2048,8192")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"$ {' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}")
    print(f"{'n':>6} {'rows':>5} {'verify median s':>16} {'min s':>8} {'max s':>8}  runs")
    with ThreadPoolExecutor(2, thread_name_prefix="bench-verify") as pool:
        verify = matmul_verifier(pool)
        for n in sizes:
            times = []
            for _ in range(args.repeat):
                seed = "0x" + secrets.token_hex(32)
                rows = choose_rows(n, args.rows)
                root, proofs = node_side(n, seed, rows)
                started = time.perf_counter()
                failure = verify(seed, n, root, rows, proofs)
                times.append(time.perf_counter() - started)
                if failure is not None:
                    print(f"n={n}: an honest proof did not verify: {failure}")
                    return 1
            median, low, high = statistics.median(times), min(times), max(times)
            print(f"{n:>6} {args.rows:>5} {median:>16.3f} {low:>8.3f} {high:>8.3f}  {len(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
