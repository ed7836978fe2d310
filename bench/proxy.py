"""Proxy overhead: the node (auth on) against the development backend directly and a bare aiohttp proxy.

    .venv/bin/python bench/proxy.py [--rounds 3] [--requests 2000] [--baseline-src DIR] [--limits]

Starts, on free loopback ports: the development backend, a reference proxy (a minimal aiohttp
proxy with no auth, no logging, no metrics, written below), and a real ``fxn start`` node with a
static gateway list and the memory nonce store. The load generator runs in this process (uvloop,
aiohttp). Node requests carry v2 signatures made before the timed loop (each needs its own nonce),
so the generator's Python signing does not eat the CPU the node needs. Cases are interleaved
(direct, reference, node per round) and medians over rounds are printed.

``--baseline-src DIR`` adds a "node-base" case: the same node (auth on, same config) run from
another copy of the package's ``src`` directory (``PYTHONPATH=DIR``), e.g. the code before a change,
so before and after are measured in the same run under the same load.

``--limits`` gives the "node" case every per-caller budget (``limits.default``, set too high to be
reached), so that the cost of checking them is in its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web

from function_node.client import FxnSigner
from function_node.devnet.process import ManagedProcess, free_port
from function_node.keys import write_plaintext
from function_node.signing import LocalSigner

GATEWAY_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil dev key 0
NODE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil dev key 2
PATH = "/v1/chat/completions"
CHAT = orjson.dumps({"model": "dev", "messages": [{"role": "user", "content": "bench"}], "max_tokens": 16})
STREAM = orjson.dumps(
    {"model": "dev", "messages": [{"role": "user", "content": "bench"}], "max_tokens": 16, "stream": True}
)
BIN = Path(sys.executable).parent


# --- the reference proxy: the least an aiohttp proxy can do ------------------------------------


def reference_app(upstream: str) -> web.Application:
    async def on_startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        session: aiohttp.ClientSession = request.app["session"]
        async with session.post(
            upstream + request.path, data=body, headers={"Content-Type": "application/json"}
        ) as up:
            if up.content_type == "text/event-stream":
                out = web.StreamResponse(status=up.status, headers={"Content-Type": "text/event-stream"})
                await out.prepare(request)
                async for chunk in up.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out
            return web.Response(body=await up.read(), status=up.status, content_type=up.content_type)

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/v1/chat/completions", handler)
    return app


def serve_reference(port: int, upstream: str) -> None:
    import uvloop

    web.run_app(
        reference_app(upstream),
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


# --- load generation ---------------------------------------------------------------------------


Headers = Callable[[int], dict[str, str]]


async def run_load(
    url: str, body: bytes, total: int, concurrency: int, headers: Headers, *, stream: bool = False
) -> dict[str, Any]:
    """``total`` requests with ``concurrency`` workers; latency (or time to first byte when streaming)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                started = time.perf_counter()
                try:
                    async with session.post(url + PATH, data=body, headers=headers(i)) as resp:
                        if stream:
                            first = await resp.content.readany()
                            latencies.append(time.perf_counter() - started)
                            rest = await resp.read()
                            ok = resp.status == 200 and _ends_done(first + rest)
                        else:
                            await resp.read()
                            latencies.append(time.perf_counter() - started)
                            ok = resp.status == 200
                        errors += 0 if ok else 1
                except aiohttp.ClientError:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "rps": total / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 100 else float("nan"),
        "errors": errors,
    }


def _ends_done(body: bytes) -> bool:
    """The stream ended with [DONE], then (from a node, which signs its answers) the signature line."""
    if body.endswith(b"data: [DONE]\n\n"):
        return True
    _, sep, tail = body.rpartition(b"data: [DONE]\n\n")
    return bool(sep) and tail.startswith(b": fxn-signature 0x") and tail.endswith(b"\n\n")


def presigned(count: int, body: bytes, node_address: str) -> Headers:
    signer = FxnSigner(LocalSigner.from_hex(GATEWAY_KEY))
    signed = [
        {**signer.headers("POST", PATH, body, node_address), "Content-Type": "application/json"}
        for _ in range(count)
    ]
    return lambda i: signed[i]


def plain(_: int) -> dict[str, str]:
    return {"Content-Type": "application/json"}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- processes ---------------------------------------------------------------------------------


HIGH_LIMITS = {"requestsPerMinute": 10**9, "tokensPerMinute": 10**12, "maxConcurrent": 10**6}


