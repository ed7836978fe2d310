"""Keep the GPU gauges (SPEC §10) fresh between IDENTITY challenges.

Without this, ``fxn_gpu_*`` only moved when a scheduler asked IDENTITY, so a scrape could show
minutes-old memory figures. Where NVML answers at start-up, a task re-reads it every
``REFRESH_INTERVAL_S`` (in a thread: NVML calls block); where it does not (no NVIDIA driver, no
pynvml), no task is started and nothing is polled. Register ``gpu_metrics_ctx`` in ``cleanup_ctx``
after the lifespan that sets ``app[CONTEXT]``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from aiohttp import web

from function_node.challenges.gpu_stats import import_nvml, update_gpu_metrics
from function_node.logs import get_logger
from function_node.metrics import NodeMetrics
from function_node.node.context import CONTEXT

__all__ = ["GPU_REFRESH_TASK", "REFRESH_INTERVAL_S", "gpu_metrics_ctx"]

REFRESH_INTERVAL_S: Final = 15.0
# The running refresh task, present only while NVML is being polled (tests and /debug look at it).
GPU_REFRESH_TASK: Final = web.AppKey("fxn_gpu_refresh_task", asyncio.Task[None])


async def _refresh_forever(metrics: NodeMetrics, nvml: Callable[[], Any], interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        # A failed read (driver reloading, GPU reset) keeps the last figures and tries again later.
        await asyncio.to_thread(update_gpu_metrics, metrics, nvml)


async def gpu_metrics_ctx(
    app: web.Application,
    *,
    nvml: Callable[[], Any] = import_nvml,
    interval_s: float = REFRESH_INTERVAL_S,
) -> AsyncIterator[None]:
    """aiohttp ``cleanup_ctx``: read NVML once now; if it answered, refresh until the app stops."""
    metrics = app[CONTEXT].metrics
    if not await asyncio.to_thread(update_gpu_metrics, metrics, nvml):
        get_logger("fxn.node").debug("gpu_metrics_off", reason="NVML is not available")
        yield
        return
    task = asyncio.create_task(_refresh_forever(metrics, nvml, interval_s), name="fxn-gpu-metrics")
    app[GPU_REFRESH_TASK] = task
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
