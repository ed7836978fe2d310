"""CPU per chat request of the node, A/B, under the shared yardstick's load (../shared/bench-anchors).

    .venv/bin/python bench/request_cost.py [--rounds 5] [--duration 3] [--variant NAME=ENV ...]
        [--src NAME=DIR ...] [--redis] [--anchors DIR]

Each variant is one ``fxn start`` with the yardstick's node home (node_home.py: static gateway, memory
nonces, logger info/json) plus environment overrides (``FXN_*``) or another copy of the package's source
(``--src NAME=DIR``: PYTHONPATH, e.g. the code before a change); ``aiohttp_auth`` (the minimal correct
node) runs beside them. The backend is the yardstick's nginx (fixed bodies) and the load its wrk with
pre-signed requests, both pinned to CPU 0; the proxy under test is pinned to CPU 1. Variants run
interleaved, round after round; the table gives medians of the proxy's CPU per request (utime+stime of
its process tree from /proc, until it is idle again) and of req/s, and each variant's difference from
aiohttp_auth in the same round. The machine is shared: compare within one run.

Variants that turn a feature off (``log=FXN_LOGGER_VERBOSITY=warn``) price that feature: this is how
docs/benchmarks.md shows where the floor is. ``--redis`` starts a throw-away ``redis-server`` on CPU 0
(beside the load, like a Redis on another host) and puts its URL for ``{redis}`` in the variants, e.g.
``redis=FXN_NONCECACHE_BACKEND=redis,FXN_NONCECACHE_REDISURL={redis}``; the CPU of every worker process
counts, Redis's own does not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
FXN: Final = Path(sys.executable).parent / "fxn"
PORT: Final = 18060
AUTH_PORT: Final = 18031
BACKEND_PORT: Final = 18001
GATEWAY: Final = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TICKS: Final = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its children still running (every thread)."""
    total = 0
    pids = [pid]
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        pids += [int(p) for p in f.read().split()]
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def yardstick(anchors: Path) -> tuple[Path, Path]:
    """The yardstick's folder (put on sys.path for its modules) and its venv's python; exits when missing."""
    anchors = anchors.resolve()
    python = Path("/tmp/proxybench/venv/bin/python")
    if not (anchors / "bench.py").exists() or not python.exists():
        raise SystemExit(f"needs the yardstick at {anchors}, set up once by its run_proxy_anchors.sh")
    sys.path.insert(0, str(anchors))
    return anchors, python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_up(port: int) -> None:
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port}")


