"""``fxn init`` and ``fxn config check``: exit codes and messages (SPEC §2-§4)."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from function_node.keys import load_signer
from tests.fixtures.foundation import TEST_PASSWORD, FxnCli
from tests.fixtures.node import FXN

PW = {"FXN_KEY_PASSWORD": TEST_PASSWORD}


def test_init_creates_home_with_keystore(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_env.rmdir()
    result = fxn_cli("init", env=PW)
    assert result.code == 0, result.stderr
    key = fxn_env / "nodekey.json"
    address = load_signer(key, TEST_PASSWORD).address
    assert result.stdout.splitlines() == [
        f"created {fxn_env}",
        f"created {fxn_env / 'config.yaml'}",
        f"created {fxn_env / 'backend.yaml'}",
        f"created {key}",
        f"node address: {address}",
        "next: edit backend.yaml, then run `fxn config check`",
    ]
    assert stat.S_IMODE(fxn_env.stat().st_mode) == 0o700
    assert fxn_cli("config", "check", env=PW).code == 0


def test_init_plaintext_and_rerun_keeps_files(fxn_cli: FxnCli, fxn_env: Path) -> None:
    assert fxn_cli("init", "--plaintext").code == 0
    assert "private_key" in json.loads((fxn_env / "nodekey.json").read_text())
    result = fxn_cli("init")  # nothing to create: no password is needed
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        f"kept {fxn_env / 'config.yaml'} (already there; --force replaces it and keeps a backup)",
        f"kept {fxn_env / 'backend.yaml'} (already there; --force replaces it and keeps a backup)",
        f"kept {fxn_env / 'nodekey.json'} (already there; --force replaces it and keeps a backup)",
    ]


def test_init_force_keeps_backups(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_cli("init", "--plaintext")
    result = fxn_cli("init", "--force", env=PW)
    assert result.code == 0, result.stderr
    assert sorted(p.name.split(".bak-")[0] for p in fxn_env.glob("*.bak-*")) == [
        "backend.yaml",
        "config.yaml",
        "nodekey.json",
    ]
    assert "crypto" in json.loads((fxn_env / "nodekey.json").read_text())


def test_init_without_password_is_usage_error(fxn_cli: FxnCli, fxn_env: Path) -> None:
    result = fxn_cli("init")
    assert result.code == 2
    assert "no password for the new keystore: set FXN_KEY_PASSWORD" in result.stderr
    assert not (fxn_env / "nodekey.json").exists()


def test_check_ok(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_cli("init", "--plaintext")
    result = fxn_cli("config", "check")
    assert result.code == 0
    assert result.stdout == (
        f"config OK: {fxn_env / 'config.yaml'}, {fxn_env / 'backend.yaml'} (1 models, 1 backends), "
        f"key {fxn_env / 'nodekey.json'}\n"
    )


def test_check_reports_every_problem_of_both_files(fxn_cli: FxnCli, fxn_env: Path) -> None:
    config = fxn_env / "config.yaml"
    backend = fxn_env / "backend.yaml"
    config.write_text("node:\n  listenPort: 0\n  listenprot: 1\n")
    backend.write_text(
        'models:\n  - name: m\n    backends:\n      - url: "http://x"\n        apiKeyEnv: NOT_SET_X\n'
    )
    result = fxn_cli("config", "check")
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{config}:2: node.listenPort: Input should be greater than or equal to 1 "
        "(change the value to fit the limit)",
        f"{config}:3: unknown key `node.listenprot` (did you mean `listenPort`?)",
        f"{backend}:5: environment variable NOT_SET_X is not set, and backend m (http://x) needs it "
        "(export NOT_SET_X=... in the node's environment)",
        "3 problem(s) found",
    ]
    result = fxn_cli("config", "check", env={"NOT_SET_X": "v"})
    assert result.stderr.splitlines()[-1] == "2 problem(s) found"


def test_check_on_a_home_that_is_not_one(fxn_cli: FxnCli, fxn_env: Path) -> None:
    result = fxn_cli("config", "check")
    assert result.code == 2
    assert result.stderr.splitlines() == [
        f"{fxn_env}: is not a node home (no config.yaml, no key file) (run `fxn --home {fxn_env} init` to "
        "create it, or `fxn start --init`; if the node's home is elsewhere, pass --home DIR or set FXN_HOME)",
        "1 problem(s) found",
    ]


def test_check_missing_files(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_cli("init", "--plaintext")
    (fxn_env / "config.yaml").unlink()
    (fxn_env / "backend.yaml").unlink()
    result = fxn_cli("config", "check")
    assert result.code == 2
    assert result.stderr.splitlines() == [
        f"{fxn_env / 'config.yaml'}: file not found (run `fxn init` to create it)",
        f"{fxn_env / 'backend.yaml'}: file not found (run `fxn init` to create it)",
        "2 problem(s) found",
    ]


def test_check_env_override_problem(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_cli("init", "--plaintext")
    result = fxn_cli("config", "check", env={"FXN_NODE_LISTENPORT": "http"})
    assert result.code == 2
    assert result.stderr.splitlines()[0] == (
        "environment variable FXN_NODE_LISTENPORT: node.listenPort: Input should be a valid integer "
        "(write a whole number, without quotes)"
    )


def test_check_with_home_option(fxn_cli: FxnCli, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    assert fxn_cli("--home", str(other), "init", "--plaintext").code == 0
    result = fxn_cli("--home", str(other), "config", "check")
    assert result.code == 0
    assert str(other / "config.yaml") in result.stdout


def test_check_json_reports_ok_and_problems(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_cli("init", "--plaintext")
    ok = fxn_cli("config", "check", "--json")
    assert ok.code == 0
    assert json.loads(ok.stdout) == {
        "ok": True,
        "home": str(fxn_env),
        "files": [str(fxn_env / "config.yaml"), str(fxn_env / "backend.yaml"), str(fxn_env / "nodekey.json")],
        "models": 1,
        "backends": 1,
        "problems": [],
    }
    (fxn_env / "config.yaml").write_text("registry:\n  bypassAuth: yes\n")
    bad = fxn_cli("config", "check", "--json")
    assert (bad.code, bad.stderr) == (2, "")
    assert json.loads(bad.stdout)["problems"] == [
        {
            "file": str(fxn_env / "config.yaml"),
            "line": 2,
            "message": "registry.bypassAuth: Input should be a valid boolean, got 'yes'",
            "fix": "write true or false, without quotes",
        }
    ]


def test_check_workers_flag_needs_redis_as_start_does(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_cli("init", "--plaintext")
    result = fxn_cli("config", "check", "--workers", "2")
    assert result.code == 2
    assert result.stderr.splitlines()[0] == (
        "--workers 2: needs nonceCache.backend: redis in config.yaml, so that every worker refuses a "
        "replayed request (set nonceCache.backend: redis (and nonceCache.redisUrl), or run one worker)"
    )
    assert fxn_cli("config", "check", "--workers", "1").code == 0


def test_check_refuses_a_home_without_its_key_as_start_does(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_cli("init", "--plaintext")
    (fxn_env / "nodekey.json").unlink()
    result = fxn_cli("config", "check")
    assert result.code == 2
    assert result.stderr.splitlines()[0] == (
        f"{fxn_env / 'nodekey.json'}: no key file: `fxn start` never creates a node identity by itself "
        f"(run `fxn --home {fxn_env} init` to create it, or `fxn start --init`; if the node's home is "
        "elsewhere, pass --home DIR or set FXN_HOME; `fxn accounts import` brings an existing key; or fix "
        "node.keyFile)"
    )


def test_check_refuses_a_keystore_with_no_password_source_and_no_terminal(
    fxn_cli: FxnCli, fxn_env: Path
) -> None:
    fxn_cli("init", env=PW)
    result = fxn_cli("config", "check")  # stdin is not a terminal here, and FXN_KEY_PASSWORD is unset
    assert result.code == 2
    assert result.stderr.splitlines()[0] == (
        f"{fxn_env / 'nodekey.json'}: is an encrypted keystore and there is no password source (and no "
        "terminal to ask on) (set FXN_KEY_PASSWORD in the node's environment, or node.keyPasswordFile in "
        "config.yaml)"
    )
    (fxn_env / "nodekey.json").chmod(0o644)
    loose = fxn_cli("config", "check", env=PW)
    assert loose.stderr.splitlines()[0] == (
        f"{fxn_env / 'nodekey.json'}: can be read by group or others (mode 0644) "
        f"(run `chmod 600 {fxn_env / 'nodekey.json'}`)"
    )


def test_check_and_start_refuse_a_backend_url_with_credentials(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_cli("init", "--plaintext")
    backend = fxn_env / "backend.yaml"
    backend.write_text(
        'models:\n  - name: m\n    backends:\n      - url: "http://admin:hunter2@127.0.0.1:9"\n'
    )
    expected = (
        f"{backend}:4: models.0.backends.0.url: backend url 'http://***@127.0.0.1:9' has credentials in "
        "it (user:password@), and backend URLs appear in logs and status pages (remove them from the URL "
        'and reference the secret by environment variable: apiKeyEnv, or headers: {Authorization: "Basic '
        '${ENV_NAME}"})'
    )
    check = fxn_cli("config", "check")
    assert (check.code, check.stderr.splitlines()) == (2, [expected, "1 problem(s) found"])
    # `fxn start` as a process (in-process it would leave the logging bound to this test's stdout).
    start = subprocess.run([FXN, "start"], capture_output=True, text=True, timeout=60, check=False)
    assert (start.returncode, start.stderr.splitlines()) == (2, [f"error: {expected}"])
    assert "hunter2" not in check.stderr + start.stderr + start.stdout
