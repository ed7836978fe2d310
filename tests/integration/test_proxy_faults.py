"""Backend faults through a real ``fxn start`` node, with signed requests (FxnAuth) over loopback."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest
import yaml

from function_node.client import FxnAuth
from function_node.devnet.process import free_port
from function_node.signing import LocalSigner
from tests.fixtures.backend import (
    DIE_MIDSTREAM,
    HANG_BEFORE_HEADERS,
    MIDSTREAM_EVENTS,
    SLOW_STREAM,
    STATUS_422,
    STATUS_422_BODY,
    STATUS_500,
    FakeBackend,
    blackhole,
)
from tests.fixtures.node import NodeProcess, model_doc
from tests.fixtures.signed import sse_events

pytestmark = pytest.mark.integration

CHAT = {"model": "dev", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _post(http: httpx.Client, node: NodeProcess, body: dict[str, object] | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return http.post(node.url + "/v1/chat/completions", content=content)


@pytest.fixture
def http(gateway_signer: LocalSigner) -> Iterator[httpx.Client]:
    with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as client:
        yield client


@pytest.fixture
def faulty_node(
    fake_backend: FakeBackend,
    node_factory: Callable[..., NodeProcess],
    gateway_signer: LocalSigner,
) -> NodeProcess:
    models = [
        model_doc(name, [fake_backend.url])
        for name in ("dev", HANG_BEFORE_HEADERS, DIE_MIDSTREAM, STATUS_500, STATUS_422)
    ]
    models[1]["timeouts"] = {"connect": "2s", "firstByte": "1s", "total": "30s"}
    slow = model_doc(SLOW_STREAM, [])
    slow["backends"] = [{"url": fake_backend.url, "maxConcurrency": 1}]
    return node_factory(models=[*models, slow], gateways=[gateway_signer.address], schedulers=[])


def test_refused_backend_fails_over(
    fake_backend: FakeBackend,
    node_factory: Callable[..., NodeProcess],
    gateway_signer: LocalSigner,
    http: httpx.Client,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    doc = model_doc("dev", [])
    doc["backends"] = [{"url": dead, "weight": 10}, {"url": fake_backend.url}]
    node = node_factory(models=[doc], gateways=[gateway_signer.address], schedulers=[])
    resp = _post(http, node, CHAT)
    assert resp.status_code == 200
    assert resp.json()["object"] == "chat.completion"
    assert len(fake_backend.requests_for("dev")) == 1
    status, ready = node.get_json("/ready")
    assert status == 200
    assert {b["backend"]: b["healthy"] for b in ready["backends"]} == {"dev/0": False, "dev/1": True}
    metrics = httpx.get(node.url + "/metrics").text
    assert 'fxn_upstream_errors_total{backend="dev/0",kind="connect",model="dev"} 1.0' in metrics


def test_backend_that_never_accepts_is_504(
    node_factory: Callable[..., NodeProcess], gateway_signer: LocalSigner, http: httpx.Client
) -> None:
    with blackhole() as silent:
        doc = model_doc("dev", [silent], timeouts={"connect": "0.3s", "firstByte": "5s", "total": "30s"})
        node = node_factory(models=[doc], gateways=[gateway_signer.address], schedulers=[])
        resp = _post(http, node, CHAT)
    assert resp.status_code == 504
    assert resp.json()["error"] == {
        "message": "backend of model 'dev' timed out: connect_timeout (0.3s)",
        "type": "upstream_error",
        "code": "backend_timeout",
    }
    metrics = httpx.get(node.url + "/metrics").text
    assert 'fxn_upstream_errors_total{backend="dev/0",kind="connect_timeout",model="dev"} 1.0' in metrics


def test_backend_422_relayed_as_is(faulty_node: NodeProcess, http: httpx.Client) -> None:
    resp = _post(http, faulty_node, {**CHAT, "model": STATUS_422})
    assert resp.status_code == 422
    assert resp.content == STATUS_422_BODY
    assert resp.headers["X-Fxn-Node"] == faulty_node.signer.address


def test_hang_before_first_byte_is_504(
    faulty_node: NodeProcess, fake_backend: FakeBackend, http: httpx.Client
) -> None:
    resp = _post(http, faulty_node, {**CHAT, "model": HANG_BEFORE_HEADERS})
    assert resp.status_code == 504
    assert resp.json()["error"]["code"] == "backend_timeout"
    fake_backend.wait_for(lambda: HANG_BEFORE_HEADERS in fake_backend.cancelled_models())


def test_die_midstream_sends_error_event(faulty_node: NodeProcess, http: httpx.Client) -> None:
    with http.stream(
        "POST",
        faulty_node.url + "/v1/chat/completions",
        content=orjson.dumps({**CHAT, "model": DIE_MIDSTREAM, "stream": True}),
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        events = sse_events(resp.read())
    assert len(events) == MIDSTREAM_EVENTS + 1
    error = orjson.loads(events[-1].removeprefix("data: "))["error"]
    assert error == {
        "message": error["message"],
        "type": "upstream_error",
        "code": "backend_stream_interrupted",
    }


def test_client_disconnect_cancels_backend_request(
    faulty_node: NodeProcess, fake_backend: FakeBackend, http: httpx.Client
) -> None:
    body = orjson.dumps({**CHAT, "model": SLOW_STREAM, "stream": True, "max_tokens": 500})
    with http.stream("POST", faulty_node.url + "/v1/chat/completions", content=body) as resp:
        assert resp.status_code == 200
        first = next(resp.iter_raw())
        assert first.startswith(b"data: ")
    # Leaving the block closed the connection mid-stream.
    fake_backend.wait_for(lambda: SLOW_STREAM in fake_backend.cancelled_models())


def test_max_concurrency_full_is_429(faulty_node: NodeProcess, http: httpx.Client) -> None:
    body = orjson.dumps({**CHAT, "model": SLOW_STREAM, "stream": True, "max_tokens": 40})
    with http.stream("POST", faulty_node.url + "/v1/chat/completions", content=body) as first:
        assert first.status_code == 200
        second = _post(http, faulty_node, body)
        assert second.status_code == 429
        assert second.headers["Retry-After"] == "1"
        assert second.json()["error"]["code"] == "model_at_capacity"
        assert sse_events(first.read())[-1] == "data: [DONE]"


def test_max_concurrency_holds_across_a_reload(
    fake_backend: FakeBackend, faulty_node: NodeProcess, http: httpx.Client
) -> None:
    """SIGHUP used to start counting at 0 again: a backend limited to 1 then got 2 requests at once."""
    body = orjson.dumps({**CHAT, "model": SLOW_STREAM, "stream": True, "max_tokens": 40})
    with http.stream("POST", faulty_node.url + "/v1/chat/completions", content=body) as first:
        assert first.status_code == 200
        # The same backend URL, another weight: a reload that keeps the backend.
        document = yaml.safe_load((faulty_node.home / "backend.yaml").read_text())
        slow = next(m for m in document["models"] if m["name"] == SLOW_STREAM)
        slow["backends"][0]["weight"] = 2
        faulty_node.write_models(document["models"])
        faulty_node.process.signal(signal.SIGHUP)
        faulty_node.wait_for_log(lambda d: d.get("event") == "backend.yaml reloaded")
        second = _post(http, faulty_node, body)
        assert (second.status_code, second.json()["error"]["code"]) == (429, "model_at_capacity")
        assert sse_events(first.read())[-1] == "data: [DONE]"
    third = _post(http, faulty_node, {**CHAT, "model": SLOW_STREAM, "max_tokens": 2})
    assert third.status_code == 200  # the finished stream was released into the reloaded backend
    assert len(fake_backend.requests_for(SLOW_STREAM)) == 2  # the refused request never reached it


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({**CHAT, "model": "unknown-model"}, 404, "model_not_found"),
        (b"{this is not json", 400, "invalid_json"),
        ({"messages": []}, 400, "missing_model"),
        ({**CHAT, "model": STATUS_500}, 500, "fake_500"),
        ({**CHAT, "model": STATUS_422}, 422, "fake_422"),
    ],
)
def test_error_answers(
    faulty_node: NodeProcess, http: httpx.Client, body: dict[str, object] | bytes, status: int, code: str
) -> None:
    resp = _post(http, faulty_node, body)
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code
