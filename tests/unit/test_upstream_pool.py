"""The upstream pool: Go's maxIdleConns meaning (idle capped, in-use unbounded)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from function_node.node.upstream import IdleCappedConnector

IN_FLIGHT = 12
MAX_IDLE = 3


async def test_in_use_connections_are_not_capped_and_idle_ones_are() -> None:
    arrived = 0
    all_arrived = asyncio.Event()

    async def handler(_request: web.Request) -> web.Response:
        nonlocal arrived
        arrived += 1
        if arrived == IN_FLIGHT:
            all_arrived.set()
        # Each request waits until all are in flight at once: a cap on connections in use below
        # IN_FLIGHT would leave this waiting forever (and the test would time out).
        await asyncio.wait_for(all_arrived.wait(), timeout=10)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestServer(app) as server:
        connector = IdleCappedConnector(max_idle=MAX_IDLE, keepalive_timeout=30)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> str:
                async with session.get(server.make_url("/")) as resp:
                    return await resp.text()

            answers = await asyncio.gather(*(one() for _ in range(IN_FLIGHT)))
            assert answers == ["ok"] * IN_FLIGHT
            assert connector.idle_count() == MAX_IDLE

            # A further request reuses a parked connection (the barrier is already open).
            assert await one() == "ok"
            assert connector.idle_count() == MAX_IDLE
