"""The scheduler loop: every ``interval``, probe each node (at most ``concurrency`` at once), store the
verdicts, and update the metrics. A round that outlasts the interval delays the next one; rounds never
overlap, so one slow node cannot pile up work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final

import aiohttp

from function_node.client import FxnSigner
from function_node.logs import get_logger
from function_node.scheduler.checks import (
    CHECK_INFERENCE,
    CHECK_MATMUL,
    CHECK_REACHABLE,
    CheckResult,
)
from function_node.scheduler.config import NodeTarget, SchedulerConfig
from function_node.scheduler.metrics import SchedulerMetrics
from function_node.scheduler.probe import NodeProbe, ProbeReport
from function_node.scheduler.store import ResultRecord, SchedulerStore

__all__ = ["NodeSource", "RoundReport", "Scheduler"]

REASON_PROBE_ERROR: Final = "probe_error"  # a bug or an answer no check foresaw; logged with its traceback

NodeSource = Callable[[], Awaitable[Sequence[NodeTarget]]]


@dataclass(frozen=True, slots=True)
class RoundReport:
    round_id: int
    started_at: float
    seconds: float
    nodes: tuple[ProbeReport, ...]

    @property
    def passed(self) -> bool:
        return all(r.ok for node in self.nodes for r in node.results)


class Scheduler:
    """Owns nothing it did not create: the caller opens (and closes) the store and the session."""

    def __init__(
        self,
        config: SchedulerConfig,
        *,
        signer: FxnSigner,
        store: SchedulerStore,
        metrics: SchedulerMetrics,
        session: aiohttp.ClientSession,
        executor: Executor | None = None,
        nodes: NodeSource | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self._nodes = nodes or self._configured_nodes
        self._probe = NodeProbe(
            session,
            signer,
            matmul=config.matmul,
            inference=config.inference,
            timeout=config.request_timeout,
            executor=executor,
        )
        self._log = get_logger("fxn.scheduler")

    async def _configured_nodes(self) -> Sequence[NodeTarget]:
        return self.config.nodes

    async def run_round(self) -> RoundReport:
        started_at, t0 = time.time(), time.perf_counter()
        excluded = set(self.config.exclude)
        targets = [t for t in await self._nodes() if t.address not in excluded or not t.address]
        round_id = self.store.begin_round(len(targets), started_at)
        limit = asyncio.Semaphore(self.config.concurrency)

        async def one(target: NodeTarget) -> ProbeReport:
            async with limit:
                try:
                    report = await self._probe.run(target.url, target.address)
                except Exception as exc:  # one node's unforeseen answer must not stop the round for all
                    self._log.exception("scheduler_probe_error", node=target.url)
                    failed = CheckResult.failed(
                        CHECK_REACHABLE, REASON_PROBE_ERROR, f"{type(exc).__name__}: {exc}"
                    )
                    report = ProbeReport(target.url, "", (failed,), None)
            self._record(round_id, report)
            return report

        reports = await asyncio.gather(*(one(t) for t in targets))
        self.store.finish_round(round_id)
        seconds = time.perf_counter() - t0
        self.metrics.rounds.inc()
        self.metrics.round_duration.observe(seconds)
        report = RoundReport(round_id, started_at, seconds, tuple(reports))
        self._log.info(
            "scheduler_round", round=round_id, nodes=len(reports), passed=report.passed, seconds=seconds
        )
        return report

    def _record(self, round_id: int, report: ProbeReport) -> None:
        now = time.time()
        self.store.add_results(
            ResultRecord(
                round_id=round_id,
                node_url=report.node_url,
                node_address=report.address,
                check=r.check,
                ok=r.ok,
                reason=r.reason,
                detail=r.detail,
                rtt_ms=r.rtt_ms,
                values=dict(r.values),
                at=now,
            )
            for r in report.results
        )
        m, node = self.metrics, report.node_url
        for r in report.results:
            m.checks.labels(r.check, "pass" if r.ok else "fail", r.reason).inc()
            if r.rtt_ms is not None:
                m.check_duration.labels(r.check).observe(r.rtt_ms / 1000.0)
            if r.ok:
                m.node_last_seen.labels(node).set(now)
            if r.check == CHECK_MATMUL and r.ok and r.values.get("tops") is not None:
                m.node_tops.labels(node).set(float(r.values["tops"]))
            if r.check == CHECK_INFERENCE and r.ok and r.values.get("ttft_ms") is not None:
                m.node_ttft.labels(node).set(float(r.values["ttft_ms"]) / 1000.0)
                if r.values.get("tokens_per_s") is not None:
                    m.node_tokens_per_second.labels(node).set(float(r.values["tokens_per_s"]))
        if report.verify_seconds is not None:
            m.verify_duration.observe(report.verify_seconds)
        m.node_up.labels(node).set(1.0 if all(r.ok for r in report.results) else 0.0)
        for r in report.results:
            if not r.ok:
                self._log.warning(
                    "scheduler_check_failed", node=node, check=r.check, reason=r.reason, detail=r.detail
                )

    async def run_forever(
        self,
        stop: asyncio.Event,
        rounds: int | None = None,
        on_round: Callable[[RoundReport], None] | None = None,
    ) -> list[RoundReport]:
        """Run rounds until ``stop`` is set (or ``rounds`` are done), calling ``on_round`` after each.

        Reports are kept (and returned) only when ``rounds`` is given, so a long-running scheduler
        does not grow.
        """
        kept: list[RoundReport] = []
        done = 0
        while not stop.is_set() and (rounds is None or done < rounds):
            t0 = time.monotonic()
            report = await self.run_round()
            done += 1
            if on_round is not None:
                on_round(report)
            if rounds is not None:
                kept.append(report)
                if done >= rounds:
                    break
            wait = max(0.0, self.config.interval - (time.monotonic() - t0))
            with contextlib.suppress(TimeoutError):  # the interval elapsed without a stop: next round
                await asyncio.wait_for(stop.wait(), timeout=wait)
        return kept