def start_processes(
    work: Path, token_delay: float, log_level: str, baseline: Path | None = None, *, limits: bool = False
) -> tuple[list[ManagedProcess], dict[str, str], dict[str, int]]:
    backend_port, ref_port = free_port(), free_port()
    backend = ManagedProcess(
        "dev-backend",
        [
            str(BIN / "python"),
            "-m",
            "function_node.devnet.dev_backend",
            "--port",
            str(backend_port),
            "--token-delay",
            str(token_delay),
        ],
        work / "backend.log",
        port=backend_port,
    ).start()
    upstream = f"http://127.0.0.1:{backend_port}"
    reference = ManagedProcess(
        "reference-proxy",
        [str(BIN / "python"), __file__, "--serve-reference", str(ref_port), "--upstream", upstream],
        work / "reference.log",
        port=ref_port,
    ).start()
    gateway = LocalSigner.from_hex(GATEWAY_KEY)
    nodes: dict[str, tuple[ManagedProcess, int]] = {}
    variants: list[tuple[str, bool, Path | None]] = [("node", False, None), ("node-noauth", True, None)]
    if baseline is not None:
        variants.append(("node-base", False, baseline))
    for name, bypass, src in variants:
        port = free_port()
        home = work / name
        home.mkdir()
        config = {
            "node": {"listenAddress": "127.0.0.1", "listenPort": port, "keyFile": "nodekey.json"},
            "logger": {"verbosity": log_level, "format": "json"},
            "registry": {"static": {"gateways": [gateway.address], "schedulers": []}, "bypassAuth": bypass},
        }
        if limits and name == "node":
            config["limits"] = {"default": HIGH_LIMITS}
        (home / "config.yaml").write_text(yaml.safe_dump(config))
        models = {
            "models": [{"name": "dev", "backends": [{"url": upstream}], "healthCheck": {"interval": "60s"}}]
        }
        (home / "backend.yaml").write_text(yaml.safe_dump(models))
        write_plaintext(home / "nodekey.json", LocalSigner.from_hex(NODE_KEY))
        argv = [str(BIN / "fxn"), "--home", str(home), "start"]
        env = None if src is None else {**os.environ, "PYTHONPATH": str(src)}
        proc = ManagedProcess(name, argv, work / f"{name}.log", port=port, env=env)
        nodes[name] = (proc.start(), port)
    urls = {"direct": upstream, "reference": f"http://127.0.0.1:{ref_port}"}
    pids = {
        "direct": backend.process.pid if backend.process else 0,
        "reference": reference.process.pid if reference.process else 0,
    }
    for name in ("node-base", "node-noauth", "node"):
        if name in nodes:
            proc, port = nodes[name]
            urls[name] = f"http://127.0.0.1:{port}"
            pids[name] = proc.process.pid if proc.process else 0
    return [backend, reference, *(proc for proc, _ in nodes.values())], urls, pids


async def interleaved(
    rounds: int, urls: dict[str, str], make: Callable[[str], Awaitable[dict[str, Any]]]
) -> dict[str, dict[str, float]]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name in urls:
            results[name].append(await make(name))
    return {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for name, runs in results.items()
    }


