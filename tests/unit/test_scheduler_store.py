"""The scheduler's SQLite store: rounds and verdicts survive a restart; the schema is versioned."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from function_node.scheduler.store import SCHEMA_VERSION, ResultRecord, SchedulerStore, StoreError


def record(round_id: int, url: str, check: str, ok: bool, at: float, **values: object) -> ResultRecord:
    return ResultRecord(
        round_id=round_id,
        node_url=url,
        node_address="0x" + "ab" * 20,
        check=check,
        ok=ok,
        reason="" if ok else "proof_invalid",
        detail="d",
        rtt_ms=12.5,
        values=dict(values),
        at=at,
    )


def test_rounds_and_results_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sched.db"
    with SchedulerStore(path) as store:
        r1 = store.begin_round(2, started_at=100.0)
        store.add_results([record(r1, "http://a", "matmul", True, 101.0, tops=0.5)])
        store.add_results([record(r1, "http://b", "matmul", False, 101.5)])
        store.finish_round(r1, finished_at=102.0)

    with SchedulerStore(path) as reopened:  # a new process would do exactly this
        assert reopened.rounds() == [(r1, 100.0, 102.0, 2)]
        r2 = reopened.begin_round(1, started_at=200.0)
        assert r2 == r1 + 1
        reopened.add_results([record(r2, "http://a", "matmul", False, 201.0)])
        results = reopened.results(node_url="http://a")
        assert [(r.round_id, r.ok, r.values) for r in results] == [(r1, True, {"tops": 0.5}), (r2, False, {})]
        summaries = {s.node_url: s for s in reopened.summaries()}
        a = summaries["http://a"]
        assert (a.last_round_id, a.passed, a.last_seen, a.rounds_total, a.rounds_failed) == (
            r2,
            False,
            101.0,
            2,
            1,
        )
        assert summaries["http://b"].last_seen is None
        assert reopened.schema_version == SCHEMA_VERSION


def test_the_database_uses_wal(tmp_path: Path) -> None:
    with SchedulerStore(tmp_path / "s.db") as store:
        store.begin_round(0)
    mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match=r"schema version 2, newer than this fxn \(1\)"):
        SchedulerStore(path)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the scheduler database"):
        SchedulerStore(path)


def test_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    # The scheduler and `fxn scheduler status` (or the devnet's poller) may open a new file together.
    path = tmp_path / "race.db"
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            SchedulerStore(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with SchedulerStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
