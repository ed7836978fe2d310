"""``fxn usage`` (SPEC §11): JSON, CSV and the table, grouping, ``--since``, and its usage errors."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from function_node.usage.ledger import HOUR, UsageLedger, hour_of, ledger_path
from function_node.usage.report import SINCE_FORMS, parse_since
from tests.fixtures.foundation import FxnCli

A = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
B = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"


def _fill(home: Path) -> int:
    now = hour_of(time.time())
    ledger = UsageLedger(ledger_path(home)).open()
    ledger.add(
        [
            ((now, A, "m1"), [3, 1, 0, 1, 30, 12, 0, 1.5]),
            ((now, B, "m1"), [1, 0, 0, 0, 5, 5, 1, 0.25]),
            ((now - HOUR, A, "m2"), [2, 2, 2, 0, 0, 0, 0, 0.0]),
            ((now - 10 * 86400, A, "m1"), [100, 0, 0, 0, 1, 1, 0, 0.0]),  # outside the default 24h
        ]
    )
    ledger.close()
    return now


def test_an_empty_ledger_prints_an_empty_list(fxn_cli: FxnCli, fxn_env: Path) -> None:
    result = fxn_cli("usage", "--json")
    assert (result.code, result.stdout) == (0, "[]\n")
    assert not ledger_path(fxn_env).exists()  # reading never creates one
    result = fxn_cli("usage")
    assert (result.code, result.stdout) == (0, "no usage recorded (since 24h)\n")
    UsageLedger(ledger_path(fxn_env)).open().close()
    assert fxn_cli("usage", "--json").stdout == "[]\n"
    csv_out = fxn_cli("usage", "--csv").stdout
    assert csv_out.splitlines() == [
        "caller,model,requests,errors,errors_4xx,errors_5xx,prompt_tokens,completion_tokens,total_tokens,"
        "cancelled,upstream_seconds"
    ]


def test_json_by_caller_and_model_since_24h(fxn_cli: FxnCli, fxn_env: Path) -> None:
    _fill(fxn_env)
    result = fxn_cli("usage", "--json")
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["caller"], r["model"], r["requests"]) for r in rows] == [
        (B, "m1", 1),
        (A, "m1", 3),
        (A, "m2", 2),
    ]
    assert rows[1] == {
        "caller": A,
        "model": "m1",
        "requests": 3,
        "errors": 1,
        "errors_by_class": {"4xx": 0, "5xx": 1},
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "cancelled": 0,
        "upstream_seconds": 1.5,
    }


def test_grouping(fxn_cli: FxnCli, fxn_env: Path) -> None:
    now = _fill(fxn_env)
    by_caller = json.loads(fxn_cli("usage", "--json", "--by", "caller").stdout)
    assert [(r["caller"], r["model"], r["requests"]) for r in by_caller] == [(B, "*", 1), (A, "*", 5)]
    by_model = json.loads(fxn_cli("usage", "--json", "--by", "model").stdout)
    assert [(r["caller"], r["model"], r["requests"]) for r in by_model] == [("*", "m1", 4), ("*", "m2", 2)]
    by_hour = json.loads(fxn_cli("usage", "--json", "--by", "hour", "--since", "all").stdout)
    stamp = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(now))
    assert [(r["caller"], r["model"], r["requests"]) for r in by_hour] == [
        ("*", "*", 100),
        ("*", "*", 2),
        ("*", "*", 4),
    ]
    assert by_hour[-1]["hour"] == stamp
    fine = json.loads(fxn_cli("usage", "--json", "--by", "hour,caller").stdout)
    assert [(r["caller"], r["requests"]) for r in fine] == [(A, 2), (B, 1), (A, 3)]
    again = json.loads(fxn_cli("usage", "--json", "--by", "hour", "--by", "caller").stdout)
    assert again == fine


def test_csv(fxn_cli: FxnCli, fxn_env: Path) -> None:
    _fill(fxn_env)
    result = fxn_cli("usage", "--csv", "--by", "hour", "--since", "2h")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["requests"], r["errors_4xx"], r["total_tokens"]) for r in rows] == [
        ("2", "2", "0"),
        ("4", "0", "52"),
    ]
    assert set(rows[0]) >= {"hour", "caller", "model", "cancelled", "upstream_seconds"}


def test_table(fxn_cli: FxnCli, fxn_env: Path) -> None:
    _fill(fxn_env)
    result = fxn_cli("usage", "--since", "all")
    assert result.code == 0
    assert A[:12] in result.stdout and "errors: total (4xx/5xx)" in result.stdout


@pytest.mark.parametrize("since", ["yesterday", "24", "-1h", "2026-13-01", ""])
def test_since_garbage_is_a_usage_error(fxn_cli: FxnCli, since: str) -> None:
    result = fxn_cli("usage", "--since", since)
    assert result.code == 2
    assert result.stderr == f"error: --since {since!r} is neither a duration nor a date; use {SINCE_FORMS}\n"


def test_bad_by_and_both_formats_are_usage_errors(fxn_cli: FxnCli) -> None:
    result = fxn_cli("usage", "--by", "gateway")
    assert (result.code, result.stderr) == (2, "error: --by 'gateway' is not one of hour, caller, model\n")
    result = fxn_cli("usage", "--json", "--csv")
    assert (result.code, result.stderr) == (2, "error: --json and --csv cannot be combined; choose one\n")


def test_since_forms() -> None:
    now = 1_800_000_000.0
    assert parse_since("24h", now) == now - 86400
    assert parse_since(" 1h30m ", now) == now - 5400
    assert parse_since("ALL", now) is None
    assert parse_since("2026-11-01", now) == 1793491200.0
    assert parse_since("2026-11-01T12:00", now) == 1793491200.0 + 12 * 3600
    assert parse_since("2026-11-01T12:00+02:00", now) == 1793491200.0 + 10 * 3600
    assert parse_since("2026-11-01T12:00Z", now) == 1793491200.0 + 12 * 3600
