"""Reads that time out must not break later reads: web3's HTTP provider guards its session cache with a
process-wide lock taken through a thread pool, and a call cancelled while it waits for that lock left
the lock held, so every later read in the process hung (seen as registries whose first refresh never
ended). The client stops waiting at its timeout but lets the call itself finish."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from function_node.chain.client import ChainClient
from function_node.devnet.process import free_port
from function_node.errors import ChainError

pytestmark = pytest.mark.integration


class _Rpc:
    """A JSON-RPC endpoint answering eth_chainId after ``delay`` seconds."""

    def __init__(self) -> None:
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        call = await request.json()
        await asyncio.sleep(self.delay)
        return web.json_response({"jsonrpc": "2.0", "id": call["id"], "result": "0x7a69"})


def _open_sessions() -> set[int]:
    gc.collect()
    return {id(o) for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed}


@pytest.fixture
async def rpc() -> AsyncIterator[tuple[_Rpc, str]]:
    endpoint = _Rpc()
    app = web.Application()
    app.router.add_post("/", endpoint.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield endpoint, f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_reads_cancelled_by_their_timeout_leave_later_reads_working(rpc: tuple[_Rpc, str]) -> None:
    endpoint, url = rpc
    endpoint.delay = 0.5
    before = _open_sessions()
    clients = [ChainClient([url], timeout=0.005, retries=0) for _ in range(3)]
    try:
        # Thirty concurrent reads through three providers contend for web3's session lock; every one
        # times out (5 ms against a 0.5 s answer), most while still waiting for that lock.
        outcomes = await asyncio.gather(
            *(client.chain_id() for client in clients for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(o, ChainError) for o in outcomes), outcomes
    finally:
        for client in clients:
            await client.close()
    # Closed at once, while calls abandoned at their timeout may still wait for web3's lock: close()
    # waits for them, or one would open a session after the sessions were closed, and leak it.
    await asyncio.sleep(1.0)
    assert _open_sessions() - before == set()
    endpoint.delay = 0.0
    async with asyncio.timeout(5), ChainClient([url], timeout=2.0, retries=0) as fresh:
        assert await fresh.chain_id() == 31337  # web3's lock is the process's, not the client's


async def test_a_read_cancelled_from_outside_leaves_later_reads_working(rpc: tuple[_Rpc, str]) -> None:
    endpoint, url = rpc
    endpoint.delay = 0.3
    client = ChainClient([url], timeout=5.0, retries=0)
    try:
        reads = [asyncio.ensure_future(client.chain_id()) for _ in range(6)]
        await asyncio.sleep(0)
        for read in reads[::2]:  # as a node's shutdown cancels a refresh in flight
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        endpoint.delay = 0.0
        async with asyncio.timeout(5):
            assert await client.chain_id() == 31337
    finally:
        await client.close()
