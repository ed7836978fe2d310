"""`fxn devnet up` end to end: real anvil, contracts, development backend, node process(es), Redis and
scheduler, each on a free loopback port, started and stopped by the command under test."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from function_node import __version__
from function_node.devnet.deploy import DEV_PROVIDER
from function_node.devnet.process import ManagedProcess, free_port
from function_node.scheduler.checks import CHECKS
from function_node.scheduler.store import SchedulerStore

pytestmark = pytest.mark.e2e

FXN = str(Path(sys.executable).parent / "fxn")
WIDE = {**os.environ, "COLUMNS": "200"}


def devnet(directory: Path, *args: str, timeout: float = 110) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FXN, "devnet", "up", "--dir", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=WIDE,
        check=False,
    )


def node_ports(directory: Path) -> list[int]:
    return [
        int(yaml.safe_load((home / "config.yaml").read_text())["node"]["listenPort"])
        for home in sorted(directory.glob("node-*"))
    ]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def scheduler_verdicts(directory: Path) -> dict[tuple[str, str], bool]:
    with SchedulerStore(directory / "scheduler" / "scheduler.db") as store:
        return {(s.node_url, r.check): r.ok for s in store.summaries() for r in s.results}


def test_devnet_once_passes_every_row_and_stops_everything(tmp_path: Path) -> None:
    done = devnet(tmp_path / "net", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout
    for row in (
        "chain (anvil)",
        "registry contracts",
        "provider registration (fxn provider register)",
        "development backend",
        "node-0",
        "chat completion (openai SDK, streamed)",
        "replay to the same node",
    ):
        assert row in done.stdout
    verdicts = scheduler_verdicts(tmp_path / "net")
    [port] = node_ports(tmp_path / "net")
    assert verdicts == {(f"http://127.0.0.1:{port}", check): True for check in CHECKS}
    assert not listening(port)  # --once stopped the node it started
    assert (tmp_path / "net" / "logs" / "anvil.log").exists()
    assert (tmp_path / "net" / "chain" / "deployment.json").exists()
    # The node registered itself as an operator would: its address as the id, its publicUrl as metadata.
    assert registered_entries(tmp_path / "net") == [
        (
            DEV_PROVIDER,
            bytes.fromhex(DEV_PROVIDER[2:]),
            1,
            {"url": f"http://127.0.0.1:{port}", "version": __version__},
        )
    ]


def registered_entries(directory: Path) -> list[tuple[str, bytes, int, Any]]:
    """The provider entries in the chain state a stopped devnet left behind (anvil reloads it)."""
    from web3 import HTTPProvider, Web3

    from function_node.chain.compiled import load_abi
    from function_node.devnet.anvil import AnvilProcess

    deployment = json.loads((directory / "chain" / "deployment.json").read_text())
    anvil = AnvilProcess(
        directory / "logs" / "anvil-reload.log", state_file=directory / "chain" / "anvil-state.json"
    )
    with anvil:
        w3 = Web3(HTTPProvider(anvil.rpc_url))
        registry = w3.eth.contract(
            address=Web3.to_checksum_address(deployment["providerRegistry"]), abi=load_abi("ProviderRegistry")
        )
        rows = registry.functions.getProviders().call()
    return [(owner.lower(), entry_id, model, json.loads(meta)) for owner, entry_id, model, _, meta, _ in rows]


def test_two_replicas_share_redis_and_refuse_a_replay(tmp_path: Path) -> None:
    done = devnet(tmp_path / "net", "--once", "--replicas", "2", "--redis")
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if "replay to the second replica" in x)
    assert "passed" in line and "first 200, replay 401 replayed_nonce" in line
    # Each replica published its own URL under its own id, and the scheduler found both from the chain.
    ports = node_ports(tmp_path / "net")
    assert scheduler_verdicts(tmp_path / "net") == {
        (f"http://127.0.0.1:{port}", check): True for port in ports for check in CHECKS
    }
    assert [(e[1], e[3]["url"]) for e in registered_entries(tmp_path / "net")] == [
        (bytes.fromhex(DEV_PROVIDER[2:]) + suffix, f"http://127.0.0.1:{port}")
        for suffix, port in zip((b"", b"\x01"), ports, strict=True)
    ]
    ports = node_ports(tmp_path / "net")
    assert len(ports) == 2
    verdicts = scheduler_verdicts(tmp_path / "net")
    assert len(verdicts) == 2 * len(CHECKS) and all(verdicts.values())  # the scheduler found both replicas
    assert not any(listening(p) for p in ports)


def test_replicas_without_redis_is_a_usage_error(tmp_path: Path) -> None:
    done = devnet(tmp_path / "net", "--once", "--replicas", "2")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --replicas > 1 needs --redis: replicas must share one nonce store"
    assert not (tmp_path / "net").exists()


def test_an_unreachable_real_backend_fails_the_run(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on once this block ends
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = devnet(tmp_path / "net", "--once", "--backend", f"http://127.0.0.1:{port}", "--timeout", "8")
    assert done.returncode == 1
    assert "error: the node at http://127.0.0.1:" in done.stderr
    assert "was not ready within 8s" in done.stderr
    assert not any(listening(p) for p in node_ports(tmp_path / "net"))


def test_without_once_it_stays_up_until_sigint_and_then_stops_everything(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    proc = subprocess.Popen(
        [FXN, "devnet", "up", "--dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=WIDE,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops every process it started" in line:
            break
    else:
        pytest.fail("".join(lines))
    [port] = node_ports(directory)
    assert listening(port)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + rest
    assert "stopping" in rest
    deadline = time.monotonic() + 5
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not listening(port)


def test_once_against_a_separately_started_backend_passes(tmp_path: Path) -> None:
    # A real OpenAI-compatible server that `devnet up` did not start: the development backend, run
    # as its own process on a free port and serving a model id of this test's choosing.
    port = free_port()
    backend = ManagedProcess(
        "backend",
        [
            sys.executable,
            "-m",
            "function_node.devnet.dev_backend",
            "--port",
            str(port),
            "--model",
            "own-model",
        ],
        tmp_path / "backend.log",
        port=port,
    )
    with backend:
        done = devnet(
            tmp_path / "net", "--once", "--backend", f"http://127.0.0.1:{port}", "--model", "own-model"
        )
        assert backend.running  # devnet stops what it started, not the backend it was given
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout
    backends = yaml.safe_load((tmp_path / "net" / "node-0" / "backend.yaml").read_text())
    assert [(m["name"], [b["url"] for b in m["backends"]]) for m in backends["models"]] == [
        ("own-model", [f"http://127.0.0.1:{port}"])
    ]
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.count("│") > 3}
    assert "development backend" not in rows  # it used the given backend and started none of its own
    assert "passed" in rows["chat completion (openai SDK, streamed)"]
    assert "1/1 backends up" in rows["scheduler: endpoint"]
