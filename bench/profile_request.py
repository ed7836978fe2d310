"""Where the node's CPU goes under the yardstick's 64-concurrent chat load: py-spy samples, grouped.

    .venv/bin/python bench/profile_request.py [--seconds 8] [--rate 200] [--raw OUT] [--anchors DIR]

Starts the yardstick's nginx backend (fixed bodies) and its wrk with pre-signed requests on CPU 0 and
``fxn start`` with the yardstick's node home on CPU 1, as ``make bench-anchors`` does, and samples the
node's main thread with py-spy (a dev extra; it needs ptrace, i.e. root or CAP_SYS_PTRACE). Prints the
share of samples by layer (aiohttp, cryptography, asyncio, logging, metrics, the node's own code), the
node's functions by inclusive share (what each layer of the request path costs with what it calls) and
the hottest leaf functions. Samples are wall-clock: on a shared machine preemption lands wherever the
process was, so compare shares within one profile.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent))
from request_cost import BACKEND_PORT, FXN, PORT, ROOT, wait_up, yardstick  # a sibling bench script

MAIN_LOOP: Final = "_run (function_node/node/server.py"
_LINE: Final = re.compile(r":\d+\)")


def layer(frames: list[str]) -> str:
    """The layer a sample belongs to: logging and metrics by any frame, the rest by the leaf's file."""
    for frame in frames:
        if "structlog" in frame or "logs.py" in frame:
            return "logging"
        if "prometheus_client" in frame:
            return "metrics"
    leaf = frames[-1]
    found = re.search(r"\((.*?):\d+\)", leaf)
    path = found.group(1) if found else leaf
    if any(name in path for name in ("coincurve", "Crypto", "signing.py", "hashlib")):
        return "cryptography"
    if any(name in path for name in ("aiohttp", "multidict", "yarl")):
        return "aiohttp"
    if "asyncio" in path or "uvloop" in path:
        return "asyncio/uvloop"
    if "function_node" in path:
        return "node code (self)"
    return "other"


def report(raw: Path) -> None:
    layers: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if MAIN_LOOP not in stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        layers[layer(frames)] += n
        for key in {_LINE.sub(")", f) for f in frames}:
            inclusive[key] += n
        leaves[_LINE.sub(")", frames[-1])] += n
    if not total:
        raise SystemExit(f"no samples of the node's main loop in {raw}")
    print(f"main-thread samples: {total}\n\nby layer:")
    for name, n in layers.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\nthe node's functions, inclusive (>= 0.7%):")
    for name, n in inclusive.most_common():
        if "function_node" in name and 100 * n / total >= 0.7:
            print(f"  {100 * n / total:5.1f}%  {name[:120]}")
    print("\nhottest leaves:")
    for name, n in leaves.most_common(20):
        print(f"  {100 * n / total:5.1f}%  {name[:120]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw stacks here")
    parser.add_argument("--anchors", type=Path, default=ROOT.parent / "shared" / "bench-anchors")
    args = parser.parse_args()
    anchors, apy = yardstick(args.anchors)
    import nginx_conf  # type: ignore[import-not-found]  # the yardstick's own modules
    import node_home  # type: ignore[import-not-found]
    import payloads  # type: ignore[import-not-found]

    run = Path(tempfile.mkdtemp(prefix="fxn-profile-"))
    raw = args.raw or run / "stacks.txt"
    nginx_conf.write(str(run), BACKEND_PORT, 18010, 18003)
    body = run / "chat.json"
    body.write_text(payloads.chat_request())
    node_home.write_home(str(run / "nodehome"), port=PORT)
    log = (run / "processes.log").open("ab")
    procs: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], cpu: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "FXN_KEY_PASSWORD": ""}
        proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    try:
        start(["nginx", "-p", str(run / "nginx_backend"), "-c", str(run / "nginx_backend" / "nginx.conf")], 0)
        node = start([str(FXN), "start", "--home", str(run / "nodehome")], 1)
        wait_up(PORT)
        signed = run / "signed.lua"
        count = str(15000 * (args.seconds + 2))
        gen = [
            str(apy),
            str(anchors / "signing.py"),
            "gen",
            "--body",
            str(body),
            "--count",
            count,
            "--out",
            str(signed),
        ]
        subprocess.run(["taskset", "-c", "0", *gen], check=True, capture_output=True)
        spy = subprocess.Popen(
            [
                *(str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(node.pid)),
                *("-d", str(args.seconds), "-r", str(args.rate), "-o", str(raw), "--format", "raw"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        subprocess.run(
            [
                *("taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{args.seconds + 1}s", "--timeout", "10s"),
                *("-s", str(anchors / "post_signed.lua"), f"http://127.0.0.1:{PORT}/v1/chat/completions"),
            ],
            env={**os.environ, "BODY_FILE": str(body), "SIGNED_DATA": str(signed), "SIGNED_STRIDE": "1"},
            check=True,
            capture_output=True,
        )
        if spy.wait(timeout=60) != 0:
            raise SystemExit(f"py-spy failed: see {run / 'processes.log'}")
    finally:
        log.close()
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    report(raw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
