"""The scheduler's SQLite store: rounds, and each node's check results in each round.

One file, WAL journal (``fxn scheduler status`` reads while the scheduler writes), a versioned schema
(``PRAGMA user_version``) migrated forward at open; a file written by a newer version is refused
rather than misread. Every write is one transaction, so a scheduler killed mid-round leaves whole rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from function_node.errors import FxnError

__all__ = ["SCHEMA_VERSION", "NodeSummary", "ResultRecord", "SchedulerStore", "StoreError"]

SCHEMA_VERSION: Final = 1

# Index i holds the statements that take the schema from version i to i + 1.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE rounds (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at REAL NOT NULL,
            finished_at REAL,
            nodes INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE results (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            round_id INTEGER NOT NULL REFERENCES rounds(id),
            node_url TEXT NOT NULL,
            node_address TEXT NOT NULL DEFAULT '',
            check_name TEXT NOT NULL,
            ok INTEGER NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '',
            rtt_ms REAL,
            values_json TEXT NOT NULL DEFAULT '{}',
            at REAL NOT NULL
        )""",
        "CREATE INDEX results_node ON results(node_url, id)",
        "CREATE INDEX results_round ON results(round_id)",
    ),
)


class StoreError(FxnError):
    """The scheduler database cannot be opened or was written by a newer version."""


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One check of one node in one round, as stored."""

    round_id: int
    node_url: str
    node_address: str
    check: str
    ok: bool
    reason: str
    detail: str
    rtt_ms: float | None
    values: dict[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """What ``fxn scheduler status`` shows for one node: its latest round's results."""

    node_url: str
    node_address: str
    last_seen: float | None  # the last time any check of this node passed
    last_round_id: int
    results: tuple[ResultRecord, ...]
    rounds_total: int
    rounds_failed: int

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)

    def result(self, check: str) -> ResultRecord | None:
        return next((r for r in self.results if r.check == check), None)


class SchedulerStore:
    """A connection to the scheduler database. Use from one thread; open one per process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the scheduler database {path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open the scheduler database {path}: {exc}") from exc
        except StoreError:
            self._db.close()
            raise

    def _migrate(self) -> None:
        # The version is read again inside each write transaction: another process (the scheduler and a
        # `status` reader, say) may have migrated the file between our first look and our lock.
        while True:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {version}, newer than this fxn ({SCHEMA_VERSION}); "
                        "upgrade fxn or point database: at another file"
                    )
                if version == SCHEMA_VERSION:
                    self._db.execute("COMMIT")
                    return
                for statement in _MIGRATIONS[version]:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {version + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def begin_round(self, nodes: int, started_at: float | None = None) -> int:
        cur = self._db.execute(
            "INSERT INTO rounds(started_at, nodes) VALUES (?, ?)",
            (time.time() if started_at is None else started_at, nodes),
        )
        return int(cur.lastrowid or 0)

    def finish_round(self, round_id: int, finished_at: float | None = None) -> None:
        self._db.execute(
            "UPDATE rounds SET finished_at = ? WHERE id = ?",
            (time.time() if finished_at is None else finished_at, round_id),
        )

    def add_results(self, records: Iterable[ResultRecord]) -> None:
        rows = [
            (
                r.round_id,
                r.node_url,
                r.node_address,
                r.check,
                int(r.ok),
                r.reason,
                r.detail,
                r.rtt_ms,
                json.dumps(r.values, sort_keys=True),
                r.at,
            )
            for r in records
        ]
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT INTO results(round_id, node_url, node_address, check_name, ok, reason, detail, "
                "rtt_ms, values_json, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise

    def rounds(self) -> list[tuple[int, float, float | None, int]]:
        """Every round as (id, started_at, finished_at, nodes), oldest first."""
        return [
            (int(a), float(b), None if c is None else float(c), int(d))
            for a, b, c, d in self._db.execute(
                "SELECT id, started_at, finished_at, nodes FROM rounds ORDER BY id"
            )
        ]

    def results(self, round_id: int | None = None, node_url: str | None = None) -> list[ResultRecord]:
        where: list[str] = []
        args: list[object] = []
        if round_id is not None:
            where.append("round_id = ?")
            args.append(round_id)
        if node_url is not None:
            where.append("node_url = ?")
            args.append(node_url)
        sql = (
            "SELECT round_id, node_url, node_address, check_name, ok, reason, detail, rtt_ms, "
            "values_json, at FROM results"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_record(row) for row in self._db.execute(sql + " ORDER BY id", args)]

    def summaries(self) -> list[NodeSummary]:
        """Each node's latest round, with its pass/fail history counts; sorted by URL."""
        out: list[NodeSummary] = []
        nodes = self._db.execute("SELECT DISTINCT node_url FROM results ORDER BY node_url").fetchall()
        for (url,) in nodes:
            last_round = int(
                self._db.execute("SELECT MAX(round_id) FROM results WHERE node_url = ?", (url,)).fetchone()[0]
            )
            latest = tuple(self.results(round_id=last_round, node_url=url))
            seen = self._db.execute(
                "SELECT MAX(at) FROM results WHERE node_url = ? AND ok = 1", (url,)
            ).fetchone()[0]
            total, failed = self._db.execute(
                "SELECT COUNT(DISTINCT round_id), COUNT(DISTINCT CASE WHEN ok = 0 THEN round_id END) "
                "FROM results WHERE node_url = ?",
                (url,),
            ).fetchone()
            address = next((r.node_address for r in latest if r.node_address), "")
            out.append(
                NodeSummary(
                    node_url=str(url),
                    node_address=address,
                    last_seen=None if seen is None else float(seen),
                    last_round_id=last_round,
                    results=latest,
                    rounds_total=int(total),
                    rounds_failed=int(failed),
                )
            )
        return out

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SchedulerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _record(row: Sequence[Any]) -> ResultRecord:
    round_id, url, address, check, ok, reason, detail, rtt, values, at = row
    return ResultRecord(
        round_id=int(round_id),
        node_url=str(url),
        node_address=str(address),
        check=str(check),
        ok=bool(ok),
        reason=str(reason),
        detail=str(detail),
        rtt_ms=None if rtt is None else float(rtt),
        values=json.loads(values),
        at=float(at),
    )