async def bench(
    rounds: int,
    requests: int,
    profile: str | None,
    profile_target: str,
    log_level: str,
    baseline: Path | None = None,
    limits: bool = False,
) -> None:
    node_address = LocalSigner.from_hex(NODE_KEY).address
    with tempfile.TemporaryDirectory(prefix="fxn-bench-") as tmp:
        procs, urls, pids = start_processes(
            Path(tmp), token_delay=0.0, log_level=log_level, baseline=baseline, limits=limits
        )
        pid = pids["node"]
        try:
            await asyncio.sleep(1)
            idle = rss_mb(pid)
            idle_base = rss_mb(pids["node-base"]) if "node-base" in pids else None
            rows: list[tuple[str, str, dict[str, dict[str, float]]]] = []

            async def case(name: str, body: bytes, total: int, conc: int, stream: bool) -> dict[str, Any]:
                signed = name in ("node", "node-base")
                headers = presigned(total, body, node_address) if signed else plain
                before = cpu_seconds(pids[name]), cpu_seconds(pids["direct"])
                result = await run_load(urls[name], body, total, conc, headers, stream=stream)
                # CPU the proxy itself spent per request (the backend's own is subtracted for the
                # direct case), which a shared machine disturbs less than wall-clock throughput.
                spent = cpu_seconds(pids[name]) - before[0]
                result["cpu_us"] = spent / total * 1e6
                return result

            for name in urls:
                if name.startswith("node"):
                    await case(name, CHAT, 200, 8, False)  # warm up every connection pool
            if profile:
                spy = await asyncio.create_subprocess_exec(
                    str(BIN / "py-spy"),
                    "record",
                    "--pid",
                    str(pids[profile_target]),
                    "--duration",
                    "6",
                    "--rate",
                    "500",
                    "--format",
                    "raw",
                    "--output",
                    profile,
                    "--nonblocking",
                )
                await case(profile_target, CHAT, requests * 3, 64, False)
                await spy.wait()
                return
            rows.append(
                (
                    "chat, 64 concurrent",
                    "req/s",
                    await interleaved(rounds, urls, lambda n: case(n, CHAT, requests, 64, False)),
                )
            )
            rows.append(
                (
                    "chat, 1 concurrent",
                    "p50 ms",
                    await interleaved(rounds, urls, lambda n: case(n, CHAT, requests // 4, 1, False)),
                )
            )
            rows.append(
                (
                    "SSE, 64 concurrent",
                    "TTFT p50 ms",
                    await interleaved(rounds, urls, lambda n: case(n, STREAM, requests // 2, 64, True)),
                )
            )
            streams = await case("node", STREAM, 1000, 1000, True)
            peak = rss_mb(pid, "VmHWM")
        finally:
            for proc in reversed(procs):
                proc.stop()
    print_report(rows, streams, idle, peak, rounds, requests, log_level, idle_base, baseline, limits)


def print_report(
    rows: Sequence[tuple[str, str, dict[str, dict[str, float]]]],
    streams: dict[str, Any],
    idle: float,
    peak: float,
    rounds: int,
    requests: int,
    log_level: str,
    idle_base: float | None = None,
    baseline: Path | None = None,
    limits: bool = False,
) -> None:
    names = ("direct", "reference", "node-noauth", "node") + (("node-base",) if idle_base is not None else ())
    flags = f"--rounds {rounds} --requests {requests} --log-level {log_level}"
    flags += f" --baseline-src {baseline}" if baseline is not None else ""
    flags += " --limits" if limits else ""
    print(f"command: .venv/bin/python bench/proxy.py {flags}")
    print(f"medians of {rounds} interleaved rounds; 2-core machine shared with other work")
    print(f"{'case':22} {'metric':12}" + "".join(f"{n:>12}" for n in names) + "   derived")
    for name, metric, res in rows:
        key = "rps" if metric == "req/s" else "p50_ms"
        values = [res[n][key] for n in names]
        if key == "rps":
            ratios = values[3] / values[1], values[2] / values[1]
            derived = f"node/reference {ratios[0]:.2f}, node-noauth/reference {ratios[1]:.2f}"
            derived += f", node-base/reference {values[4] / values[1]:.2f}" if len(values) > 4 else ""
        else:
            derived = (
                f"node adds {values[3] - values[0]:.3f} ms, node-noauth adds {values[2] - values[0]:.3f} ms"
            )
            derived += f", node-base adds {values[4] - values[0]:.3f} ms" if len(values) > 4 else ""
        errors = sum(res[n]["errors"] for n in names)
        print(
            f"{name:22} {metric:12}"
            + "".join(f"{v:12.2f}" for v in values)
            + f"   {derived}; errors {errors:.0f}"
        )
        cpu = [res[n]["cpu_us"] for n in names]
        print(
            f"{'':22} {'CPU us/req':12}"
            + "".join(f"{v:12.0f}" for v in cpu)
            + "   (the server process's own CPU)"
        )
    errors, ttft = streams["errors"], streams["p50_ms"]
    print(f"1000 concurrent streams through the node: errors {errors}, TTFT p50 {ttft:.1f} ms")
    print(f"node RSS: idle {idle:.1f} MB, peak (VmHWM, after 1000 streams) {peak:.1f} MB")
    if idle_base is not None:
        print(f"node-base RSS: idle {idle_base:.1f} MB")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", help="py-spy the node under chat load; write raw stacks here and stop")
    parser.add_argument(
        "--log-level", default="info", help="the nodes' logger.verbosity (info logs every request)"
    )
    parser.add_argument("--profile-target", default="node", help="node, node-noauth or reference")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run the node from this copy of src/ (PYTHONPATH) as 'node-base', for before/after",
    )
    parser.add_argument(
        "--limits", action="store_true", help="give the 'node' case every per-caller budget (never reached)"
    )
    parser.add_argument("--serve-reference", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_reference:
        serve_reference(args.serve_reference, args.upstream)
        return
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(
            bench(
                args.rounds,
                args.requests,
                args.profile,
                args.profile_target,
                args.log_level,
                args.baseline_src,
                args.limits,
            )
        )


if __name__ == "__main__":
    main()
