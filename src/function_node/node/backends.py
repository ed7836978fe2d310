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
import os
import time
from collections.abc import Iterable, Mapping
from typing import Final

import aiohttp
from aiohttp import web

from function_node.config.backends import BackendConfig, BackendEndpoint, ModelConfig
from function_node.errors import ApiError, UpstreamError
from function_node.logs import get_logger
from function_node.metrics import NodeMetrics

__all__ = ["BACKENDS", "RETRY_AFTER_SECONDS", "Backend", "BackendPool", "BackendSet", "describe_failure"]

RETRY_AFTER_SECONDS: Final = 1
_HEALTHY_STATUS: Final = range(200, 400)


def describe_failure(exc: BaseException) -> str:
    """What went wrong talking to a backend, without its host or port (they stay out of logs, SPEC §10)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        # strerror can name the address ("Connect call failed ('10.0.0.5', 8000)"); the errno cannot.
        number = exc.os_error.errno
        return f"connection failed ({os.strerror(number) if number else type(exc.os_error).__name__})"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timed out"
    return type(exc).__name__


class Backend:
    """One upstream URL of one model, with its in-flight count and health.

    ``name`` (``<model>/<index in backend.yaml>``) is how the backend appears wherever an
    unauthenticated reader can see it (``/metrics``, ``/ready``, logs): URLs carry hosts, ports and
    sometimes tokens, so they stay in backend.yaml and the operator's own commands (SPEC §10).
    """

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
        "name",
        "seen_healthy",
        "ttfb_metric",
        "weight",
    )

    def __init__(
        self, model: str, index: int, endpoint: BackendEndpoint, headers: dict[str, str], metrics: NodeMetrics
    ) -> None:
        self.model = model
        self.in_flight = 0
        # Optimistic until the first health check says otherwise, so a node serves at once.
        self.healthy = True
        self.last_error = ""
        self.failed_checks = 0  # health checks failed in a row, since the last good one
        self.seen_healthy = False  # a health check has passed at least once
        self.configure(index, endpoint, headers, metrics)

    def configure(
        self, index: int, endpoint: BackendEndpoint, headers: dict[str, str], metrics: NodeMetrics
    ) -> None:
        """Take (new) settings of this backend; on a reload, requests in flight keep counting here."""
        old_name = getattr(self, "name", None)
        self.name = f"{self.model}/{index}"
        self.endpoint = endpoint
        self.base_url = endpoint.base_url
        self.headers = headers  # secrets resolved from the environment once, at load
        self.weight = endpoint.weight
        self.max_concurrency = endpoint.max_concurrency
        if old_name is not None and old_name != self.name:
            for family in (metrics.upstream_ttfb, metrics.upstream_latency, metrics.upstream_in_flight):
                with contextlib.suppress(KeyError):
                    family.remove(self.model, old_name)
        # Labelled children looked up once: labels() takes a lock and hashes on every call.
        self.ttfb_metric = metrics.upstream_ttfb.labels(self.model, self.name)
        self.latency_metric = metrics.upstream_latency.labels(self.model, self.name)
        self.in_flight_metric = metrics.upstream_in_flight.labels(self.model, self.name)
        self.in_flight_metric.set(self.in_flight)

    def error(self, metrics: NodeMetrics, kind: str) -> None:
        metrics.upstream_errors.labels(self.model, self.name, kind).inc()

    @property
    def full(self) -> bool:
        return self.max_concurrency > 0 and self.in_flight >= self.max_concurrency

    def as_status(self) -> dict[str, object]:
        return {
            "model": self.model,
            "backend": self.name,
            "healthy": self.healthy,
            "inFlight": self.in_flight,
        }


class BackendPool:
    """The backends of one model and the choice among them."""

    def __init__(
        self,
        config: ModelConfig,
        session: aiohttp.ClientSession,
        metrics: NodeMetrics,
        *,
        carried: Mapping[str, Backend] | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self.name = config.name
        self.metrics = metrics
        previous = carried or {}
        self.backends = []
        for index, endpoint in enumerate(config.backends):
            # A backend whose URL is unchanged by a reload is the same object, so the requests it is
            # serving stay counted against its maxConcurrency (and its health is kept).
            backend = previous.get(endpoint.base_url)
            if backend is None:
                backend = Backend(config.name, index, endpoint, endpoint.resolved_headers(), metrics)
            else:
                backend.configure(index, endpoint, endpoint.resolved_headers(), metrics)
            self.backends.append(backend)
        t = config.timeouts
        # sock_read bounds the wait for the first byte (and any later silence of the same length);
        # total bounds the whole exchange, streams included.
        self.timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.first_byte)
        for backend in self.backends:
            metrics.backend_healthy.labels(self.name, backend.name).set(1 if backend.healthy else 0)

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
                log.info("backend healthy", model=self.name, backend=backend.name)
            else:
                log.warning("backend unhealthy", model=self.name, backend=backend.name, error=error)
        backend.healthy = healthy
        backend.last_error = error
        self.metrics.backend_healthy.labels(self.name, backend.name).set(1 if healthy else 0)

    async def check(self, backend: Backend) -> None:
        """One health check: GET healthCheck.path under the backend's root.

        A good answer marks the backend healthy; a failure counts, and marks it unhealthy once
        ``healthCheck.unhealthyAfter`` checks in a row have failed. A backend no check has ever seen
        healthy gets no such grace: its first failure marks it (a server down at start is not busy).
        Redirects are never followed: the check sends the backend's credentials, which must not reach
        whatever host a redirect names (SPEC §6).
        """
        hc = self.config.health_check
        url = backend.base_url + hc.path
        try:
            async with self.session.get(
                url,
                headers=backend.headers,
                timeout=aiohttp.ClientTimeout(total=hc.timeout),
                allow_redirects=False,
            ) as resp:
                await resp.read()
                error = "" if resp.status in _HEALTHY_STATUS else f"health check answered {resp.status}"
        except TimeoutError:
            error = f"health check failed: no answer within {hc.timeout:g}s (healthCheck.timeout)"
        except aiohttp.ClientError as exc:
            error = f"health check failed: {describe_failure(exc)}"
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
                backend=backend.name,
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
        pools: dict[str, BackendPool] = {}
        for model in config.models:
            old = self.pools.get(model.name)
            carried = {b.base_url: b for b in old.backends} if old is not None else {}
            pools[model.name] = BackendPool(model, self.session, self.metrics, carried=carried)
        for task in list(self._tasks):
            task.cancel()
        kept = {(name, b.name) for name, pool in pools.items() for b in pool.backends}
        for name, pool in self.pools.items():
            for backend in pool.backends:
                if (name, backend.name) not in kept:
                    with contextlib.suppress(KeyError):
                        self.metrics.backend_healthy.remove(name, backend.name)
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
