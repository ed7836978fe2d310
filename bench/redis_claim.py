"""CPU of one nonce claim: the memory store against the Redis store, with redis-py's pure-Python reply
parser and with hiredis (when installed), one claim at a time and 64 at once.

    .venv/bin/python bench/redis_claim.py [--rounds 5] [--claims 5000]

Starts a throw-away redis-server on a free loopback port. The figure is this process's CPU time
(``time.process_time``) per claim, so the Redis server's own work is not in it: it is what a claim costs
the node's worker, the part that competes with the requests for the worker's core. Medians over rounds,
the cases interleaved in each round; uvloop, as in the node. hiredis is not a dependency: install it to
add its row.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from function_node.devnet.redis_server import RedisServer
from function_node.node.nonces import MemoryNonceStore, NonceStore
from function_node.node.nonces_redis import RedisNonceStore

ADDRESS = "0x" + "ab" * 20


async def claim_cpu(store: NonceStore, claims: int, concurrency: int, tag: str) -> float:
    """CPU µs per claim of ``claims`` fresh nonces, ``concurrency`` in flight at a time."""
    nonces = iter(f"{tag}-{i}" for i in range(claims))

    async def lane() -> None:
        for nonce in nonces:
            if not await store.claim(ADDRESS, nonce):
                raise SystemExit(f"nonce {nonce} was refused as a replay")

    await store.claim(ADDRESS, f"{tag}-warm")  # connects (and loads the script) outside the timing
    start = time.process_time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return (time.process_time() - start) / claims * 1e6


def python_parser(store: RedisNonceStore) -> RedisNonceStore:
    from redis._parsers import _AsyncRESP2Parser

    store.redis.connection_pool.connection_kwargs["parser_class"] = _AsyncRESP2Parser
    return store


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--claims", type=int, default=5000)
    args = parser.parse_args()
    from redis.utils import HIREDIS_AVAILABLE

    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as redis:
        makers: dict[str, Callable[[], NonceStore]] = {
            "memory": lambda: MemoryNonceStore(ttl=600.0, max_entries=10_000_000),
            "redis, Python parser": lambda: python_parser(RedisNonceStore(redis.url, ttl=600.0)),
        }
        if HIREDIS_AVAILABLE:
            makers["redis, hiredis"] = lambda: RedisNonceStore(redis.url, ttl=600.0)
        results: dict[tuple[str, int], list[float]] = {}
        for rnd in range(args.rounds):
            for name, make in makers.items():
                for concurrency in (1, 64):
                    store = make()
                    tag = f"{rnd}-{name}-{concurrency}"
                    cost = await claim_cpu(store, args.claims, concurrency, tag)
                    results.setdefault((name, concurrency), []).append(cost)
                    if isinstance(store, RedisNonceStore):
                        await store.redis.aclose()
    print(f"{'store':<22} {'in flight':>9} {'CPU us/claim':>13}")
    for (name, concurrency), costs in results.items():
        print(f"{name:<22} {concurrency:>9} {statistics.median(costs):13.1f}")


if __name__ == "__main__":
    import uvloop  # the node's loop

    uvloop.run(main())
