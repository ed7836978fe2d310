"""What ``fxn usage`` prints: the ledger's totals since a time, grouped, as JSON, CSV or a table."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from function_node.config.durations import parse_duration
from function_node.usage.ledger import GROUPS, LedgerRow, UsageLedger, ledger_path

__all__ = ["SINCE_FORMS", "parse_groups", "parse_since", "read_usage", "rows_csv"]

SINCE_FORMS: Final = (
    'a duration back from now ("24h", "7d", "90m", "1h30m"), a UTC date or time ("2026-11-01", '
    '"2026-11-01T12:00", with an offset or Z if not UTC), or "all"'
)
_ALL: Final = "all"
_DEFAULT_GROUPS: Final = ("caller", "model")
_CSV_COLUMNS: Final = (
    "hour",
    "caller",
    "model",
    "requests",
    "errors",
    "errors_4xx",
    "errors_5xx",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cancelled",
    "upstream_seconds",
)


def parse_since(text: str, now: float) -> float | None:
    """The unix time ``--since`` names (None for ``all``); ValueError naming the accepted forms."""
    value = text.strip()
    if value.lower() == _ALL:
        return None
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {text!r} is neither a duration nor a date; use {SINCE_FORMS}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def parse_groups(values: Sequence[str]) -> tuple[str, ...]:
    """``--by`` values (repeated or comma-separated) as ledger groups; the default is caller and model."""
    groups = [part.strip().lower() for value in values for part in value.split(",") if part.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"--by {unknown[0]!r} is not one of {', '.join(GROUPS)}")
    return tuple(groups) or _DEFAULT_GROUPS


def read_usage(home: Path, since: float | None, groups: Sequence[str]) -> list[LedgerRow]:
    """The totals in the home's ledger; none when the node never wrote one."""
    path = ledger_path(home)
    if not path.exists():
        return []
    ledger = UsageLedger(path).open()
    try:
        return ledger.query(since, groups)
    finally:
        ledger.close()


def rows_csv(rows: Sequence[LedgerRow], groups: Sequence[str]) -> str:
    """CSV with a header; ``hour`` only when grouped by it."""
    columns = [c for c in _CSV_COLUMNS if c != "hour" or "hour" in groups]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: v for c, v in _flat(row.as_dict()).items() if c in columns})
    return out.getvalue()


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in record.items() if k != "errors_by_class"}
    for cls, count in record["errors_by_class"].items():
        flat[f"errors_{cls}"] = count
    return flat
