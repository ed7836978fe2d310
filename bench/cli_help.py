"""Start-up cost of the CLI: wall time of ``fxn --help`` as a fresh subprocess, median of N runs.

Also lists which heavy libraries ``import function_node.cli.main`` pulls in (there should be none:
command modules import aiohttp, web3, numpy, torch inside their functions). Goal: median <= 300 ms.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("aiohttp", "web3", "numpy", "torch", "eth_account", "pydantic", "yaml", "coincurve", "rich", "redis")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    fxn = Path(sys.executable).parent / "fxn"

    subprocess.run([str(fxn), "--help"], capture_output=True, check=True)  # warm the page cache
    samples, cpu = [], []
    for _ in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([str(fxn), "--help"], capture_output=True, check=True)
        samples.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    bare = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        bare.append((time.perf_counter() - start) * 1000)
    probe = (
        f"import sys, function_node.cli.main as m; print(','.join(n for n in {HEAVY!r} if n in sys.modules))"
    )
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"{'what':<34} {'median ms':>10} {'min':>8} {'max':>8}")
    # CPU time (user + system) of the child is what the CLI itself costs; wall time adds the machine's load.
    rows = (
        ("fxn --help (subprocess)", samples),
        ("fxn --help, CPU time", cpu),
        ("python -c pass (interpreter floor)", bare),
    )
    for name, values in rows:
        print(f"{name:<34} {statistics.median(values):>10.1f} {min(values):>8.1f} {max(values):>8.1f}")
    print(f"heavy modules imported by the CLI entry: {heavy.stdout.strip() or 'none'}")
    median = statistics.median(samples)
    print(f"goal fxn --help <= 300 ms: {'met' if median <= 300 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
