"""A real node (``fxn start``) reading its callers from a real anvil chain (SPEC §8).

Gateways, schedulers and the node's own provider entry live in the contracts deployed by the
``chain`` fixture; the node polls them every second. Waiting loops below have a generous deadline
only so that a broken build fails instead of hanging; they assert outcomes, not speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from function_node.client import FxnSigner
from function_node.devnet.deploy import DEV_GATEWAY
from function_node.devnet.process import free_port
from function_node.signing import LocalSigner
from tests.fixtures.anvil import ChainNet
from tests.fixtures.backend import FakeBackend
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import FXN, NodeProcess, model_doc

pytestmark = pytest.mark.integration

GATEWAY = LocalSigner.from_hex(DEV_KEYS[0])  # registered as gateway by the chain fixture
SCHEDULER = LocalSigner.from_hex(DEV_KEYS[1])  # registered as scheduler
NEWCOMER = LocalSigner.from_hex(DEV_KEYS[3])  # anvil account 3, registered by the tests
DEADLINE_S = 30.0
POLL_S = 1.0  # chain_config's default pollInterval


def chain_config(chain: ChainNet, *rpc: str, poll: str = f"{POLL_S:g}s", stale: str = "1h") -> dict[str, Any]:
    every = {"pollInterval": poll, "maxStaleness": stale}
    return {
        "rpcProvider": list(rpc) or [chain.rpc_url],
        "registry": {
            "routerSmartContractAddress": chain.deployment.router,
            "gateway": every,
            "provider": every,
            "scheduler": every,
        },
    }


def call(
    node: NodeProcess, signer: LocalSigner, path: str = "/v1/models", body: bytes = b""
) -> tuple[int, str]:
    method = "GET" if path == "/v1/models" else "POST"
    headers = FxnSigner(signer).headers(method, path, body, node.signer.address)
    resp = httpx.request(method, node.url + path, headers=headers, content=body, timeout=10)
    payload = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    code = payload.get("error", {}).get("code", "") if isinstance(payload, dict) else ""
    return resp.status_code, code or ""


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def fxn(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FXN, "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env} if env else None,
    )


def fetch_errors(node: NodeProcess, registry: str) -> float:
    text = httpx.get(node.url + "/metrics", timeout=10).text
    prefix = f'fxn_registry_fetch_errors_total{{registry="{registry}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


@pytest.fixture
def chain_node(
    chain: ChainNet, fake_backend: FakeBackend, node_factory: Callable[..., NodeProcess]
) -> Callable[..., NodeProcess]:
    def make(**config: Any) -> NodeProcess:
        return node_factory(
            models=[model_doc("m", [fake_backend.url], fxnId="2")],
            gateways=[],
            schedulers=[],
            config=config or chain_config(chain),
        )

    return make


def test_ready_lists_the_chain_registries(chain_node: Callable[..., NodeProcess]) -> None:
    node = chain_node()
    status, body = node.get_json("/ready")
    assert status == 200 and body["ready"] is True
    by_name = {r["name"]: r for r in body["registries"]}
    assert set(by_name) == {"gateway", "scheduler", "provider"}
    assert all(r["loaded"] and not r["stale"] and r["source"] == "chain" for r in by_name.values())
    assert by_name["gateway"]["entries"] == 1


def test_gateway_registered_on_chain_is_accepted_then_refused_when_paused(
    chain: ChainNet, chain_node: Callable[..., NodeProcess]
) -> None:
    node = chain_node()
    assert call(node, NEWCOMER) == (401, "unknown_caller")
    chain.admin.register_gateways([NEWCOMER.address])  # returns once the transaction is mined
    registered_at = time.monotonic()
    wait_until(lambda: call(node, NEWCOMER)[0] == 200, "registered gateway accepted")
    # A behaviour bound, not a benchmark: the next poll (every POLL_S) must pick the gateway up;
    # the 2 s margin covers one in-flight poll and the request itself on a shared machine.
    assert time.monotonic() - registered_at <= POLL_S + 2.0
    chain.admin.set_gateway_paused(NEWCOMER.address, True)
    wait_until(lambda: call(node, NEWCOMER)[0] != 200, "paused gateway refused")
    assert call(node, NEWCOMER) == (401, "unknown_caller")
    assert call(node, GATEWAY)[0] == 200


def test_scheduler_on_chain_may_challenge_and_a_gateway_may_not(
    chain_node: Callable[..., NodeProcess],
) -> None:
    node = chain_node()
    body = json.dumps({"type": "IDENTITY", "payload": {"nonce": "n1"}}).encode()
    headers = FxnSigner(SCHEDULER).headers("POST", "/challenge", body, node.signer.address)
    resp = httpx.post(node.url + "/challenge", headers=headers, content=body, timeout=30)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["address"].lower() == node.signer.address.lower()
    assert answer["nonce"] == "n1"
    assert call(node, GATEWAY, "/challenge", body) == (403, "forbidden_route")


def test_rpc_down_keeps_known_callers_counts_errors_and_restart_uses_the_snapshot(
    chain: ChainNet, chain_node: Callable[..., NodeProcess]
) -> None:
    node = chain_node()
    assert call(node, GATEWAY)[0] == 200
    chain.anvil.stop()
    before = fetch_errors(node, "gateway")
    wait_until(lambda: fetch_errors(node, "gateway") > before, "fetch errors counted")
    assert call(node, GATEWAY)[0] == 200
    assert call(node, NEWCOMER) == (401, "unknown_caller")
    node.stop(10)

    # The same node (same home, so the same registry-cache) started again, RPC still down.
    lines_before = len(node.log_lines())
    node.start()
    assert call(node, GATEWAY)[0] == 200
    assert call(node, SCHEDULER)[0] == 200
    status, body = node.get_json("/ready")
    assert status == 200 and all(r["loaded"] and not r["stale"] for r in body["registries"])
    new_lines = node.log_lines()[lines_before:]
    loaded = {line.get("registry") for line in new_lines if line.get("event") == "registry_snapshot_loaded"}
    assert loaded == {"gateway", "scheduler", "provider"}


def test_stale_registry_fails_closed_with_503(
    chain: ChainNet, chain_node: Callable[..., NodeProcess]
) -> None:
    node = chain_node(**chain_config(chain, stale="3s"))
    assert call(node, GATEWAY)[0] == 200
    chain.anvil.stop()
    wait_until(lambda: call(node, GATEWAY)[0] == 503, "stale registry refused")
    assert call(node, GATEWAY) == (503, "registry_unavailable")

    def stale_names() -> set[str]:
        return {r["name"] for r in node.get_json("/ready")[1]["registries"] if r["stale"]}

    # Each registry refreshes on its own clock, so they go stale one after the other.
    wait_until(lambda: stale_names() == {"gateway", "scheduler", "provider"}, "every registry stale")
    status, body = node.get_json("/ready")
    assert status == 503 and body["ready"] is False


def test_first_rpc_dead_second_used(chain: ChainNet, chain_node: Callable[..., NodeProcess]) -> None:
    node = chain_node(**chain_config(chain, f"http://127.0.0.1:{free_port()}", chain.rpc_url))
    assert call(node, GATEWAY)[0] == 200
    status, body = node.get_json("/ready")
    assert status == 200 and body["ready"] is True


def test_start_logs_own_registration(chain_node: Callable[..., NodeProcess]) -> None:
    node = chain_node()
    line = node.wait_for_log(lambda e: e.get("event") == "this node is an active provider")
    assert line["model_ids"] == ["2"]


def test_fxn_status_reports_registration_and_sync(
    chain_node: Callable[..., NodeProcess], fake_backend: FakeBackend
) -> None:
    node = chain_node()
    proc = fxn(node.home, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["address"] == node.signer.address.lower()
    assert report["chain"]["active"] is True and report["chain"]["activeModelIds"] == ["2"]
    assert report["chain"]["notRegistered"] == [] and report["chain"]["notConfigured"] == []
    assert report["node"]["ready"] is True
    assert {r["name"] for r in report["node"]["registries"]} == {"gateway", "scheduler", "provider"}
    assert report["node"]["backends"] == [
        {"model": "m", "backend": "m/0", "url": fake_backend.url, "healthy": True, "inFlight": 0}
    ]
    table = fxn(node.home, "status", env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert (
        "active provider" in table.stdout and "Registries" in table.stdout and DEV_GATEWAY not in table.stdout
    )
    (row,) = [line for line in table.stdout.splitlines() if fake_backend.url in line]
    assert [cell.strip() for cell in row.split("│")[1:4]] == ["m/0", fake_backend.url, "yes"], row


def test_fxn_status_exit_1_when_node_is_down(chain: ChainNet, chain_node: Callable[..., NodeProcess]) -> None:
    node = chain_node()
    node.stop(10)
    proc = fxn(node.home, "status")
    assert proc.returncode == 1
    assert "not reachable" in proc.stdout


def test_fxn_status_exit_2_on_bad_config(fxn_home: Path) -> None:
    (fxn_home / "config.yaml").write_text("registry:\n  routerSmartContractAddress: nope\n")
    proc = fxn(fxn_home, "status")
    assert proc.returncode == 2
    assert "config.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_fxn_status_exit_1_when_the_chain_is_down(
    chain: ChainNet, chain_node: Callable[..., NodeProcess]
) -> None:
    node = chain_node()
    chain.anvil.stop()
    proc = fxn(node.home, "status", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["chain"]["error"].startswith(
        "providerRegistry() failed on every RPC URL after 1 round(s): "
    )
    assert report["node"]["ready"] is True  # the node still serves from its cache


def test_fxn_status_without_chain_config(
    fake_backend: FakeBackend, node_factory: Callable[..., NodeProcess]
) -> None:
    node = node_factory(
        models=[model_doc("m", [fake_backend.url])], gateways=[GATEWAY.address], schedulers=[]
    )
    proc = fxn(node.home, "status")
    assert proc.returncode == 0, proc.stderr
    assert "not configured" in proc.stdout and "gateway-static" in proc.stdout
