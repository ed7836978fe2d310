"""Scheduler-side verification time of one matrix proof, per node per round, at several n.

For each n: a node-side commitment is built (the asked rows' digests computed the node's way, float64
GEMM of those rows of A with all of B; every other leaf is filler, which the verifier never looks at),
k rows are proven, and ``verify_proofs`` (what ``fxn scheduler run`` and ``fxn challenge`` run, with the
scheduler's 2-thread pool) verifies them for the expected prover. Prints a table of medians; the proofs
must verify, or the script exits 1.

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
from function_node.challenges.matmul.generate import MatrixKeys, Seed, generate_matrix_np, generate_rows_np
from function_node.challenges.matmul.verify import choose_rows, verify_proofs

PROVER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def node_side(n: int, seed: Seed, rows: list[int]) -> tuple[bytes, list[dict[str, object]]]:
    keys = MatrixKeys.bind(seed, PROVER)
    c_rows = generate_rows_np(n, keys.a_keys, rows, np.float64) @ generate_matrix_np(
        n, keys.b_keys, np.float64
    )
    honest = row_digests_np(c_rows, *keys.digest_keys)
    digests = [secrets.randbits(64) for _ in range(n)]
    for row, digest in zip(rows, honest, strict=True):
        digests[row] = int(digest)
    tree = MerkleTree.build(digests)
    proofs = [
        {"row": r, "digest": str(digests[r]), "siblings": ["0x" + s.hex() for s in tree.siblings(r)]}
        for r in rows
    ]
    return tree.root, proofs


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
        for n in sizes:
            times = []
            for _ in range(args.repeat):
                seed = Seed(secrets.token_bytes(32))
                rows = choose_rows(n, args.rows)
                root, proofs = node_side(n, seed, rows)
                started = time.perf_counter()
                outcome = verify_proofs(seed, n, root, rows, {"proofs": proofs}, prover=PROVER, executor=pool)
                times.append(time.perf_counter() - started)
                if not outcome.ok:
                    print(f"n={n}: an honest proof did not verify: {outcome.failures[:3]}")
                    return 1
            median, low, high = statistics.median(times), min(times), max(times)
            print(f"{n:>6} {args.rows:>5} {median:>16.3f} {low:>8.3f} {high:>8.3f}  {len(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
