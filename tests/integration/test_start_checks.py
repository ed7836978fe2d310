"""``fxn start`` refuses what ``fxn config check`` refuses, and nothing else (SPEC §2, issue 13).

Every case is a real home on disk, run through both commands as real processes: ``config check`` exits
2 exactly when ``fxn start`` exits 2. The broken files are the ones operators write (and the ones
``fxn start`` used to accept or misread). Also here: a home without a key, the warning of a node that
admits no gateway, and the node's log staying JSON (and secret-free) through shutdown.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from function_node.devnet.process import ManagedProcess, free_port
from function_node.keys import write_keystore, write_plaintext
from function_node.signing import LocalSigner
from tests.fixtures.backend import FakeBackend
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import FXN, NodeProcess, model_doc

pytestmark = pytest.mark.integration

GATEWAY = LocalSigner.from_hex(DEV_KEYS[0]).address
NODE_KEY = LocalSigner.from_hex(DEV_KEYS[2])
RPC_KEY = "0123456789abcdef0123456789abcdef"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FXN_")}
    env["FXN_KEYSTORE_SCRYPT_N"] = "1024"
    env.update(extra)
    return env


@dataclass
class Case:
    """A home: config.yaml changes (dotted keys), backend.yaml, the key file, the environment."""

    name: str
    config: dict[str, object] = field(default_factory=dict)
    backend: str = 'models:\n  - name: dev\n    backends:\n      - url: "http://127.0.0.1:9"\n'
    raw_config: str | None = None
    key: str = "plaintext"  # plaintext | keystore | none | loose
    env: dict[str, str] = field(default_factory=dict)
    start_args: tuple[str, ...] = ()

    def write(self, home: Path, port: int) -> None:
        home.mkdir(parents=True)
        doc: dict[str, object] = {
            "node": {"listenAddress": "127.0.0.1", "listenPort": port},
            "logger": {"format": "json"},
            "registry": {"static": {"gateways": [GATEWAY]}},
        }
        for dotted, value in self.config.items():
            target: dict[str, object] = doc
            *parents, last = dotted.split(".")
            for part in parents:
                target = target.setdefault(part, {})  # type: ignore[assignment]
            target[last] = value
        text = yaml.safe_dump(doc) if self.raw_config is None else self.raw_config
        (home / "config.yaml").write_text(text.replace("PORT", str(port)))
        (home / "backend.yaml").write_text(self.backend)
        key = home / "nodekey.json"
        if self.key == "keystore":
            write_keystore(key, NODE_KEY, "pw", scrypt_n=1024)
        elif self.key in ("plaintext", "loose"):
            write_plaintext(key, NODE_KEY)
            if self.key == "loose":
                key.chmod(0o644)


# Each file here is broken in one way; `config check` must refuse it and `fxn start` exit 2.
BROKEN = [
    Case("metrics-port-only", config={"metrics.listenAddress": "9109"}),
    Case("metrics-port-out-of-range", config={"metrics.listenAddress": "localhost:99999"}),
    Case("bool-yes", raw_config="node: {listenPort: PORT}\nregistry:\n  bypassAuth: yes\n"),
    Case("bool-off", raw_config="node: {listenPort: PORT}\nauth:\n  acceptLegacySignatures: off\n"),
    Case("workers-with-memory-nonces", config={"node.workers": 2}),
    Case("workers-flag-with-memory-nonces", start_args=("--workers", "2")),
    Case("matmul-too-large", config={"challenge.matmul.maxSize": 70000}),
    Case("unknown-key", config={"node.listenprot": 1}),
    Case("invalid-yaml", raw_config="node:\n  listenPort: [PORT\n"),
    Case("ttl-below-twice-the-skew", config={"nonceCache.ttl": "5m"}),
    Case("router-without-rpc", config={"registry.routerSmartContractAddress": GATEWAY}),
    Case("env-override-not-a-number", env={"FXN_NODE_LISTENPORT": "http"}),
    Case("env-bool-yes", env={"FXN_REGISTRY_BYPASSAUTH": "yes"}),
    Case(
        "backend-env-unset",
        backend="models:\n  - name: m\n    backends:\n      - {url: 'http://h:1', apiKeyEnv: NOT_SET_HERE}\n",
    ),
    Case("backend-url-not-http", backend="models:\n  - name: m\n    backends:\n      - url: 'ftp://h'\n"),
    Case(
        "backend-bool-yes",
        backend="models:\n  - name: m\n    healthCheck: {enabled: yes}\n    backends: [{url: 'http://h:1'}]\n",
    ),
    Case("no-key-file", key="none"),
    Case("key-readable-by-others", key="loose"),
    Case("keystore-without-password-source", key="keystore"),
]


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FXN, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("case", BROKEN, ids=lambda c: c.name)
def test_config_check_refuses_exactly_what_start_refuses(tmp_path: Path, case: Case) -> None:
    home, port = tmp_path / "home", free_port()
    case.write(home, port)
    env = _env(**case.env)
    workers = [a for a in case.start_args if a != "--workers"]
    checked = _run(
        ["--home", str(home), "config", "check", *(["--workers", *workers] if workers else [])], env
    )
    started = _run(["--home", str(home), "start", "--port", str(port), *case.start_args], env, timeout=30)
    assert checked.returncode == 2, checked.stdout
    assert started.returncode == 2, started.stderr
    assert "Traceback" not in started.stderr
    # The same problems, in the same words: start prefixes each with "error: ".
    problems = checked.stderr.splitlines()[:-1]
    assert started.stderr.splitlines() == [f"error: {p}" for p in problems]
    assert not (home / "nodekey.json").exists() or case.key != "none"


def test_a_good_home_passes_the_check_and_starts(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    Case("good").write(home, port)
    assert _run(["--home", str(home), "config", "check"], _env()).returncode == 0
    with ManagedProcess(
        "node", [FXN, "--home", str(home), "start"], tmp_path / "n.log", env=_env(), port=port
    ) as node:
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        assert node.stop() == 0


def test_a_busy_port_is_a_runtime_failure_not_a_configuration_one(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    Case("good").write(home, port)
    assert _run(["--home", str(home), "config", "check"], _env()).returncode == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        started = _run(["--home", str(home), "start"], _env(), timeout=30)
    assert started.returncode == 1, started.stderr


# --- a home without a key -------------------------------------------------------------------------------


def test_start_on_an_empty_or_mistyped_home_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "mistyped"
    started = _run(["start", "--home", str(home)], _env(FXN_KEY_PASSWORD="pw"), timeout=30)
    assert started.returncode == 2
    assert started.stderr == (
        f"error: {home}: is not a node home (no config.yaml, no key file) (run `fxn --home {home} init` "
        "to create it, or `fxn start --init`; if the node's home is elsewhere, pass --home DIR or set "
        "FXN_HOME)\n"
    )
    assert not home.exists()


def test_start_with_config_but_no_key_exits_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Case("unmounted-key-volume", key="none").write(home, free_port())
    started = _run(["--home", str(home), "start"], _env(FXN_KEY_PASSWORD="pw"), timeout=30)
    assert started.returncode == 2
    assert "no key file: `fxn start` never creates a node identity by itself" in started.stderr
    assert f"run `fxn --home {home} init`" in started.stderr
    assert not (home / "nodekey.json").exists()


def test_start_init_creates_the_home_and_says_so(tmp_path: Path) -> None:
    home, port = tmp_path / "empty-home", free_port()
    env = _env(FXN_KEY_PASSWORD="test-password")
    argv = [FXN, "--home", str(home), "start", "--init", "--port", str(port)]
    with ManagedProcess("node", argv, tmp_path / "n.log", env=env, port=port) as proc:
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["status"] == "ok"
        code = proc.stop()
    assert code == 0
    out = proc.log_path.read_text()
    for name in ("config.yaml", "backend.yaml", "nodekey.json"):
        assert f"created {home / name}" in out
        assert (home / name).exists()


# --- what the running node says -------------------------------------------------------------------------


def _lines(log: Path) -> Iterator[dict[str, object]]:
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            yield json.loads(line)


def test_a_node_that_admits_no_gateway_warns_at_start(
    fake_backend: FakeBackend, node_factory: Callable[..., NodeProcess]
) -> None:
    node = node_factory(models=[model_doc("dev", [fake_backend.url])], gateways=[], schedulers=[])
    warning = node.wait_for_log(lambda d: str(d.get("event", "")).startswith("no gateway can be admitted"))
    assert warning["level"] == "warning"
    assert "registry.static.gateways lists none" in str(warning["event"])


def test_with_a_gateway_list_there_is_no_such_warning(
    fake_backend: FakeBackend, node_factory: Callable[..., NodeProcess]
) -> None:
    node = node_factory(models=[model_doc("dev", [fake_backend.url])], gateways=[GATEWAY], schedulers=[])
    node.wait_for_log(lambda d: d.get("event") == "listening")
    assert not [d for d in node.log_lines() if "no gateway" in str(d.get("event", ""))]


def test_the_log_stays_json_and_never_shows_the_rpc_key_through_shutdown(
    tmp_path: Path, fake_backend: FakeBackend
) -> None:
    rpc = f"http://operator:s3cret@127.0.0.1:{free_port()}/v3/{RPC_KEY}"  # nothing listens: reads fail
    node = NodeProcess(
        tmp_path,
        models=[model_doc("dev", [fake_backend.url])],
        gateways=[GATEWAY],
        schedulers=[],
        config={"rpcProvider": rpc, "registry": {"routerSmartContractAddress": GATEWAY}},
    )
    try:
        node.start()
    finally:
        assert node.stop() == 0
    text = node.process.log_path.read_text()
    assert RPC_KEY not in text and "s3cret" not in text
    lines = text.splitlines()
    assert lines and all(line.startswith("{") for line in lines), [
        line for line in lines if not line.startswith("{")
    ]
    events = [str(d.get("event")) for d in _lines(node.process.log_path)]
    assert "stopped" in events
    assert not [e for e in events if e.startswith("Successfully disconnected")]
