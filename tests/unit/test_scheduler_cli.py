"""`fxn scheduler status` / `run`: the table from a real store, and every refusal with its exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from function_node.devnet.process import free_port
from function_node.keys import write_plaintext
from function_node.scheduler.store import ResultRecord, SchedulerStore
from function_node.signing import LocalSigner
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.foundation import CliResult, FxnCli

ADDRESS = "0x" + "ab" * 20


def fill(path: Path) -> None:
    with SchedulerStore(path) as store:
        round_id = store.begin_round(2, started_at=1000.0)
        store.add_results(
            [
                ResultRecord(round_id, "http://good:1", ADDRESS, "reachable", True, "", "", 3.0, {}, 1001.0),
                ResultRecord(
                    round_id, "http://good:1", ADDRESS, "matmul", True, "", "", 40.0, {"tops": 0.25}, 1001.0
                ),
                ResultRecord(
                    round_id,
                    "http://bad:2",
                    "",
                    "matmul",
                    False,
                    "proof_invalid",
                    "row 3: digest",
                    9.0,
                    {},
                    1001.0,
                ),
            ]
        )
        store.finish_round(round_id, finished_at=1002.0)


def test_status_prints_every_node_with_reason_codes(fxn_cli: FxnCli, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    fill(db)
    result = fxn_cli("scheduler", "status", "--database", str(db), env={"COLUMNS": "250"})
    assert result.code == 1  # one node failed its last round
    good = next(line for line in result.stdout.splitlines() if "http://good:1" in line)
    assert ADDRESS in good and "0.2500" in good and "reachable:ok matmul:ok" in good
    bad = next(line for line in result.stdout.splitlines() if "http://bad:2" in line)
    assert "matmul=proof_invalid (1/1 rounds failed)" in bad and "never" in bad


def test_status_all_passing_exits_0(fxn_cli: FxnCli, tmp_path: Path) -> None:
    db = tmp_path / "ok.db"
    with SchedulerStore(db) as store:
        rid = store.begin_round(1)
        store.add_results([ResultRecord(rid, "http://n:1", ADDRESS, "reachable", True, "", "", 1.0, {}, 5.0)])
    assert fxn_cli("scheduler", "status", "--database", str(db)).code == 0


def test_status_without_database_is_a_runtime_failure(fxn_cli: FxnCli, tmp_path: Path) -> None:
    result = fxn_cli("scheduler", "status", "--database", str(tmp_path / "none.db"))
    assert result.code == 1
    assert result.stderr.strip() == (
        f"error: no scheduler database at {tmp_path / 'none.db'}; "
        "run `fxn scheduler run` first or pass --database"
    )


def test_status_of_an_empty_database(fxn_cli: FxnCli, tmp_path: Path) -> None:
    SchedulerStore(tmp_path / "empty.db").close()
    result = fxn_cli("scheduler", "status", "--database", str(tmp_path / "empty.db"))
    assert (result.code, result.stderr.strip()) == (
        1,
        f"error: {tmp_path / 'empty.db'} holds no rounds yet; run `fxn scheduler run`",
    )


def test_run_with_missing_config_is_a_configuration_error(fxn_cli: FxnCli, fxn_env: Path) -> None:
    result = fxn_cli("scheduler", "run", "--once")
    assert result.code == 2
    assert result.stderr.strip() == (
        f"error: {fxn_env / 'scheduler.yaml'}: file not found "
        "(create it as docs/scheduler.md shows, or pass --config)"
    )


def test_run_with_missing_key_is_a_runtime_failure(fxn_cli: FxnCli, tmp_path: Path) -> None:
    config = tmp_path / "scheduler.yaml"
    config.write_text('nodes: [{url: "http://127.0.0.1:9"}]\n')
    result = fxn_cli("scheduler", "run", "--once", "--config", str(config))
    assert result.code == 1
    assert result.stderr.strip().startswith(
        f"error: key file {tmp_path / 'schedulerkey.json'} does not exist"
    )


def _run_against_a_dead_node(fxn_cli: FxnCli, tmp_path: Path, logger: str) -> CliResult:
    # The node is a free loopback port nobody listens on: the round runs, fails, and is logged.
    write_plaintext(tmp_path / "schedulerkey.json", LocalSigner.from_hex(DEV_KEYS[1]))
    config = tmp_path / "scheduler.yaml"
    config.write_text(
        f'nodes: [{{url: "http://127.0.0.1:{free_port()}"}}]\n'
        "inference: {enabled: false}\nrequestTimeout: 5s\n" + logger
    )
    return fxn_cli("scheduler", "run", "--once", "--config", str(config))


@pytest.mark.usefixtures("restore_logging")
def test_run_logs_as_the_scheduler_config_says(fxn_cli: FxnCli, tmp_path: Path) -> None:
    result = _run_against_a_dead_node(fxn_cli, tmp_path, "logger: {verbosity: info, format: json}\n")
    assert result.code == 1  # the node did not answer
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (round_line,) = [e for e in events if e["event"] == "scheduler_round"]
    assert (round_line["level"], round_line["nodes"], round_line["passed"]) == ("info", 1, False)


@pytest.mark.usefixtures("restore_logging")
def test_run_default_logging_is_warnings_on_the_console(fxn_cli: FxnCli, tmp_path: Path) -> None:
    result = _run_against_a_dead_node(fxn_cli, tmp_path, "")
    assert result.code == 1
    assert "scheduler_round" not in result.stderr  # an info line, below the default "warn"
    assert not any(line.startswith("{") for line in result.stderr.splitlines())
