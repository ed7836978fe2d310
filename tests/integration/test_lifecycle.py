"""``fxn start`` as a process: SIGHUP reloads, SIGTERM drains, /ready, workers (the checks before it
serves: test_start_checks.py)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from function_node.client import FxnAuth, FxnSigner
from function_node.devnet.process import free_port
from function_node.devnet.redis_server import RedisServer
from function_node.signing import LocalSigner
from tests.fixtures.backend import SLOW_STREAM, FakeBackend
from tests.fixtures.drain import stream_across_sigterm
from tests.fixtures.node import NodeProcess, model_doc, two_worker_node

pytestmark = pytest.mark.integration


def _chat(model: str, **extra: object) -> bytes:
    return orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **extra}
    )


def test_sighup_refuses_broken_file_then_applies_good_one(
    fake_backend: FakeBackend, node_factory: Callable[..., NodeProcess], gateway_signer: LocalSigner
) -> None:
    node = node_factory(
        models=[model_doc("first", [fake_backend.url])], gateways=[gateway_signer.address], schedulers=[]
    )
    with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:
        (node.home / "backend.yaml").write_text("models:\n  - name: broken\n    backends: not-a-list\n")
        node.process.signal(signal.SIGHUP)
        refused = node.wait_for_log(lambda d: d.get("event", "").startswith("backend.yaml refused"))
        assert refused["level"] == "error"
        assert any("backend.yaml" in p for p in refused["problems"])
        assert http.post(node.url + "/v1/chat/completions", content=_chat("first")).status_code == 200

        node.write_models([model_doc("second", [fake_backend.url])])
        node.process.signal(signal.SIGHUP)
        node.wait_for_log(lambda d: d.get("event") == "backend.yaml reloaded")
        assert http.post(node.url + "/v1/chat/completions", content=_chat("second")).status_code == 200
        gone = http.post(node.url + "/v1/chat/completions", content=_chat("first"))
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "model_not_found"
    assert node.process.running


def test_sigterm_lets_the_stream_finish_and_exits_0(
    fake_backend: FakeBackend, node_factory: Callable[..., NodeProcess], gateway_signer: LocalSigner
) -> None:
    node = node_factory(
        models=[model_doc(SLOW_STREAM, [fake_backend.url])], gateways=[gateway_signer.address], schedulers=[]
    )
    stream_across_sigterm(node, gateway_signer, fake_backend, stopping="stopping")


def test_ready_is_503_without_a_healthy_backend(
    node_factory: Callable[..., NodeProcess], gateway_signer: LocalSigner
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    doc = model_doc("dev", [dead], healthCheck={"path": "/v1/models", "interval": "1s", "timeout": "1s"})
    node = node_factory(models=[doc], gateways=[gateway_signer.address], schedulers=[])
    node.wait_for_log(lambda d: d.get("event") == "backend unhealthy")
    status, body = node.get_json("/ready")
    assert status == 503
    assert body["ready"] is False
    # Named, never by URL: /ready answers anyone who can reach the node (SPEC §10).
    assert body["backends"] == [{"model": "dev", "backend": "dev/0", "healthy": False, "inFlight": 0}]
    assert dead.removeprefix("http://") not in json.dumps(body)
    assert body["nonceStore"] == {"backend": "memory", "ok": True, "error": ""}
    assert body["warnings"] == []
    assert all(r["usable"] for r in body["registries"])
    with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:
        resp = http.post(node.url + "/v1/chat/completions", content=_chat("dev"))
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "no_healthy_backend"


def test_workers_without_redis_is_refused(
    tmp_path: Path, fake_backend: FakeBackend, gateway_signer: LocalSigner
) -> None:
    node = NodeProcess(
        tmp_path,
        models=[model_doc("dev", [fake_backend.url])],
        gateways=[gateway_signer.address],
        schedulers=[],
        args=["--workers", "2"],
    )
    proc = node.process
    proc.port = None  # it must exit, not listen
    proc.start()
    assert proc.process is not None
    assert proc.process.wait(timeout=30) == 2
    assert "needs nonceCache.backend: redis" in proc.tail()
    proc.stop()


def test_two_workers_share_the_port_and_the_replay_window(
    tmp_path: Path, fake_backend: FakeBackend, gateway_signer: LocalSigner, redis_server: RedisServer
) -> None:
    node = two_worker_node(tmp_path, fake_backend, gateway_signer, redis_server)
    node.start()
    try:
        workers = node.wait_for_log(lambda d: d.get("event") == "workers started")
        assert len(workers["pids"]) == 2
        with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:
            statuses = {
                http.post(node.url + "/v1/chat/completions", content=_chat("dev")).status_code
                for _ in range(20)
            }
        assert statuses == {200}
        # One signed request sent twice on fresh connections: whichever worker gets the copy refuses it.
        body = _chat("dev")
        headers = FxnSigner(gateway_signer).headers(
            "POST", "/v1/chat/completions", body, node_address=node.signer.address
        )
        answers = []
        for _ in range(2):
            with httpx.Client(timeout=30) as fresh:
                answers.append(fresh.post(node.url + "/v1/chat/completions", content=body, headers=headers))
        assert [a.status_code for a in answers] == [200, 401], answers[0].text
        assert answers[1].json()["error"]["code"] == "replayed_nonce"
    finally:
        assert node.stop() == 0


def test_separate_metrics_listener_and_bypass_warning(
    fake_backend: FakeBackend, node_factory: Callable[..., NodeProcess]
) -> None:
    metrics_port = free_port()
    node = node_factory(
        models=[model_doc("dev", [fake_backend.url])],
        gateways=[],
        schedulers=[],
        config={"metrics": {"listenAddress": f"127.0.0.1:{metrics_port}"}, "registry": {"bypassAuth": True}},
    )
    warning = node.wait_for_log(lambda d: "AUTHENTICATION IS OFF" in d.get("event", ""))
    assert warning["level"] == "warning"
    # bypassAuth: an unsigned request is served.
    assert httpx.post(node.url + "/v1/chat/completions", content=_chat("dev"), timeout=30).status_code == 200
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert scraped.status_code == 200
    assert 'fxn_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0' in scraped.text
    assert httpx.get(node.url + "/metrics", timeout=10).status_code == 404


def _samples(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0.0 when there are none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def test_with_two_workers_every_scrape_counts_the_whole_node(
    tmp_path: Path, fake_backend: FakeBackend, gateway_signer: LocalSigner, redis_server: RedisServer
) -> None:
    """Each scrape used to reach one worker and show its counts only, so counters went backwards."""
    node = two_worker_node(tmp_path, fake_backend, gateway_signer, redis_server)
    node.start()
    try:
        node.wait_for_log(lambda d: d.get("event") == "workers started")
        sent = 30
        for _ in range(sent):  # fresh connections: the kernel spreads them over both workers
            with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:
                assert http.post(node.url + "/v1/chat/completions", content=_chat("dev")).status_code == 200
        counts = []
        for _ in range(10):
            with httpx.Client(timeout=30) as fresh:
                text = fresh.get(node.url + "/metrics").text
            counts.append(_samples(text, "fxn_requests_total", route="/v1/chat/completions", status="200"))
        assert counts == [sent] * 10, counts
        assert _samples(text, "fxn_upstream_in_flight", model="dev") == 0
    finally:
        assert node.stop() == 0
