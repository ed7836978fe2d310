"""Backend pools: which upstream serves the next request of a model.

One :class:`BackendPool` per model of backend.yaml. A request goes to the healthy backend with the
fewest requests in flight relative to its ``weight``; a backend at its ``maxConcurrency`` is skipped,
and when every healthy backend is full the node answers 429 with ``Retry-After``. A backend that
refuses a connection to a real request is marked unhealthy at once; the periodic health check marks it
unhealthy only after ``healthCheck.unhealthyAfter`` failed probes in a row (a busy server can miss one),
and one good probe brings it back.

:class:`BackendSet` holds the pools of the backend.yaml in force and swaps them on SIGHUP. Requests
already running keep the :class:`Backend` objects they acquired, so counts stay right across a swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Final

import aiohttp
from aiohttp import web

from function_node.config.backends import BackendConfig, BackendEndpoint, ModelConfig
from function_node.errors import ApiError, UpstreamError
from function_node.logs import get_logger
from function_node.metrics import NodeMetrics

__all__ = ["BACKENDS", "RETRY_AFTER_SECONDS", "Backend", "BackendPool", "BackendSet"]

RETRY_AFTER_SECONDS: Final = 1
_HEALTHY_STATUS: Final = range(200, 400)


class Backend:
    """One upstream URL of one model, with its in-flight count and health."""

    __slots__ = (
        "base_url",
        "endpoint",
        "failed_checks",
        "headers",
        "healthy",
        "in_flight",
        "in_flight_metric",
        "last_error",
        "latency_metric",
        "max_concurrency",
        "model",
        "seen_healthy",
        "ttfb_metric",
        "weight",
    )

    def __init__(
        self, model: str, endpoint: BackendEndpoint, headers: dict[str, str], metrics: NodeMetrics
    ) -> None:
        self.model = model
        self.endpoint = endpoint
        self.base_url = endpoint.base_url
        self.headers = headers  # secrets resolved from the environment once, at load
        self.weight = endpoint.weight
        self.max_concurrency = endpoint.max_concurrency
        self.in_flight = 0
        # Optimistic until the first health check says otherwise, so a node serves at once.
        self.healthy = True
        self.last_error = ""
        self.failed_checks = 0  # health checks failed in a row, since the last good one
        self.seen_healthy = False  # a health check has passed at least once
        # Labelled children looked up once: labels() takes a lock and hashes on every call.
        self.ttfb_metric = metrics.upstream_ttfb.labels(model, self.base_url)
        self.latency_metric = metrics.upstream_latency.labels(model, self.base_url)
        self.in_flight_metric = metrics.upstream_in_flight.labels(model, self.base_url)

    def error(self, metrics: NodeMetrics, kind: str) -> None:
        metrics.upstream_errors.labels(self.model, self.base_url, kind).inc()

    @property
    def full(self) -> bool:
        return self.max_concurrency > 0 and self.in_flight >= self.max_concurrency

    def as_status(self) -> dict[str, object]:
        return {
            "model": self.model,
            "url": self.base_url,
            "healthy": self.healthy,
            "inFlight": self.in_flight,
        }


class BackendPool:
    """The backends of one model and the choice among them."""

    def __init__(self, config: ModelConfig, session: aiohttp.ClientSession, metrics: NodeMetrics) -> None:
        self.config = config
        self.session = session
        self.name = config.name
        self.metrics = metrics
        self.backends = [Backend(config.name, b, b.resolved_headers(), metrics) for b in config.backends]
        t = config.timeouts
        # sock_read bounds the wait for the first byte (and any later silence of the same length);
        # total bounds the whole exchange, streams included.
        self.timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.first_byte)
        for backend in self.backends:
            metrics.backend_healthy.labels(self.name, backend.base_url).set(1)

    def acquire(self, exclude: Iterable[Backend] = ()) -> Backend:
        """The backend for the next request, its in-flight count taken; pair with :meth:`release`.

        Raises UpstreamError 503 when no backend (outside ``exclude``) is healthy, ApiError 429 when
        every healthy one is at its maxConcurrency.
        """
        best: Backend | None = None
        best_load = 0.0
        any_healthy = False
        for backend in self.backends:
            if not backend.healthy or backend in exclude:
                continue
            any_healthy = True
            if backend.full:
                continue
            load = backend.in_flight / backend.weight
            if best is None or load < best_load:
                best, best_load = backend, load
        if best is None:
            if any_healthy:
                raise ApiError(
                    429,
                    f"every backend of model {self.name!r} is at its maxConcurrency; retry shortly",
                    code="model_at_capacity",
                    type_="rate_limit_error",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            raise UpstreamError(503, f"no healthy backend for model {self.name!r}", code="no_healthy_backend")
        best.in_flight += 1
        best.in_flight_metric.inc()
        return best

    def release(self, backend: Backend) -> None:
        backend.in_flight -= 1
        backend.in_flight_metric.dec()

    def mark(self, backend: Backend, healthy: bool, error: str = "") -> None:
        if backend.healthy != healthy:
            log = get_logger("fxn.backends")
            if healthy:
                log.info("backend healthy", model=self.name, backend=backend.base_url)
            else:
                log.warning("backend unhealthy", model=self.name, backend=backend.base_url, error=error)
        backend.healthy = healthy
        backend.last_error = error
        self.metrics.backend_healthy.labels(self.name, backend.base_url).set(1 if healthy else 0)

    async def check(self, backend: Backend) -> None:
        """One health check: GET healthCheck.path under the backend's root.

        A good answer marks the backend healthy; a failure counts, and marks it unhealthy once
        ``healthCheck.unhealthyAfter`` checks in a row have failed. A backend no check has ever seen
        healthy gets no such grace: its first failure marks it (a server down at start is not busy)."""
        hc = self.config.health_check
        url = backend.base_url + hc.path
        try:
            async with self.session.get(
                url, headers=backend.headers, timeout=aiohttp.ClientTimeout(total=hc.timeout)
            ) as resp:
                await resp.read()
                error = "" if resp.status in _HEALTHY_STATUS else f"health check answered {resp.status}"
        except TimeoutError:
            error = f"health check failed: no answer within {hc.timeout:g}s (healthCheck.timeout)"
        except aiohttp.ClientError as exc:
            error = f"health check failed: {type(exc).__name__}: {exc}"
        if not error:
            backend.failed_checks = 0
            backend.seen_healthy = True
            self.mark(backend, True)
            return
        backend.failed_checks += 1
        if backend.failed_checks >= hc.unhealthy_after or not backend.healthy or not backend.seen_healthy:
            self.mark(backend, False, error)
        else:
            get_logger("fxn.backends").warning(
                "health check failed",
                model=self.name,
                backend=backend.base_url,
                error=error,
                failed=backend.failed_checks,
                unhealthy_after=hc.unhealthy_after,
            )

    async def run_health_checks(self) -> None:
        """Check every backend now and then every ``healthCheck.interval``, until cancelled."""
        interval = self.config.health_check.interval
        while True:
            started = time.monotonic()
            await asyncio.gather(*(self.check(b) for b in self.backends))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


class BackendSet:
    """The pools of the backend.yaml in force, with their health-check tasks."""

    def __init__(self, config: BackendConfig, session: aiohttp.ClientSession, metrics: NodeMetrics) -> None:
        self.session = session
        self.metrics = metrics
        self.config = config
        self.pools: dict[str, BackendPool] = {m.name: BackendPool(m, session, metrics) for m in config.models}
        self._tasks: set[asyncio.Task[None]] = set()

    def pool(self, model: str) -> BackendPool | None:
        return self.pools.get(model)

    def start(self) -> None:
        for pool in self.pools.values():
            if pool.config.health_check.enabled:
                task = asyncio.create_task(pool.run_health_checks(), name=f"health:{pool.name}")
                # The set keeps a reference until the task is done, a cancelled one included.
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def replace(self, config: BackendConfig) -> None:
        """Serve ``config`` from now on (SIGHUP). Raises ConfigError, keeping the old pools, if a
        referenced environment variable is unset."""
        pools = {m.name: BackendPool(m, self.session, self.metrics) for m in config.models}
        for task in list(self._tasks):
            task.cancel()
        for name, pool in self.pools.items():
            for backend in pool.backends:
                if name not in pools or backend.base_url not in {b.base_url for b in pools[name].backends}:
                    with contextlib.suppress(KeyError):
                        self.metrics.backend_healthy.remove(name, backend.base_url)
        self.config = config
        self.pools = pools
        self.start()

    def statuses(self) -> list[dict[str, object]]:
        return [b.as_status() for pool in self.pools.values() for b in pool.backends]

    def any_healthy(self) -> bool:
        return any(b.healthy for pool in self.pools.values() for b in pool.backends)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


BACKENDS: Final = web.AppKey("fxn_backends", BackendSet)
