"""Per-request cost of authentication: each step of SPEC §5 alone, then whole requests over HTTP.

Run:  .venv/bin/python bench/auth.py [--rounds 7] [--requests 2000]

Prints a table of medians (µs per request) over ``--rounds`` rounds. The Redis rows start a
throw-away redis-server on a free loopback port. The HTTP rows send sequential requests over one
keep-alive connection to an in-process aiohttp server: the same echo handler behind the auth
middleware and, as the baseline, on an unprotected path; their difference is the middleware's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from function_node.client import FxnSigner
from function_node.config.settings import Settings
from function_node.devnet.redis_server import RedisServer
from function_node.metrics import NodeMetrics
from function_node.node.app import node_application
from function_node.node.caller import caller_of
from function_node.node.context import CONTEXT, NodeContext
from function_node.node.nonces import MemoryNonceStore, NonceStore
from function_node.node.nonces_redis import RedisNonceStore
from function_node.protocol import legacy_message, parse_auth_headers, response_message
from function_node.registry.directory import CallerDirectory
from function_node.registry.static import StaticRegistry
from function_node.signing import LocalSigner, body_sha256, recover_address

KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",  # anvil dev key 0: gateway
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",  # anvil dev key 2: node
)
BODY = b'{"model":"m","messages":[{"role":"user","content":"' + b"x" * 400 + b'"}]}'


def per_op_us(fn: Callable[[int], None], n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(n)
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


async def per_op_us_async(fn: Callable[[int], Awaitable[None]], n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await fn(n)
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def micro(rounds: int, n: int) -> list[tuple[str, float]]:
    gateway, node = (LocalSigner.from_hex(k) for k in KEYS)
    signer = FxnSigner(gateway)
    headers = signer.headers("POST", "/v1/chat/completions", BODY)
    directory = CallerDirectory(
        gateways=[StaticRegistry("gw", [gateway.address, *(f"0x{i:040x}" for i in range(1, 1000))])],
        schedulers=[StaticRegistry("sc", [node.address])],
    )
    address = gateway.address.lower()
    message = legacy_message(body_sha256(BODY), headers["X-Timestamp"], headers["X-Nonce"])

    def parse(k: int) -> None:
        for _ in range(k):
            parse_auth_headers(headers)

    def lookup(k: int) -> None:
        for _ in range(k):
            directory.role_of(address)

    def body_hash(k: int) -> None:
        for _ in range(k):
            body_sha256(BODY)

    def recover(k: int) -> None:
        for _ in range(k):
            recover_address(message, headers["X-Signature"])

    def sign_response(k: int) -> None:
        for _ in range(k):
            node.sign(
                response_message(
                    node.address, gateway.address, body_sha256(BODY), "n", 200, body_sha256(b'{"ok":true}')
                )
            )

    return [
        ("parse 4 headers", per_op_us(parse, n, rounds)),
        ("registry lookup (1,000 gateways)", per_op_us(lookup, n, rounds)),
        (f"sha256 of a {len(BODY)}-byte body", per_op_us(body_hash, n, rounds)),
        ("signature recovery (coincurve)", per_op_us(recover, max(n // 10, 1), rounds)),
        ("response signature (sign)", per_op_us(sign_response, max(n // 10, 1), rounds)),
    ]


async def claims(store: NonceStore, rounds: int, n: int) -> float:
    counter = iter(range(10**9))

    async def claim(k: int) -> None:
        for _ in range(k):
            await store.claim("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", f"n{next(counter)}")

    return await per_op_us_async(claim, n, rounds)


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "len": len(caller_of(request).body)})


async def plain_echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"ok": True, "len": len(body)})


def make_app(store: NonceStore, gateway: LocalSigner, node: LocalSigner) -> web.Application:
    ctx = NodeContext(
        settings=Settings(),
        home=Path(tempfile.gettempdir()),
        signer=node,
        callers=CallerDirectory(gateways=[StaticRegistry("gw", [gateway.address])]),
        nonces=store,
        metrics=NodeMetrics(CollectorRegistry()),
    )
    app = node_application(ctx.settings, ctx.metrics)
    app[CONTEXT] = ctx
    app.router.add_post("/v1/echo", echo)
    app.router.add_post("/plain/echo", plain_echo)
    return app


async def http_rows(stores: dict[str, NonceStore], rounds: int, n: int) -> list[tuple[str, float]]:
    """Every variant runs once per round, back to back, so that load from other processes on the
    machine hits them alike; the middleware's cost is the median of the per-round differences."""
    gateway, node = (LocalSigner.from_hex(k) for k in KEYS)
    signer = FxnSigner(gateway)
    runners: list[web.AppRunner] = []
    sessions: dict[str, aiohttp.ClientSession] = {}
    try:
        for label, store in stores.items():
            runner = web.AppRunner(make_app(store, gateway, node), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
            sessions[label] = aiohttp.ClientSession(f"http://127.0.0.1:{runner.addresses[0][1]}")

        async def run(session: aiohttp.ClientSession, path: str, k: int) -> float:
            start = time.perf_counter()
            for _ in range(k):
                headers = signer.headers("POST", path, BODY, node.address)
                async with session.post(path, data=BODY, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{path} answered {resp.status}")
            return (time.perf_counter() - start) / k * 1e6

        samples: dict[str, list[float]] = {}
        for session in sessions.values():  # warm-up
            await run(session, "/v1/echo", 50)
            await run(session, "/plain/echo", 50)
        for _ in range(rounds):
            for label, session in sessions.items():
                base = await run(session, "/plain/echo", n)
                authed = await run(session, "/v1/echo", n)
                samples.setdefault(f"HTTP request, no auth (client signs) [{label}]", []).append(base)
                samples.setdefault(f"HTTP request, auth middleware [{label}]", []).append(authed)
                samples.setdefault(f"  middleware cost = difference [{label}]", []).append(authed - base)
    finally:
        for session in sessions.values():
            await session.close()
        for runner in runners:
            await runner.cleanup()
    return [(name, statistics.median(values)) for name, values in samples.items()]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    rows = micro(args.rounds, args.requests * 10)
    memory = MemoryNonceStore(ttl=600.0, max_entries=10_000_000)
    rows.append(("nonce claim, memory", await claims(memory, args.rounds, args.requests * 10)))
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as redis:
        store = RedisNonceStore(redis.url, ttl=600.0)
        try:
            rows.append(("nonce claim, redis (loopback)", await claims(store, args.rounds, args.requests)))
            stores: dict[str, NonceStore] = {
                "memory": MemoryNonceStore(ttl=600.0, max_entries=10_000_000),
                "redis": store,
            }
            rows += await http_rows(stores, args.rounds, args.requests)
        finally:
            await store.close()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{'step':<52} {'median µs/request':>18}")
    for name, value in rows:
        print(f"{name:<52} {value:>18.1f}")


if __name__ == "__main__":
    asyncio.run(main())
