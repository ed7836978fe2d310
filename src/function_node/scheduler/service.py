"""``fxn scheduler run`` as a library call: open the store, the HTTP session, the metrics listener and
the node source, run rounds until stopped, and close everything in ``finally``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from function_node.client import FxnSigner
from function_node.scheduler.config import SchedulerConfig
from function_node.scheduler.discovery import registry_node_source
from function_node.scheduler.metrics import SchedulerMetrics
from function_node.scheduler.runner import RoundReport, Scheduler
from function_node.scheduler.store import SchedulerStore
from function_node.signing import LocalSigner

__all__ = ["registry_node_source", "serve"]

_VERIFY_THREADS: Final = 2


@contextlib.asynccontextmanager
async def _metrics_listener(address: str, metrics: SchedulerMetrics) -> AsyncIterator[None]:
    if not address:
        yield
        return
    host, port = address.rsplit(":", 1)

    async def handle(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, int(port)).start()
        yield
    finally:
        await runner.cleanup()


async def serve(
    config: SchedulerConfig,
    signer: LocalSigner,
    *,
    rounds: int | None = None,
    on_round: Callable[[RoundReport, SchedulerStore], None] | None = None,
    stop: asyncio.Event | None = None,
    metrics: SchedulerMetrics | None = None,
) -> list[RoundReport]:
    """Run rounds until SIGINT/SIGTERM (or ``stop``), or ``rounds`` of them; returns those reports."""
    stop = stop or asyncio.Event()
    metrics = metrics or SchedulerMetrics()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    store = SchedulerStore(config.database_path)
    executor = ThreadPoolExecutor(_VERIFY_THREADS, thread_name_prefix="fxn-verify")
    try:
        async with (
            aiohttp.ClientSession() as session,
            _metrics_listener(config.metrics.listen_address, metrics),
        ):
            scheduler = Scheduler(
                config,
                signer=FxnSigner(signer),
                store=store,
                metrics=metrics,
                session=session,
                executor=executor,
                nodes=registry_node_source(config),
            )
            return await scheduler.run_forever(
                stop, rounds, None if on_round is None else (lambda report: on_round(report, store))
            )
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        store.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