def settle(pid: int, quiet_s: float = 0.3) -> float:
    """Wait until ``pid`` burns no CPU for ``quiet_s`` (deferred work charged to it); its CPU seconds."""
    last = cpu_seconds(pid)
    while True:
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now == last:
            return now
        last = now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--variant", action="append", default=[], help="NAME=VAR=VALUE[,VAR=VALUE]")
    parser.add_argument("--src", action="append", default=[], help="NAME=DIR: run this copy of src/")
    parser.add_argument("--redis", action="store_true", help="start a redis-server for {redis}")
    parser.add_argument("--anchors", type=Path, default=ROOT.parent / "shared" / "bench-anchors")
    args = parser.parse_args()
    anchors, apy = yardstick(args.anchors)
    run = Path(tempfile.mkdtemp(prefix="fxn-cost-"))
    import nginx_conf  # type: ignore[import-not-found]  # the yardstick's own module
    import node_home  # type: ignore[import-not-found]
    import payloads  # type: ignore[import-not-found]

    nginx_conf.write(str(run), BACKEND_PORT, 18010, 18003)
    body = run / "chat.json"
    body.write_text(payloads.chat_request())
    home = run / "nodehome"
    node_home.write_home(str(home), port=PORT)
    procs: list[subprocess.Popen[bytes]] = []

    log = (run / "proxies.log").open("ab")

    def start(argv: list[str], cpu: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv],
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    variants: list[tuple[str, dict[str, str]]] = [("node", {})]
    for spec in args.variant:
        name, _, assignments = spec.partition("=")
        env = dict(a.split("=", 1) for a in assignments.split(",") if a)
        if any("{redis}" in v for v in env.values()) and not args.redis:
            raise SystemExit(f"variant {name} uses {{redis}}: add --redis")
        variants.append((name, env))
    if args.redis:
        redis_port = free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
        start([*redis_argv, "--save", "", "--appendonly", "no", "--dir", str(run)], 0)
        variants = [(n, {k: v.replace("{redis}", redis_url) for k, v in e.items()}) for n, e in variants]
    for spec in args.src:
        name, _, directory = spec.partition("=")
        variants.append((name, {"PYTHONPATH": str(Path(directory).resolve())}))
    results: dict[str, list[tuple[float, float, float]]] = {
        name: [] for name, _ in [("aiohttp_auth", {}), *variants]
    }
    try:
        start(["nginx", "-p", str(run / "nginx_backend"), "-c", str(run / "nginx_backend" / "nginx.conf")], 0)
        backend = f"http://127.0.0.1:{BACKEND_PORT}"
        for rnd in range(args.rounds):
            order = [("aiohttp_auth", {}), *variants]
            order = order[rnd % len(order) :] + order[: rnd % len(order)]
            for name, env in order:
                if name == "aiohttp_auth":
                    argv = [str(apy), str(anchors / "ref_proxy_aiohttp_auth.py"), "--port", str(AUTH_PORT)]
                    argv += ["--allow", GATEWAY, "--route", f"bench-chat={backend}"]
                    argv += ["--sign-key", node_home.signing.NODE_KEY]
                    port = AUTH_PORT
                else:
                    argv = [str(FXN), "start", "--home", str(home)]
                    port = PORT
                proc = start(argv, 1, env={"FXN_KEY_PASSWORD": "", **env})
                wait_up(port)
                signed = run / "signed.lua"
                subprocess.run(
                    [
                        *("taskset", "-c", "0", str(apy), str(anchors / "signing.py"), "gen"),
                        *("--body", str(body), "--count", str(15000 * (args.duration + 1) + 2000)),
                        *("--out", str(signed)),
                    ],
                    check=True,
                    capture_output=True,
                )
                before = cpu_seconds(proc.pid)
                out = subprocess.run(
                    [
                        *("taskset", "-c", "0", "wrk", "-t1", f"-c{args.concurrency}", f"-d{args.duration}s"),
                        *("--timeout", "10s", "-s", str(anchors / "post_signed.lua")),
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                    ],
                    env={
                        **os.environ,
                        "BODY_FILE": str(body),
                        "SIGNED_DATA": str(signed),
                        "SIGNED_STRIDE": "1",
                    },
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                used = settle(proc.pid) - before
                line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
                import json

                stats = json.loads(line[8:])
                errors = sum(stats[k] for k in stats if k.startswith("err_"))
                n = stats["requests"]
                rps = n / (stats["duration_us"] / 1e6)
                results[name].append((used / n * 1e6, rps, errors))
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
                cost = used / n * 1e6
                print(f"round {rnd + 1} {name:<14} {cost:7.1f} us/req {rps:8.0f} req/s errors={errors}")
    finally:
        log.close()
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        shutil.rmtree(run, ignore_errors=True)
    base = results["aiohttp_auth"]
    print(f"\n$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{'variant':<14} {'CPU us/req':>10} {'+ vs auth':>10} {'req/s':>8} {'/ auth':>7}")
    for name, rows in results.items():
        cpu = statistics.median(r[0] for r in rows)
        rps = statistics.median(r[1] for r in rows)
        plus = statistics.median(r[0] - b[0] for r, b in zip(rows, base, strict=True))
        ratio = statistics.median(r[1] / b[1] for r, b in zip(rows, base, strict=True))
        print(f"{name:<14} {cpu:10.1f} {plus:10.1f} {rps:8.0f} {ratio:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
