"""Recording what every answered ``/v1/*`` request used: Prometheus counters at once, the ledger in
batches off the request path (SPEC §11).

:meth:`UsageRecorder.record` costs a dict update and two or three counter increments; it never touches
the disk. The totals gather in memory by (hour, caller, model), and a background task owned by the
app's lifespan writes them to ``usage.sqlite`` at most once a second (one transaction, in a thread of
its own, so the event loop never waits on SQLite), drops the hours older than ``usage.retention`` once
an hour, and writes what is left when the node stops. A batch that fails to be written (the disk is
full, another process held the file past the busy timeout) is kept for the next one and counted in
``fxn_usage_ledger_errors_total``.

Label values stay bounded: ``model`` is a model of backend.yaml or ``-``, and ``caller`` is the
address of one of the first 256 callers seen, then ``other``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final

from function_node.logs import get_logger
from function_node.metrics import NodeMetrics
from function_node.usage.ledger import COUNTS, HOUR, UsageLedger

if TYPE_CHECKING:
    from prometheus_client import Counter

    from function_node.node.usage_parse import Usage

__all__ = [
    "CANCELLED",
    "MAX_CALLER_LABELS",
    "OTHER_CALLERS",
    "CallerLabels",
    "UsageRecorder",
    "status_class",
]

MAX_CALLER_LABELS: Final = 256
OTHER_CALLERS: Final = "other"
CANCELLED: Final = "cancelled"  # a stream (or request) cut by the client
_FLUSH_INTERVAL_S: Final = 1.0
_PURGE_INTERVAL_S: Final = float(HOUR)
# Index of each counter in a pending row (the ledger's column order).
_REQUESTS, _ERRORS, _E4XX, _E5XX, _PROMPT, _COMPLETION, _CANCELLED, _UPSTREAM = range(len(COUNTS))


_STATUS_CLASSES: Final = tuple(f"{c}xx" for c in range(10))


def status_class(status: int) -> str:
    """``2xx`` … ``5xx`` for an HTTP status."""
    return _STATUS_CLASSES[status // 100] if 0 <= status < 1000 else "5xx"


class CallerLabels:
    """The ``caller`` label of an address: itself for the first ``limit`` callers, then ``other``."""

    __slots__ = ("_labels", "limit")

    def __init__(self, limit: int = MAX_CALLER_LABELS) -> None:
        self.limit = limit
        self._labels: dict[str, str] = {}

    def __call__(self, address: str) -> str:
        label = self._labels.get(address)
        if label is None:
            if len(self._labels) >= self.limit:
                return OTHER_CALLERS
            label = self._labels[address] = address
        return label


class UsageRecorder:
    """Counts every answered request (metrics, and the ledger when one is given). See the module docstring."""

    def __init__(
        self,
        metrics: NodeMetrics,
        ledger: UsageLedger | None = None,
        *,
        retention: float = 90 * 86400.0,
        clock: Callable[[], float] = time.time,
        flush_interval: float = _FLUSH_INTERVAL_S,
    ) -> None:
        self.metrics = metrics
        self.ledger = ledger
        self.retention = retention
        self.flush_interval = flush_interval
        self.caller_label = CallerLabels()
        self.writes = 0  # transactions written (tests and benchmarks read it)
        self.recorded = 0  # requests recorded by this process since it started
        self._clock = clock
        self._pending: dict[tuple[int, str, str], list[float]] = {}
        self._requests: dict[tuple[str, str, str], Counter] = {}
        self._tokens: dict[tuple[str, str], Counter] = {}
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._last_purge = 0.0

    # --- the request path ------------------------------------------------------------------------

    def record(
        self, caller: str, model: str, outcome: str, usage: Usage | None, upstream_seconds: float
    ) -> None:
        """One answered request; ``outcome`` is its status class (``2xx`` … ``5xx``) or ``cancelled``."""
        label = self.caller_label(caller)
        key = (label, model, outcome)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.metrics.caller_requests.labels(*key)
        counter.inc()
        self.recorded += 1
        if usage is not None:
            if usage.prompt_tokens:
                self._token_counter(model, "prompt").inc(usage.prompt_tokens)
            if usage.completion_tokens:
                self._token_counter(model, "completion").inc(usage.completion_tokens)
        if self.ledger is None:
            return
        row_key = (int(self._clock() // HOUR) * HOUR, caller, model)
        row = self._pending.get(row_key)
        if row is None:
            row = self._pending[row_key] = [0, 0, 0, 0, 0, 0, 0, 0.0]
        row[_REQUESTS] += 1
        if outcome == CANCELLED:
            row[_CANCELLED] += 1
        elif outcome == "4xx":
            row[_ERRORS] += 1
            row[_E4XX] += 1
        elif outcome == "5xx":
            row[_ERRORS] += 1
            row[_E5XX] += 1
        if usage is not None:
            row[_PROMPT] += usage.prompt_tokens
            row[_COMPLETION] += usage.completion_tokens
        row[_UPSTREAM] += upstream_seconds

    def rate_limited(self, caller: str, limit: str) -> None:
        self.metrics.rate_limited.labels(self.caller_label(caller), limit).inc()

    def _token_counter(self, model: str, kind: str) -> Counter:
        counter = self._tokens.get((model, kind))
        if counter is None:
            counter = self._tokens[(model, kind)] = self.metrics.tokens.labels(model, kind)
        return counter

    # --- the writer ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the ledger (in the writer's thread), drop expired hours, start the writer task.
        OSError / sqlite3.Error when the ledger cannot be opened."""
        if self.ledger is None or self._task is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fxn-ledger")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.ledger.open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        await self._purge()
        self._task = asyncio.create_task(self._write_loop(), name="usage-ledger")

    async def close(self) -> None:
        """Stop the writer and write what is pending (the node is drained by now)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._executor is None or self.ledger is None:
            return
        await self.flush()
        if self._pending:
            get_logger("fxn.usage").error(
                "usage_not_recorded", rows=len(self._pending), path=str(self.ledger.path)
            )
        await asyncio.get_running_loop().run_in_executor(self._executor, self.ledger.close)
        self._executor.shutdown(wait=True)
        self._executor = None
        get_logger("fxn.usage").info(
            "usage ledger closed", path=str(self.ledger.path), requests=self.recorded
        )

    async def flush(self) -> None:
        """Write the pending totals now, in one transaction (a failure keeps them for the next)."""
        if not self._pending or self._executor is None or self.ledger is None:
            return
        batch, self._pending = self._pending, {}
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.ledger.add, list(batch.items()))
        except Exception as exc:  # sqlite3.Error, OSError: keep the rows, say so, try again
            self.metrics.ledger_errors.inc()
            get_logger("fxn.usage").warning(
                "usage_ledger_write_failed", error=f"{type(exc).__name__}: {exc}", rows=len(batch)
            )
            self._merge_back(batch)
            return
        self.writes += 1

    def _merge_back(self, batch: dict[tuple[int, str, str], list[float]]) -> None:
        for key, counts in batch.items():
            row = self._pending.get(key)
            if row is None:
                self._pending[key] = counts
            else:
                for i, value in enumerate(counts):
                    row[i] += value

    async def _write_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()
            if self._clock() - self._last_purge >= _PURGE_INTERVAL_S:
                await self._purge()

    async def _purge(self) -> None:
        if self._executor is None or self.ledger is None:
            return
        now = self._clock()
        self._last_purge = now
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self.ledger.purge, now - self.retention
            )
        except Exception as exc:
            self.metrics.ledger_errors.inc()
            get_logger("fxn.usage").warning("usage_ledger_purge_failed", error=f"{type(exc).__name__}: {exc}")
