"""The ``fxn`` entry point as a user meets it: real subprocesses, exit codes, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.foundation import TEST_SCRYPT_N, FxnCli

FXN = Path(sys.executable).parent / "fxn"


def _run(args: list[str], home: Path, stdin: str = "", **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FXN_")}
    env.update(FXN_HOME=str(home), FXN_KEYSTORE_SCRYPT_N=TEST_SCRYPT_N, **extra)
    return subprocess.run(
        [str(FXN), *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_help_lists_foundation_commands(home: Path) -> None:
    result = _run(["--help"], home)
    assert result.returncode == 0
    for command in ("init", "accounts", "config"):
        assert command in result.stdout


def test_no_arguments_shows_help_and_usage_code(home: Path) -> None:
    result = _run([], home)
    assert result.returncode == 2
    assert "Usage" in result.stdout + result.stderr


def test_unknown_option_is_usage_error(home: Path) -> None:
    result = _run(["accounts", "new", "--bogus"], home)
    assert result.returncode == 2
    assert "No such option: --bogus" in result.stderr


def test_subprocess_round_trip_without_tracebacks(home: Path) -> None:
    init = _run(["init"], home, FXN_KEY_PASSWORD="pw")
    assert init.returncode == 0, init.stderr
    address = init.stdout.splitlines()[-2].removeprefix("node address: ")
    show = _run(["accounts", "show", "--json"], home, FXN_KEY_PASSWORD="pw")
    assert show.returncode == 0
    assert f'"address": "{address}"' in show.stdout

    wrong = _run(["accounts", "show"], home, FXN_KEY_PASSWORD="nope")
    assert wrong.returncode == 1
    assert wrong.stderr == f"error: wrong password for key file {home / 'nodekey.json'}\n"

    exists = _run(["accounts", "new"], home, FXN_KEY_PASSWORD="pw")
    assert exists.returncode == 2
    assert "Traceback" not in exists.stderr

    (home / "config.yaml").write_text("node:\n  listenPort: [\n")
    broken = _run(["config", "check"], home)
    assert broken.returncode == 2
    assert broken.stderr.startswith(f"{home / 'config.yaml'}:3: invalid YAML")
    assert "Traceback" not in broken.stderr

    via_run = _run(["accounts", "show"], home, FXN_KEY_PASSWORD="pw")
    assert via_run.returncode == 2  # a ConfigError reached run(): exit 2, one line per problem
    assert via_run.stderr.startswith(f"error: {home / 'config.yaml'}:3: invalid YAML")
    assert "Traceback" not in via_run.stderr


def test_debug_shows_the_traceback(home: Path) -> None:
    result = _run(["--debug", "accounts", "show"], home)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "KeyFileError" in result.stderr


def test_import_reads_stdin_in_a_real_process(home: Path) -> None:
    from eth_account import Account

    from tests.fixtures.common import DEV_KEYS

    result = _run(["accounts", "import", "--plaintext"], home, stdin=DEV_KEYS[4])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == Account.from_key(DEV_KEYS[4]).address


def test_in_process_runner_matches(fxn_cli: FxnCli) -> None:
    result = fxn_cli("accounts", "show")
    assert result.code == 1
    assert "does not exist" in result.stderr


def test_version(home: Path) -> None:
    from function_node import __version__

    result = _run(["--version"], home)
    assert (result.returncode, result.stdout) == (0, f"fxn {__version__}\n")


def test_help_lists_every_command_in_operator_order(home: Path) -> None:
    result = _run(["--help"], home)
    listed = [line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()]
    expected = ["init", "config", "accounts", "start", "status", "doctor", "request", "challenge"]
    assert [name for name in listed if name in expected] == expected
    assert {"bench", "scheduler", "devnet"} <= set(listed)
    assert "--version" in result.stdout and "--install-completion" in result.stdout


def test_global_options_after_the_command(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert _run(["init", "--plaintext", "--home", str(other)], home).returncode == 0
    assert (other / "nodekey.json").exists() and not home.exists()
    checked = _run(["config", "check", f"--home={other}"], home)
    assert checked.returncode == 0, checked.stderr
    assert str(other / "config.yaml") in checked.stdout
    debug_after = _run(["accounts", "show", "--debug", "--file", str(tmp_path / "nope.json")], home)
    assert debug_after.returncode == 1
    assert "Traceback" in debug_after.stderr


def test_hoisting_stops_at_double_dash() -> None:
    from function_node.cli.main import hoist_global_options

    assert hoist_global_options(["start", "--home", "H", "--debug", "--port", "1"]) == [
        "--home",
        "H",
        "--debug",
        "start",
        "--port",
        "1",
    ]
    assert hoist_global_options(["request", "/p", "--", "--home", "x"]) == [
        "request",
        "/p",
        "--",
        "--home",
        "x",
    ]
    with pytest.raises(ValueError, match="--home needs a value"):
        hoist_global_options(["start", "--home"])


def test_home_without_its_value_is_a_usage_error(home: Path) -> None:
    result = _run(["start", "--home"], home)
    assert result.returncode == 2
    assert result.stderr == "error: --home needs a value, e.g. --home ~/.fxn\n"


def test_shell_completion_completes_commands_and_prints_a_script(home: Path) -> None:
    completed = _run([], home, _FXN_COMPLETE="complete_bash", COMP_WORDS="fxn acc", COMP_CWORD="1")
    assert completed.returncode == 0
    assert completed.stdout.split() == ["accounts"]
    # typer would detect the shell from the parent processes; its testing switch takes the name instead.
    script = _run(["--show-completion", "bash"], home, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    assert script.returncode == 0
    assert "_FXN_COMPLETE=complete_bash" in script.stdout
