"""Wall time of ``fxn devnet up --once`` from a warm setup (packages imported once, contracts compiled,
files cached): one warm-up run, then ``--repeat`` timed runs. Every run must exit 0.

    .venv/bin/python bench/devnet.py [--repeat 3] [--dir /tmp/fxn-bench-devnet] [-- extra devnet args]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FXN = str(Path(sys.executable).parent / "fxn")
_UP = re.compile(r"up in ([0-9.]+) s")


def run(directory: Path, extra: list[str]) -> tuple[float, float | None]:
    started = time.perf_counter()
    done = subprocess.run(
        [FXN, "devnet", "up", "--once", "--dir", str(directory), *extra],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-2000:])
        raise SystemExit(f"fxn devnet up --once exited {done.returncode}")
    match = _UP.search(done.stdout)
    return wall, float(match.group(1)) if match else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("extra", nargs="*", help="extra `fxn devnet up` arguments (after --)")
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="fxn-bench-devnet-"))
    print(f"$ {' '.join(['python', *sys.argv])}")
    run(directory, args.extra)  # warm-up: page cache, .pyc files
    walls: list[float] = []
    ups: list[float] = []
    for _ in range(args.repeat):
        wall, up = run(directory, args.extra)
        walls.append(wall)
        if up is not None:
            ups.append(up)
    print(f"{'measure':<40} {'median s':>9} {'min s':>7} {'max s':>7} runs")
    rows = [("wall time of `fxn devnet up --once`", walls), ("  of which scenario up (summary)", ups)]
    for name, values in rows:
        if values:
            med, low, high = statistics.median(values), min(values), max(values)
            print(f"{name:<40} {med:>9.1f} {low:>7.1f} {high:>7.1f} {len(values):>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
