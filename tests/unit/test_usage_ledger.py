"""The usage ledger: hourly rows added to (never replaced) by any number of writers, grouped on reading,
kept for the retention; the recorder batches off the request path and writes what is left at close."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from function_node.metrics import NodeMetrics
from function_node.node.usage import CANCELLED, OTHER_CALLERS, CallerLabels, UsageRecorder
from function_node.node.usage_parse import Usage
from function_node.usage.ledger import HOUR, LedgerRow, UsageLedger, ledger_path

A = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
B = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
T0 = 1_764_000_000.0 - 1_764_000_000.0 % HOUR  # an hour's start


class ManualClock:
    def __init__(self, now: float = T0 + 60) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def counts(
    requests: int = 1,
    *,
    errors: int = 0,
    e4: int = 0,
    e5: int = 0,
    prompt: int = 0,
    completion: int = 0,
    cancelled: int = 0,
    upstream: float = 0.0,
) -> list[float]:
    return [requests, errors, e4, e5, prompt, completion, cancelled, upstream]


def test_rows_add_up_and_group(tmp_path: Path) -> None:
    ledger = UsageLedger(tmp_path / "usage.sqlite").open()
    h0, h1 = int(T0), int(T0 + HOUR)
    ledger.add([((h0, A, "m1"), counts(2, prompt=10, completion=5, upstream=0.5))])
    ledger.add(
        [((h0, A, "m1"), counts(1, errors=1, e5=1)), ((h1, A, "m2"), counts(1, prompt=1, cancelled=1))]
    )
    ledger.add([((h1, B, "m1"), counts(3, errors=2, e4=2, prompt=4, completion=4))])
    by_pair = ledger.query()
    assert by_pair == [  # ordered by caller (B's address sorts first), then model
        LedgerRow(None, B, "m1", 3, 2, 2, 0, 4, 4, 0, 0.0),
        LedgerRow(None, A, "m1", 3, 1, 0, 1, 10, 5, 0, 0.5),
        LedgerRow(None, A, "m2", 1, 0, 0, 0, 1, 0, 1, 0.0),
    ]
    assert [(r.caller, r.model, r.requests) for r in ledger.query(by=["caller"])] == [
        (B, "*", 3),
        (A, "*", 4),
    ]
    assert [(r.caller, r.model, r.requests) for r in ledger.query(by=["model"])] == [
        ("*", "m1", 6),
        ("*", "m2", 1),
    ]
    assert [(r.hour, r.requests) for r in ledger.query(by=["hour"])] == [(h0, 3), (h1, 4)]
    assert [r.requests for r in ledger.query(since=T0 + HOUR + 1800, by=["hour"])] == [4]  # its whole hour
    (total,) = ledger.query(by=[])
    assert (total.caller, total.model, total.requests, total.errors) == ("*", "*", 7, 3)
    with pytest.raises(ValueError, match="cannot group usage by"):
        ledger.query(by=["gateway"])
    ledger.close()


def test_json_objects_are_as_spec_says(tmp_path: Path) -> None:
    ledger = UsageLedger(tmp_path / "usage.sqlite").open()
    ledger.add(
        [
            (
                (int(T0), A, "m"),
                counts(2, errors=1, e4=1, prompt=3, completion=4, cancelled=1, upstream=1.23456),
            )
        ]
    )
    (row,) = ledger.query(by=["hour", "caller", "model"])
    assert row.as_dict() == {
        "hour": "2025-11-24T16:00:00Z",
        "caller": A,
        "model": "m",
        "requests": 2,
        "errors": 1,
        "errors_by_class": {"4xx": 1, "5xx": 0},
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "cancelled": 1,
        "upstream_seconds": 1.235,
    }
    assert ledger.query(since=T0 + 2 * HOUR) == []


def test_retention_drops_hours_that_ended_before_it(tmp_path: Path) -> None:
    ledger = UsageLedger(tmp_path / "usage.sqlite").open()
    ledger.add([((int(T0) - 2 * HOUR, A, "m"), counts()), ((int(T0) - HOUR, A, "m"), counts())])
    ledger.add([((int(T0), A, "m"), counts())])
    assert ledger.purge(before=T0 - 1) == 1  # the hour that ends at T0 still holds T0 - 1
    assert [r.hour for r in ledger.query(by=["hour"])] == [int(T0) - HOUR, int(T0)]


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    UsageLedger(tmp_path / "usage.sqlite").open().close()
    with sqlite3.connect(tmp_path / "usage.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _writer(path: str, caller: str, batches: int) -> None:
    ledger = UsageLedger(Path(path)).open()
    for _ in range(batches):
        ledger.add([((int(T0), caller, "m"), counts(1, prompt=2)), ((int(T0), "shared", "m"), counts(1))])
    ledger.close()


def test_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(str(path), c, 200)) for c in (A, B, "0x" + "c" * 40)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    ledger = UsageLedger(path).open()
    rows = {r.caller: r for r in ledger.query()}
    assert rows["shared"].requests == 600
    assert [rows[c].prompt_tokens for c in (A, B)] == [400, 400]


# --- the recorder -------------------------------------------------------------------------------


def test_caller_labels_are_bounded() -> None:
    labels = CallerLabels(limit=3)
    callers = [f"0x{i:040x}" for i in range(5)]
    assert [labels(c) for c in callers] == [*callers[:3], OTHER_CALLERS, OTHER_CALLERS]
    assert labels(callers[1]) == callers[1]


def test_metrics_count_callers_models_and_tokens() -> None:
    metrics = NodeMetrics(CollectorRegistry())
    recorder = UsageRecorder(metrics)
    recorder.record(A, "m", "2xx", Usage(3, 5), 0.1)
    recorder.record(A, "m", "2xx", Usage(1, 0), 0.1)
    recorder.record(A, "-", "4xx", None, 0.0)
    recorder.record(B, "m", CANCELLED, None, 0.0)
    value = metrics.registry.get_sample_value
    assert value("fxn_caller_requests_total", {"caller": A, "model": "m", "status_class": "2xx"}) == 2
    assert value("fxn_caller_requests_total", {"caller": A, "model": "-", "status_class": "4xx"}) == 1
    assert value("fxn_caller_requests_total", {"caller": B, "model": "m", "status_class": "cancelled"}) == 1
    assert value("fxn_tokens_total", {"model": "m", "kind": "prompt"}) == 4
    assert value("fxn_tokens_total", {"model": "m", "kind": "completion"}) == 5


async def test_recorder_batches_writes_and_flushes_at_close(tmp_path: Path) -> None:
    clock = ManualClock()
    metrics = NodeMetrics(CollectorRegistry())
    ledger = UsageLedger(ledger_path(tmp_path))
    recorder = UsageRecorder(metrics, ledger, clock=clock, flush_interval=0.2)
    await recorder.start()
    for _ in range(1000):
        recorder.record(A, "m", "2xx", Usage(2, 3), 0.01)
    recorder.record(A, "m", "5xx", None, 0.5)
    recorder.record(A, "m", CANCELLED, Usage(2, 1), 0.2)
    clock.now += HOUR
    recorder.record(B, "m", "4xx", None, 0.0)
    await asyncio.sleep(0.5)
    assert recorder.writes == 1  # everything so far in one transaction
    recorder.record(B, "m", "2xx", Usage(1, 1), 0.0)
    await recorder.close()
    assert recorder.writes == 2
    reader = UsageLedger(ledger_path(tmp_path)).open()
    rows = reader.query(by=["hour", "caller"])
    assert [
        (r.hour, r.caller, r.requests, r.errors, r.errors_5xx, r.errors_4xx, r.cancelled) for r in rows
    ] == [
        (int(T0), A, 1002, 1, 1, 0, 1),
        (int(T0) + HOUR, B, 2, 1, 0, 1, 0),
    ]
    assert (rows[0].prompt_tokens, rows[0].completion_tokens) == (2002, 3001)
    assert rows[0].upstream_seconds == pytest.approx(10.7)


async def test_a_failed_write_keeps_its_rows_for_the_next(tmp_path: Path) -> None:
    metrics = NodeMetrics(CollectorRegistry())
    ledger = UsageLedger(ledger_path(tmp_path), busy_timeout=0.05)
    recorder = UsageRecorder(metrics, ledger, clock=ManualClock(), flush_interval=3600)
    await recorder.start()
    recorder.record(A, "m", "2xx", Usage(1, 1), 0.0)
    blocker = sqlite3.connect(ledger_path(tmp_path), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the busy timeout
    await recorder.flush()
    assert metrics.registry.get_sample_value("fxn_usage_ledger_errors_total") == 1
    recorder.record(A, "m", "2xx", Usage(1, 1), 0.0)
    blocker.execute("ROLLBACK")
    blocker.close()
    await recorder.close()
    (row,) = UsageLedger(ledger_path(tmp_path)).open().query()
    assert (row.requests, row.prompt_tokens) == (2, 2)


async def test_expired_hours_are_dropped_at_start(tmp_path: Path) -> None:
    old = UsageLedger(ledger_path(tmp_path)).open()
    old.add([((int(T0) - 10 * 86400, A, "m"), counts()), ((int(T0), A, "m"), counts())])
    old.close()
    recorder = UsageRecorder(
        NodeMetrics(CollectorRegistry()),
        UsageLedger(ledger_path(tmp_path)),
        retention=86400,
        clock=ManualClock(),
    )
    await recorder.start()
    await recorder.close()
    assert [r.hour for r in UsageLedger(ledger_path(tmp_path)).open().query(by=["hour"])] == [int(T0)]


async def test_an_unwritable_ledger_fails_at_start(tmp_path: Path) -> None:
    recorder = UsageRecorder(
        NodeMetrics(CollectorRegistry()), UsageLedger(tmp_path / "missing" / "usage.sqlite")
    )
    with pytest.raises(sqlite3.OperationalError):
        await recorder.start()
    await recorder.close()
