"""Matrix challenge on the CPU path vs a bare numpy float64 GEMM of the same n, phase by phase.

Run: .venv/bin/python bench/matmul.py [--sizes 1024,2048] [--repeats 5] [--torch]
Prints one row per size: medians of each phase, the bare GEMM, and total / bare (the target is <= 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from function_node.challenges.matmul.benchmark import bench_size
from function_node.challenges.matmul.compute import MatmulBackend, NumpyBackend, TorchBackend


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1024,2048")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch", action="store_true", help="also time the torch path on its CPU device")
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", *sys.argv]), f"(cpus={os.cpu_count()})")
    with ThreadPoolExecutor(2) as pool:
        backends: list[MatmulBackend] = [NumpyBackend(executor=pool)]
        if args.torch:
            backends.append(TorchBackend("cpu"))
        header = f"{'backend':>10} {'n':>6} {'gen ms':>8} {'gemm ms':>8} {'digest ms':>9} {'merkle ms':>9}"
        print(header + f" {'total ms':>9} {'bare ms':>8} {'total/bare':>10}")
        for backend in backends:
            for n in (int(s) for s in args.sizes.split(",")):
                row = bench_size(backend, n, args.repeats)
                p = row.phases_ms
                print(
                    f"{backend.name:>10} {n:>6} {p['generate']:>8.1f} {p['gemm']:>8.1f} {p['digest']:>9.1f} "
                    f"{p['merkle']:>9.1f} {row.total_ms:>9.1f} {row.bare_gemm_ms:>8.1f} "
                    f"{row.total_ms / row.bare_gemm_ms:>10.2f}"
                )


if __name__ == "__main__":
    main()
