"""The usage ledger's storage: ``usage.sqlite`` in the home directory (SPEC §11).

One row per (hour, caller, model) with that hour's totals. Writers add to rows, never replace them:
each batch is one transaction of upserts (``INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n``),
so any number of processes (``fxn start --workers N``) can write the same file and every count is
kept. The database is in WAL mode, so ``fxn usage`` reads while the node writes, and writers wait for
each other (busy timeout) instead of failing. Stdlib only: the CLI reads it without the node's
dependencies.
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "COUNTS",
    "GROUPS",
    "HOUR",
    "LEDGER_FILE",
    "LedgerRow",
    "UsageLedger",
    "hour_of",
    "ledger_path",
]

LEDGER_FILE: Final = "usage.sqlite"
HOUR: Final = 3600
# The counters of a row, in storage order.
COUNTS: Final = (
    "requests",
    "errors",
    "errors_4xx",
    "errors_5xx",
    "prompt_tokens",
    "completion_tokens",
    "cancelled",
    "upstream_seconds",
)
GROUPS: Final = ("hour", "caller", "model")
_ALL: Final = "*"
_SCHEMA_VERSION: Final = 1
_BUSY_TIMEOUT_S: Final = 30.0
_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS usage (
    hour INTEGER NOT NULL,
    caller TEXT NOT NULL,
    model TEXT NOT NULL,
    {", ".join(f"{c} {'REAL' if c == 'upstream_seconds' else 'INTEGER'} NOT NULL DEFAULT 0" for c in COUNTS)},
    PRIMARY KEY (hour, caller, model)
) WITHOUT ROWID
"""
_UPSERT: Final = (
    f"INSERT INTO usage (hour, caller, model, {', '.join(COUNTS)}) "
    f"VALUES ({', '.join('?' * (3 + len(COUNTS)))}) "
    "ON CONFLICT (hour, caller, model) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTS)
)

Key = tuple[int, str, str]  # (hour, caller, model)


def ledger_path(home: Path) -> Path:
    return home / LEDGER_FILE


def hour_of(unix_time: float) -> int:
    return int(unix_time // HOUR) * HOUR


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """Totals of one group: ``caller``/``model`` are ``"*"`` when not grouped by them, ``hour`` None."""

    hour: int | None
    caller: str
    model: str
    requests: int
    errors: int
    errors_4xx: int
    errors_5xx: int
    prompt_tokens: int
    completion_tokens: int
    cancelled: int
    upstream_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The ``fxn usage --json`` object (SPEC §11)."""
        out: dict[str, Any] = {}
        if self.hour is not None:
            out["hour"] = datetime.datetime.fromtimestamp(self.hour, datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        out.update(
            caller=self.caller,
            model=self.model,
            requests=self.requests,
            errors=self.errors,
            errors_by_class={"4xx": self.errors_4xx, "5xx": self.errors_5xx},
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
            cancelled=self.cancelled,
            upstream_seconds=round(self.upstream_seconds, 3),
        )
        return out


class UsageLedger:
    """One connection to the ledger file. Not thread-safe: use it from one thread at a time."""

    def __init__(self, path: Path, *, busy_timeout: float = _BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None

    def open(self) -> UsageLedger:
        """Open (creating the file and its table when missing); OSError/sqlite3.Error when it cannot."""
        db = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # durable at each checkpoint; never corrupt (WAL)
            with _transaction(db):
                db.execute(_SCHEMA)
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        self._db = db
        return self

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the usage ledger is not open")
        return self._db

    def add(self, rows: Iterable[tuple[Key, Sequence[float]]]) -> int:
        """Add every row's counts to the ledger, in one transaction; returns how many rows."""
        values = [(*key, *counts) for key, counts in rows]
        if values:
            with _transaction(self.db):
                self.db.executemany(_UPSERT, values)
        return len(values)

    def purge(self, before: float) -> int:
        """Drop the hours that ended before ``before`` (unix time); returns how many rows."""
        with _transaction(self.db):
            cursor = self.db.execute("DELETE FROM usage WHERE hour + ? <= ?", (HOUR, before))
        return cursor.rowcount

    def query(self, since: float | None = None, by: Sequence[str] = ("caller", "model")) -> list[LedgerRow]:
        """Totals since ``since`` (unix time; the hour that holds it counts whole), grouped ``by`` a subset
        of hour, caller, model, in that order."""
        unknown = set(by) - set(GROUPS)
        if unknown:
            raise ValueError(f"cannot group usage by {sorted(unknown)}; use {', '.join(GROUPS)}")
        groups = [g for g in GROUPS if g in by]
        select = [g if g in groups else f"NULL AS {g}" if g == "hour" else f"'{_ALL}' AS {g}" for g in GROUPS]
        sums = [f"SUM({c})" for c in COUNTS]
        sql = f"SELECT {', '.join(select + sums)} FROM usage"
        params: list[float] = []
        if since is not None:
            sql += " WHERE hour >= ?"
            params.append(hour_of(since))
        if groups:
            sql += f" GROUP BY {', '.join(groups)} ORDER BY {', '.join(groups)}"
        rows = self.db.execute(sql, params).fetchall()
        return [_row(r) for r in rows if r[3] is not None]

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


def _row(r: Sequence[Any]) -> LedgerRow:
    requests, errors, e4xx, e5xx, prompt, completion, cancelled = (int(v) for v in r[3:-1])
    return LedgerRow(
        r[0], r[1], r[2], requests, errors, e4xx, e5xx, prompt, completion, cancelled, float(r[-1])
    )


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front: a writer waits (busy timeout) at BEGIN, never fails
    # half-way when another process started writing first.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
