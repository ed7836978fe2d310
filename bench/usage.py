"""Cost of usage metering and per-caller limits (issue 12): CPU per request, Redis round trips, ledger writes.

    .venv/bin/python bench/usage.py [--rounds 5] [--requests 2000]

1. **CPU per request, memory store.** The real node (``create_app``: observe, auth, metering, proxy) and
   the development backend run in this process on loopback; requests are signed before the timed loop.
   Two apps differ only in metering: "plain" is the same app with the metering middleware taken out (no
   meter, no ledger, no limits: the node before this issue, on the same code), "metered" has it with
   all three budgets set (never reached) and the ledger in a temporary home. Rounds alternate the two;
   the figure is the median over rounds of the difference in process CPU (``time.process_time``, every
   thread: the ledger writer's included) per request, so the client's and the backend's shares cancel.
2. **Redis round trips.** The same node with ``nonceCache.backend: redis`` against a throw-away
   redis-server: the script calls Redis answered per request (``INFO commandstats``: EVALSHA) with no
   budgets, with ``requestsPerMinute`` only, and with all three; and the wall time per request.
3. **Ledger writer.** ``UsageRecorder.record`` per call; one second of 5,000 requests/s written as one
   batch (200 callers x 2 models, and the worst case of 5,000 distinct rows), and two processes doing
   that at once against one file.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry

from function_node.client import FxnSigner
from function_node.config.backends import BackendConfig
from function_node.config.settings import Settings
from function_node.devnet.dev_backend import create_dev_backend_app
from function_node.devnet.redis_server import RedisServer
from function_node.metrics import NodeMetrics
from function_node.node.app import create_app
from function_node.node.metering import metering_middleware
from function_node.node.usage import UsageRecorder
from function_node.node.usage_parse import Usage
from function_node.signing import LocalSigner
from function_node.usage.ledger import HOUR, UsageLedger

GATEWAY_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil dev key 0
NODE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil dev key 2
PATH = "/v1/chat/completions"
CHAT = orjson.dumps({"model": "dev", "messages": [{"role": "user", "content": "bench"}], "max_tokens": 16})
STREAM = orjson.dumps(
    {"model": "dev", "messages": [{"role": "user", "content": "bench"}], "max_tokens": 16, "stream": True}
)
HIGH = {"requestsPerMinute": 10**9, "tokensPerMinute": 10**12, "maxConcurrent": 10**6}


# --- 1 and 2: the node in-process ---------------------------------------------------------------


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def node_app(home: Path, backend: str, settings: dict[str, Any], *, metered: bool) -> web.Application:
    gateway, node = LocalSigner.from_hex(GATEWAY_KEY), LocalSigner.from_hex(NODE_KEY)
    document = {"registry": {"static": {"gateways": [gateway.address]}}, "logger": {"verbosity": "warn"}}
    config = BackendConfig.model_validate(
        {"models": [{"name": "dev", "backends": [{"url": backend}], "healthCheck": {"enabled": False}}]}
    )
    app = create_app(
        Settings.model_validate({**document, **settings}),
        config,
        node,
        home,
        metrics=NodeMetrics(CollectorRegistry()),
    )
    if not metered:
        app.middlewares.remove(metering_middleware)
    return app


async def load(url: str, body: bytes, n: int, *, stream: bool) -> float:
    """Process CPU seconds per request for ``n`` requests, 16 at a time."""
    signer = FxnSigner(LocalSigner.from_hex(GATEWAY_KEY))
    node = LocalSigner.from_hex(NODE_KEY).address
    headers = [
        {**signer.headers("POST", PATH, body, node), "Content-Type": "application/json"} for _ in range(n)
    ]
    work = iter(headers)
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            for h in work:
                async with session.post(PATH, data=body, headers=h) as resp:
                    raw = await resp.read()
                    if resp.status != 200 or (stream and b"[DONE]" not in raw):
                        raise RuntimeError(f"{resp.status}: {raw[:200]!r}")

        start = time.process_time()
        await asyncio.gather(*(worker() for _ in range(16)))
        return (time.process_time() - start) / n


async def cpu_rows(rounds: int, n: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="fxn-bench-usage-") as tmp:
        backend_runner, backend = await serve(create_dev_backend_app())
        runners = []
        try:
            urls = {}
            for name, with_metering in (("plain", False), ("metered", True)):
                home = Path(tmp) / name
                home.mkdir()
                settings = {"limits": {"default": HIGH}} if with_metering else {}
                runner, urls[name] = await serve(node_app(home, backend, settings, metered=with_metering))
                runners.append(runner)
            for label, body, stream in (("chat", CHAT, False), ("SSE (16 tokens)", STREAM, True)):
                for url in urls.values():
                    await load(url, body, 200, stream=stream)  # warm-up
                samples: dict[str, list[float]] = {"plain": [], "metered": []}
                for _ in range(rounds):
                    for name, url in urls.items():
                        samples[name].append(await load(url, body, n, stream=stream) * 1e6)
                diffs = [m - p for p, m in zip(samples["plain"], samples["metered"], strict=True)]
                plain, metered = statistics.median(samples["plain"]), statistics.median(samples["metered"])
                rows.append((f"{label}: plain node, process CPU µs/request", f"{plain:.1f}"))
                rows.append((f"{label}: metered + limits (memory)", f"{metered:.1f}"))
                spread = f"{min(diffs):.1f} .. {max(diffs):.1f}"
                rows.append(
                    (
                        f"{label}: metering + limits cost (median diff)",
                        f"{statistics.median(diffs):.1f}  ({spread})",
                    )
                )
        finally:
            for runner in runners:
                await runner.cleanup()
            await backend_runner.cleanup()
    return rows


async def redis_calls(url: str, n: int, redis: Any) -> float:
    before = await redis.info("commandstats")
    await load(url, CHAT, n, stream=False)
    after = await redis.info("commandstats")

    # The node talks to Redis through scripts only: each EVALSHA (or EVAL) is one round trip; the
    # commands the scripts run inside Redis are counted by commandstats too, and are not round trips.
    def calls(stats: dict[str, dict[str, int]]) -> int:
        return sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))

    return float(calls(after) - calls(before)) / n


async def redis_rows(n: int) -> list[tuple[str, str]]:
    from redis.asyncio import Redis

    rows: list[tuple[str, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="fxn-bench-usage-") as tmp,
        RedisServer(Path(tmp) / "redis") as server,
    ):
        client = Redis.from_url(server.url)
        backend_runner, backend = await serve(create_dev_backend_app())
        try:
            cases: tuple[tuple[str, dict[str, int]], ...] = (
                ("no budgets", {}),
                ("requestsPerMinute only", {"requestsPerMinute": 10**9}),
                ("all three budgets", HIGH),
            )
            for label, limits in cases:
                home = Path(tmp) / label.replace(" ", "-")
                home.mkdir()
                settings = {
                    "nonceCache": {"backend": "redis", "redisUrl": server.url},
                    "limits": {"default": limits},
                }
                runner, url = await serve(node_app(home, backend, settings, metered=True))
                try:
                    await load(url, CHAT, 50, stream=False)
                    start = time.perf_counter()
                    calls = await redis_calls(url, n, client)
                    wall = (time.perf_counter() - start) / n * 1e6
                finally:
                    await runner.cleanup()
                rows.append(
                    (
                        f"Redis round trips (script calls) per request, {label}",
                        f"{calls:.2f}  (wall {wall:.0f} µs/req at 16 conc.)",
                    )
                )
        finally:
            await backend_runner.cleanup()
            await client.aclose()
    return rows


# --- 1b: the metering path alone, without HTTP --------------------------------------------------

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-0",
        "object": "chat.completion",
        "created": 1,
        "model": "dev",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "word " * 16}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 16, "total_tokens": 17},
    }
)


async def path_rows(n: int, rounds: int) -> list[tuple[str, str]]:
    """What metering adds to a request, on the real objects: the gate's claim with budgets instead of
    the nonce claim, and the metering middleware (meter, usage of the answer, record, settlement)
    around a handler that does the proxy's and relay's share (model, usage of the answer body)."""
    from aiohttp.test_utils import make_mocked_request

    from function_node.node.caller import ADMISSION, Caller, set_caller
    from function_node.node.context import CONTEXT, NodeContext
    from function_node.node.meter import meter_of
    from function_node.node.nonces import MemoryNonceStore
    from function_node.registry.directory import CallerDirectory

    gateway = LocalSigner.from_hex(GATEWAY_KEY)
    address = gateway.address.lower()
    caller = Caller(address, None, "n", CHAT, "0" * 64, "v2")

    def context(limits: dict[str, int]) -> NodeContext:
        settings = Settings.model_validate({"limits": {"default": limits}})
        nonces = MemoryNonceStore(ttl=600.0, max_entries=10**8)
        return NodeContext(
            settings, Path("/tmp"), gateway, CallerDirectory(), nonces, NodeMetrics(CollectorRegistry())
        )

    async def handler(request: web.Request) -> web.StreamResponse:
        meter = meter_of(request)
        if meter is not None:  # what the proxy handler and the relay do for the meter
            meter.model = "dev"
            meter.take_json(ANSWER)
        return web.Response(body=ANSWER, content_type="application/json")

    # One request object per run, reused (its keys are set again each time): building one with
    # make_mocked_request costs ~100 µs of unittest.mock, which would drown what is measured.
    async def plain(k: int, ctx: NodeContext, request: web.Request) -> None:
        for i in range(k):
            await ctx.nonces.claim(address, f"p{i}")
            await handler(request)

    async def metered(k: int, ctx: NodeContext, request: web.Request) -> None:
        for i in range(k):
            admission = await ctx.gate.claim(address, f"m{i}", limited=True)
            assert admission is not None
            request[ADMISSION] = admission
            await metering_middleware(request, handler)

    def request_for(ctx: NodeContext) -> web.Request:
        app = web.Application()
        app[CONTEXT] = ctx
        request = make_mocked_request("POST", PATH, app=app)
        set_caller(request, caller)
        return request

    samples: dict[str, list[float]] = {}
    for label, limits in (("no budgets", {}), ("all three budgets", HIGH)):
        for _ in range(rounds):
            ctx_a, ctx_b = context({}), context(limits)
            start = time.process_time()
            await plain(n, ctx_a, request_for(ctx_a))
            base = time.process_time() - start
            start = time.process_time()
            await metered(n, ctx_b, request_for(ctx_b))
            samples.setdefault(label, []).append((time.process_time() - start - base) / n * 1e6)
    rows = [
        (f"metering path alone, memory store, {k}: CPU µs/request", f"{statistics.median(v):.1f}")
        for k, v in samples.items()
    ]
    tap_us = _tap_us(n)
    rows.append(("stream usage tap, node asked (strip), per event chunk: CPU µs", f"{tap_us[0]:.2f}"))
    rows.append(("stream usage tap, client asked (relay as is), per event chunk: CPU µs", f"{tap_us[1]:.2f}"))
    return rows


def _tap_us(n: int) -> tuple[float, float]:
    from function_node.node.usage_parse import StreamUsageTap

    event = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"dev",'
        b'"choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}\n\n'
    )
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":16}}\n\n'
    chunks = [event] * 16 + [usage, b"data: [DONE]\n\n"]
    out = []
    for strip in (True, False):
        streams = max(n // 20, 1)
        start = time.process_time()
        for _ in range(streams):
            tap = StreamUsageTap(strip=strip)
            for chunk in chunks:
                tap.feed(chunk)
            tap.finish()
        out.append((time.process_time() - start) / (streams * len(chunks)) * 1e6)
    return out[0], out[1]


# --- 3: the ledger --------------------------------------------------------------------------------


def record_us(n: int) -> float:
    recorder = UsageRecorder(NodeMetrics(CollectorRegistry()), UsageLedger(Path("/nonexistent")))
    callers = [f"0x{i:040x}" for i in range(200)]
    usage = Usage(12, 16)
    start = time.process_time()
    for i in range(n):
        recorder.record(callers[i % 200], "dev", "2xx", usage, 0.01)
    return (time.process_time() - start) / n * 1e6


def one_second(keys: int, rate: int = 5000) -> list[tuple[tuple[int, str, str], list[float]]]:
    hour = int(time.time() // HOUR) * HOUR
    per_key = rate // keys
    return [
        ((hour, f"0x{i // 2:040x}", f"model-{i % 2}"), [per_key, 0, 0, 0, 12 * per_key, 16 * per_key, 0, 0.1])
        for i in range(keys)
    ]


def write_seconds(path: str, keys: int, seconds: int) -> list[float]:
    ledger = UsageLedger(Path(path)).open()
    times = []
    for _ in range(seconds):
        batch = one_second(keys)
        start = time.perf_counter()
        ledger.add(batch)
        times.append(time.perf_counter() - start)
    ledger.close()
    return times


def _writer(path: str, keys: int, seconds: int, out: Any) -> None:
    out.put(write_seconds(path, keys, seconds))


def ledger_rows(n: int) -> list[tuple[str, str]]:
    rows = [("UsageRecorder.record (200 callers), CPU µs/call", f"{record_us(n):.2f}")]
    with tempfile.TemporaryDirectory(prefix="fxn-bench-ledger-") as tmp:
        for keys in (400, 5000):
            times = write_seconds(str(Path(tmp) / f"one-{keys}.sqlite"), keys, 5)
            rows.append(
                (
                    f"one second at 5,000 req/s, {keys} rows: write ms (median of 5)",
                    f"{statistics.median(times) * 1e3:.1f}",
                )
            )
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        path = str(Path(tmp) / "shared.sqlite")
        UsageLedger(Path(path)).open().close()
        procs = [context.Process(target=_writer, args=(path, 5000, 5, queue)) for _ in range(2)]
        for proc in procs:
            proc.start()
        results = [queue.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(60)
        worst = max(max(r) for r in results)
        median = statistics.median([t for r in results for t in r])
        rows.append(
            (
                "2 processes, 5,000 rows each per batch, one file: write ms",
                f"median {median * 1e3:.1f}, worst {worst * 1e3:.1f}",
            )
        )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    from function_node.logs import configure_logging

    configure_logging("warn", "json")  # the request lines would cost both cases alike, and add noise
    rows = await path_rows(args.requests * 10, args.rounds)
    rows += await cpu_rows(args.rounds, args.requests)
    rows += await redis_rows(args.requests // 2)
    rows += ledger_rows(200_000)
    print(f"command: .venv/bin/python bench/usage.py --rounds {args.rounds} --requests {args.requests}")
    print(f"{'what':<64} value")
    for name, value in rows:
        print(f"{name:<64} {value}")


if __name__ == "__main__":
    import uvloop

    sys.setrecursionlimit(10_000)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
