"""Every Prometheus collector of the node (SPEC §10), created against a given registry.

No collector lives at module level: each app (and each test) builds its own :class:`NodeMetrics`
with a fresh ``CollectorRegistry`` and reads samples back with ``registry.get_sample_value``.

With ``--workers N`` each worker process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus-client's multiprocess mode, chosen by that variable when the worker starts), and every
worker's ``/metrics`` reads them all (:func:`exposition_registry`), so a scrape that reaches any worker
sees the whole node and counters never go backwards. Each gauge says how its workers' values combine
(``multiprocess_mode``): requests in flight add up; a backend is healthy only if every live worker's
checks say so; the rest is the largest or the most recent value.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "MULTIPROC_DIR_ENV", "NodeMetrics", "exposition_registry", "multiprocess_mode"]

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def multiprocess_mode() -> Iterator[Path]:
    """Multiprocess mode for this process and the workers it starts (they inherit the environment).

    A fresh directory, removed afterwards, unless the operator set ``PROMETHEUS_MULTIPROC_DIR`` (that
    one is used and kept; prometheus-client expects it emptied between runs).
    """
    given = os.environ.get(MULTIPROC_DIR_ENV)
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="fxn-metrics-"))
    os.environ[MULTIPROC_DIR_ENV] = str(directory)
    from prometheus_client import values

    # prometheus-client picks its value class when first imported; this process imported it before
    # it knew there would be workers, so it picks again (metrics created from now on use the files).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # untyped upstream
    try:
        yield directory
    finally:
        if not given:
            os.environ.pop(MULTIPROC_DIR_ENV, None)
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # untyped upstream
            shutil.rmtree(directory, ignore_errors=True)


def exposition_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What ``/metrics`` serves: ``own`` in one process, else every worker's values from the shared dir."""
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if not directory:
        return own
    from prometheus_client import multiprocess

    shared = CollectorRegistry()
    multiprocess.MultiProcessCollector(shared, path=directory)  # type: ignore[no-untyped-call]  # untyped upstream
    return shared


LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class NodeMetrics:
    """The node's collectors. Label values are bounded: routes are templates, models come from config."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "fxn_requests_total", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.request_latency = Histogram(
            "fxn_request_duration_seconds",
            "Time from request start to the last byte answered",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter(
            "fxn_auth_failures_total", "Requests refused by authentication", ["reason"], registry=r
        )
        self.upstream_latency = Histogram(
            "fxn_upstream_duration_seconds",
            "Upstream request duration, to the last byte",
            ["model", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_ttfb = Histogram(
            "fxn_upstream_time_to_first_byte_seconds",
            "Time to the upstream's first body byte",
            ["model", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_in_flight = Gauge(
            "fxn_upstream_in_flight",
            "Requests in flight per backend",
            ["model", "backend"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.upstream_errors = Counter(
            "fxn_upstream_errors_total",
            "Upstream failures by kind (connect, timeout, first_byte_timeout, status_5xx, midstream, ...)",
            ["model", "backend", "kind"],
            registry=r,
        )
        self.backend_healthy = Gauge(
            "fxn_backend_healthy",
            "1 if the backend passed its last health check",
            ["model", "backend"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.registry_entries = Gauge(
            "fxn_registry_entries",
            "Active entries in each registry",
            ["registry"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.registry_fetch_errors = Counter(
            "fxn_registry_fetch_errors_total", "Failed registry refreshes", ["registry"], registry=r
        )
        self.registry_last_success = Gauge(
            "fxn_registry_last_success_timestamp_seconds",
            "Unix time of the last successful registry refresh",
            ["registry"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.challenges = Counter(
            "fxn_challenges_total", "Challenges answered", ["type", "outcome"], registry=r
        )
        self.challenge_duration = Histogram(
            "fxn_challenge_duration_seconds",
            "Challenge handling time",
            ["type"],
            buckets=(*LATENCY_BUCKETS, 300),
            registry=r,
        )
        self.matmul_tops = Gauge(
            "fxn_matmul_last_tops",
            "Throughput of the last matrix challenge, tera-ops per second",
            ["backend"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.gpu_memory_used = Gauge(
            "fxn_gpu_memory_used_bytes",
            "GPU memory in use (NVML)",
            ["gpu", "name"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.gpu_memory_total = Gauge(
            "fxn_gpu_memory_total_bytes",
            "GPU memory in total (NVML)",
            ["gpu", "name"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.gpu_utilization = Gauge(
            "fxn_gpu_utilization_ratio",
            "GPU utilisation, 0 to 1 (NVML)",
            ["gpu", "name"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.nonce_store_errors = Counter(
            "fxn_nonce_store_errors_total", "Nonce store failures (the node failed closed)", registry=r
        )
        # Usage and limits (SPEC §11). ``caller`` is one of the first 256 callers' addresses, or "other".
        self.tokens = Counter(
            "fxn_tokens_total", "Tokens the answers reported, by model", ["model", "kind"], registry=r
        )
        self.caller_requests = Counter(
            "fxn_caller_requests_total",
            "Answered /v1/* requests by caller, model and status class (2xx..5xx, cancelled)",
            ["caller", "model", "status_class"],
            registry=r,
        )
        self.rate_limited = Counter(
            "fxn_rate_limited_total",
            "Requests refused 429 rate_limited, by caller and budget",
            ["caller", "limit"],
            registry=r,
        )
        self.ledger_errors = Counter(
            "fxn_usage_ledger_errors_total",
            "Failed writes to usage.sqlite (the rows are kept for the next write)",
            registry=r,
        )
        self.limits_settle_errors = Counter(
            "fxn_limits_settle_errors_total",
            "Slots or token charges that could not be reported to Redis after an answer",
            registry=r,
        )
