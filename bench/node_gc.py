"""What the cyclic garbage collector costs the node per request, with CPython's defaults and tuned.

    .venv/bin/python bench/node_gc.py [--rounds 3] [--requests 3000]

The node app (auth on, memory nonces, static gateway list; what ``fxn start`` serves) runs inside
this process, so that ``gc.callbacks`` can time every collection; the development backend and the
load generator (64 concurrent chat completions, pre-signed v2 requests) are child processes. Each
round measures both variants, alternately: "default" (thresholds (700, 10, 10), nothing frozen) and
"tuned" (``function_node.node.server.tune_gc``: start-up objects frozen, young threshold raised).
Medians over rounds of: this process's CPU per request, and GC time per request per generation.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from function_node.config.backends import BackendConfig
from function_node.config.settings import Settings
from function_node.devnet.process import ManagedProcess, free_port
from function_node.logs import configure_logging
from function_node.node.app import create_app
from function_node.node.server import tune_gc
from function_node.signing import LocalSigner

BENCH = Path(__file__).resolve().parent
# The same development keys as bench/proxy.py, whose load generator the child process runs (imported
# there, not here: mypy checks bench/ as loose files, and would see proxy.py under two names).
GATEWAY_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil dev key 0
NODE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil dev key 2

LOAD = """
import asyncio, sys, uvloop
sys.path.insert(0, {root!r})
from bench.proxy import CHAT, run_load, presigned
headers = presigned({total}, CHAT, {node!r})
async def main():
    await run_load({url!r}, CHAT, 200, 8, headers)  # warm-up: connection pools
    print("warm", flush=True)
    sys.stdin.readline()
    await run_load({url!r}, CHAT, {requests}, 64, lambda i: headers(200 + i))
uvloop.run(main())
"""


class GcClock:
    """Counts and times collections per generation through ``gc.callbacks``."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.counts[generation] += 1
            self.seconds[generation] += time.perf_counter() - self._started


async def measure(upstream: str, requests: int, tuned: bool) -> dict[str, float]:
    """One run: a fresh node app, warmed up, then ``requests`` requests under the chosen GC set-up."""
    gateway = LocalSigner.from_hex(GATEWAY_KEY)
    settings = Settings.model_validate(
        {"registry": {"static": {"gateways": [gateway.address]}}, "proxy": {"maxIdleConns": 1200}}
    )
    backends = BackendConfig.model_validate(
        {"models": [{"name": "dev", "backends": [{"url": upstream}], "healthCheck": {"interval": "60s"}}]}
    )
    signer = LocalSigner.from_hex(NODE_KEY)
    with tempfile.TemporaryDirectory(prefix="fxn-gc-") as home:
        runner = web.AppRunner(create_app(settings, backends, signer, Path(home)), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        code = LOAD.format(
            root=str(BENCH.parent),
            total=requests + 200,
            node=signer.address,
            url=f"http://127.0.0.1:{port}",
            requests=requests,
        )
        load = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert load.stdin is not None and load.stdout is not None  # both are pipes
        await load.stdout.readline()  # "warm"
        defaults = gc.get_threshold()
        if tuned:
            tune_gc()
        clock = GcClock()
        gc.callbacks.append(clock)
        cpu = time.process_time()
        try:
            load.stdin.write(b"go\n")
            await load.stdin.drain()
            await load.wait()
            cpu = time.process_time() - cpu
        finally:
            gc.callbacks.remove(clock)
            gc.unfreeze()
            gc.set_threshold(*defaults)
            await runner.cleanup()
    result = {"cpu_us": cpu / requests * 1e6}
    for generation in range(3):
        result[f"gc{generation}_n"] = clock.counts[generation]
        result[f"gc{generation}_us"] = clock.seconds[generation] / requests * 1e6
    return result


async def bench(rounds: int, requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fxn-gc-bench-") as tmp:
        port = free_port()
        argv = [sys.executable, "-m", "function_node.devnet.dev_backend", "--port", str(port)]
        backend = ManagedProcess("dev-backend", argv, Path(tmp) / "backend.log", port=port).start()
        # As `fxn start` under the bench's config: one JSON line per request, into a file.
        log = (Path(tmp) / "node.log").open("w")
        configure_logging("info", "json", stream=log)
        try:
            runs: dict[str, list[dict[str, float]]] = {"default": [], "tuned": []}
            for _ in range(rounds):
                for name, results in runs.items():
                    results.append(await measure(f"http://127.0.0.1:{port}", requests, name == "tuned"))
        finally:
            backend.stop()
            log.close()
    print(f"command: .venv/bin/python bench/node_gc.py --rounds {rounds} --requests {requests}")
    print(
        f"medians of {rounds} alternating rounds, 64 concurrent chat; 2-core machine shared with other work"
    )
    print(f"{'GC set-up':10} {'CPU us/req':>11} {'gc0 n':>6} {'gc1 n':>6} {'gc2 n':>6}", end="")
    print(f" {'gc0 us/req':>11} {'gc1 us/req':>11} {'gc2 us/req':>11} {'GC us/req':>10}")
    for name, results in runs.items():
        med = {key: statistics.median(r[key] for r in results) for key in results[0]}
        total = statistics.median(sum(r[f"gc{g}_us"] for g in range(3)) for r in results)
        print(
            f"{name:10} {med['cpu_us']:11.0f} {med['gc0_n']:6.0f} {med['gc1_n']:6.0f} {med['gc2_n']:6.0f}"
            f" {med['gc0_us']:11.1f} {med['gc1_us']:11.1f} {med['gc2_us']:11.1f} {total:10.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    uvloop.run(bench(args.rounds, args.requests))


if __name__ == "__main__":
    main()
