"""The node's GPU gauges are refreshed between IDENTITY challenges, and only where NVML exists.

There is no NVIDIA driver here, so NVML is a fake ``pynvml`` module whose memory figure grows on every
read (the tests say so in their names); the aiohttp app, its lifespan and the Prometheus registry are
real.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import generate_latest

from function_node.challenges.gpu_stats import update_gpu_metrics
from function_node.metrics import NodeMetrics
from function_node.node.context import CONTEXT
from function_node.node.gpu_metrics import GPU_REFRESH_TASK, gpu_metrics_ctx
from function_node.signing import LocalSigner
from tests.fixtures.auth import make_context
from tests.fixtures.common import DEV_KEYS

MIB = 1 << 20


class FakeNvml:
    """A one-GPU ``pynvml`` stand-in: each read reports 1 MiB more in use than the one before."""

    def __init__(self) -> None:
        self.reads = 0
        self.changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def __call__(self) -> SimpleNamespace:
        return SimpleNamespace(
            nvmlInit=self._init,
            nvmlShutdown=lambda: None,
            nvmlSystemGetDriverVersion=lambda: "550.54.15",
            nvmlDeviceGetCount=lambda: 1,
            nvmlDeviceGetHandleByIndex=lambda i: i,
            nvmlDeviceGetName=lambda h: "NVIDIA H100 80GB HBM3",
            nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(
                total=80 * 1024 * MIB, used=self.reads * MIB, free=(80 * 1024 - self.reads) * MIB
            ),
            nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=25, memory=5),
            nvmlDeviceGetUUID=lambda h: "GPU-0",
            nvmlDeviceGetPciInfo=lambda h: SimpleNamespace(busId=b"00000000:18:00.0"),
            nvmlDeviceGetSerial=lambda h: "SN0",
        )

    def notify(self) -> None:
        """Wake the test; called from the refresh thread."""
        self._loop.call_soon_threadsafe(self.changed.set)

    def _init(self) -> None:
        self.reads += 1
        self.notify()


def no_nvml() -> Any:
    raise ImportError("libnvidia-ml.so.1 not found")


LABELS = {"gpu": "0", "name": "NVIDIA H100 80GB HBM3"}


def used_bytes(metrics: NodeMetrics) -> float | None:
    return metrics.registry.get_sample_value("fxn_gpu_memory_used_bytes", LABELS)


def gpu_lines(metrics: NodeMetrics) -> list[str]:
    """The GPU samples exactly as a scrape of /metrics would render them."""
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines() if line.startswith("fxn_gpu_") and "{" in line]


async def start_app(
    metrics: NodeMetrics, ctx: Callable[[web.Application], AsyncIterator[None]]
) -> tuple[web.Application, TestServer]:
    app = web.Application()

    async def context(app: web.Application) -> AsyncIterator[None]:
        app[CONTEXT] = make_context(LocalSigner.from_hex(DEV_KEYS[2]), metrics, gateways=[], schedulers=[])
        yield

    app.cleanup_ctx.extend([context, ctx])
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return app, server


async def test_with_fake_nvml_gauges_refresh_without_a_challenge_and_stop_on_exit(
    metrics: NodeMetrics,
) -> None:
    nvml = FakeNvml()
    app, server = await start_app(metrics, functools.partial(gpu_metrics_ctx, nvml=nvml, interval_s=0.01))
    try:
        assert used_bytes(metrics) is not None  # read once at start-up, before any scrape
        while nvml.reads < 3:  # no IDENTITY challenge is ever sent: the task alone reads NVML
            nvml.changed.clear()
            await nvml.changed.wait()
        await asyncio.sleep(0)
        assert (used_bytes(metrics) or 0) >= 2 * MIB
        assert metrics.registry.get_sample_value("fxn_gpu_utilization_ratio", LABELS) == 0.25
        task = app[GPU_REFRESH_TASK]
        assert not task.done()
    finally:
        await server.close()
    assert task.cancelled()


async def test_without_nvml_no_task_is_started_and_no_gauge_is_set(metrics: NodeMetrics) -> None:
    calls: list[str] = []

    def absent() -> Any:
        calls.append("import")
        return no_nvml()

    app, server = await start_app(metrics, functools.partial(gpu_metrics_ctx, nvml=absent))
    try:
        assert GPU_REFRESH_TASK not in app
        assert calls == ["import"]  # asked once at start-up, never polled again
        assert gpu_lines(metrics) == []
    finally:
        await server.close()


async def test_update_gpu_metrics_with_fake_nvml_and_without_nvml(metrics: NodeMetrics) -> None:
    assert update_gpu_metrics(metrics, no_nvml) is False
    assert gpu_lines(metrics) == []
    nvml = FakeNvml()
    assert update_gpu_metrics(metrics, nvml) is True
    assert sorted(gpu_lines(metrics)) == [
        'fxn_gpu_memory_total_bytes{gpu="0",name="NVIDIA H100 80GB HBM3"} 8.589934592e+10',
        'fxn_gpu_memory_used_bytes{gpu="0",name="NVIDIA H100 80GB HBM3"} 1.048576e+06',
        'fxn_gpu_utilization_ratio{gpu="0",name="NVIDIA H100 80GB HBM3"} 0.25',
    ]


async def test_a_failing_read_keeps_the_last_figures_with_fake_nvml(metrics: NodeMetrics) -> None:
    nvml = FakeNvml()
    failures: list[str] = []

    def lost_after_start() -> Any:
        # The start-up read succeeds; every refresh after it fails, as if the GPU fell off the bus.
        if nvml.reads == 0:
            return nvml()
        failures.append("lost")
        nvml.notify()
        raise RuntimeError("NVML_ERROR_GPU_IS_LOST")

    app, server = await start_app(
        metrics, functools.partial(gpu_metrics_ctx, nvml=lost_after_start, interval_s=0.01)
    )
    try:
        while len(failures) < 2:
            nvml.changed.clear()
            await nvml.changed.wait()
        assert used_bytes(metrics) == 1 * MIB  # the start-up figure, kept
        assert not app[GPU_REFRESH_TASK].done()  # the task survives failed reads
    finally:
        await server.close()
