"""The reference scheduler's Prometheus collectors (prefix ``fxn_scheduler_``), against a given registry.

Label values are bounded: ``node`` is a node URL from the scheduler's own node list or the provider
registry, ``check`` one of :data:`function_node.scheduler.checks.CHECKS`, ``reason`` a REASON_* code.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SchedulerMetrics"]

_CHECK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.rounds = Counter("fxn_scheduler_rounds_total", "Rounds completed", registry=r)
        self.round_duration = Histogram(
            "fxn_scheduler_round_duration_seconds", "Wall time of a round", buckets=_CHECK_BUCKETS, registry=r
        )
        self.checks = Counter(
            "fxn_scheduler_checks_total",
            "Checks run, by outcome (pass/fail) and failure reason",
            ["check", "outcome", "reason"],
            registry=r,
        )
        self.check_duration = Histogram(
            "fxn_scheduler_check_duration_seconds",
            "Round-trip time of each check's requests",
            ["check"],
            buckets=_CHECK_BUCKETS,
            registry=r,
        )
        self.verify_duration = Histogram(
            "fxn_scheduler_verify_duration_seconds",
            "Scheduler-side verification of a matrix proof (regenerate rows, digest, check paths)",
            buckets=_CHECK_BUCKETS,
            registry=r,
        )
        self.node_up = Gauge(
            "fxn_scheduler_node_up",
            "1 if every check of the node passed in its last round",
            ["node"],
            registry=r,
        )
        self.node_tops = Gauge(
            "fxn_scheduler_node_tops",
            "Matrix throughput bounded by the scheduler's own round-one RTT, tera-ops per second",
            ["node"],
            registry=r,
        )
        self.node_ttft = Gauge(
            "fxn_scheduler_node_time_to_first_token_seconds",
            "Time to first token of the inference probe",
            ["node"],
            registry=r,
        )
        self.node_tokens_per_second = Gauge(
            "fxn_scheduler_node_tokens_per_second", "Token rate of the inference probe", ["node"], registry=r
        )
        self.node_last_seen = Gauge(
            "fxn_scheduler_node_last_seen_timestamp_seconds",
            "Unix time the node last passed a check",
            ["node"],
            registry=r,
        )
