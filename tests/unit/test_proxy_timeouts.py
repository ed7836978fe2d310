"""The three backend timeouts (connect / first byte / total) in-process, against real loopback sockets.

A connect timeout is produced by :func:`tests.fixtures.backend.blackhole` (a port whose accept queue
is full, so the SYN is dropped); the total timeout by the fake backend's slow models. First-byte
timeouts are covered in test_proxy.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest

from function_node.devnet.process import free_port
from function_node.metrics import NodeMetrics
from tests.fixtures.backend import HANG_BEFORE_HEADERS, SLOW_BODY, SLOW_STREAM, FakeBackend, blackhole
from tests.fixtures.node import ProxyClient, backend_config, model_doc

CHAT = {"model": "dev", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}
CONNECT = {"connect": "0.3s", "firstByte": "5s", "total": "30s"}


@pytest.fixture
def blackhole_url() -> Iterator[str]:
    with blackhole() as url:
        yield url


def _errors(metrics: NodeMetrics, model: str, backend: str, kind: str) -> float | None:
    return metrics.registry.get_sample_value(
        "fxn_upstream_errors_total", {"model": model, "backend": backend, "kind": kind}
    )


async def test_connect_timeout_fails_over(
    blackhole_url: str, fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    doc = model_doc("dev", [], timeouts=CONNECT)
    # The silent backend weighs more, so it is chosen first.
    doc["backends"] = [{"url": blackhole_url, "weight": 10}, {"url": fake_backend.url}]
    client = await proxy_client(backend_config(doc))
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(CHAT))
    assert resp.status == 200
    assert (await resp.json())["object"] == "chat.completion"
    assert len(fake_backend.requests_for("dev")) == 1
    assert _errors(metrics, "dev", "dev/0", "connect_timeout") == 1
    ready = await (await client.get("/ready")).json()
    assert {b["backend"]: b["healthy"] for b in ready["backends"]} == {"dev/0": False, "dev/1": True}


async def test_connect_timeout_on_every_backend_is_504(
    blackhole_url: str, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    client = await proxy_client(backend_config(model_doc("dev", [blackhole_url], timeouts=CONNECT)))
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(CHAT))
    assert resp.status == 504
    error = (await resp.json())["error"]
    assert error == {
        "message": "backend of model 'dev' timed out: connect_timeout (0.3s)",
        "type": "upstream_error",
        "code": "backend_timeout",
    }
    assert _errors(metrics, "dev", "dev/0", "connect_timeout") == 1
    # Marked unhealthy by that attempt: the next request is not sent anywhere.
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(CHAT))
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "no_healthy_backend"


@pytest.mark.parametrize(
    ("silent_first", "status", "code"),
    [(False, 504, "backend_timeout"), (True, 502, "backend_unreachable")],
    ids=["refused-then-timeout", "timeout-then-refused"],
)
async def test_last_failure_decides_504_or_502(
    blackhole_url: str, proxy_client: ProxyClient, silent_first: bool, status: int, code: str
) -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    first, second = (blackhole_url, refused) if silent_first else (refused, blackhole_url)
    doc = model_doc("dev", [], timeouts=CONNECT)
    doc["backends"] = [{"url": first, "weight": 10}, {"url": second, "weight": 1}]
    client = await proxy_client(backend_config(doc))
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(CHAT))
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    ready = await (await client.get("/ready")).json()
    assert {b["backend"]: b["healthy"] for b in ready["backends"]} == {"dev/0": False, "dev/1": False}


@pytest.mark.parametrize(
    ("model", "stream"),
    [(SLOW_BODY, False), (HANG_BEFORE_HEADERS, False), (HANG_BEFORE_HEADERS, True)],
)
async def test_total_timeout_before_anything_was_sent_is_504(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics, model: str, stream: bool
) -> None:
    # firstByte is longer than total, so only the total limit can end these.
    timeouts = {"connect": "2s", "firstByte": "20s", "total": "0.3s"}
    client = await proxy_client(backend_config(model_doc(model, [fake_backend.url], timeouts=timeouts)))
    resp = await client.post(
        "/v1/chat/completions", data=orjson.dumps({**CHAT, "model": model, "stream": stream})
    )
    assert resp.status == 504
    error = (await resp.json())["error"]
    assert error["code"] == "backend_timeout"
    assert error["message"] == f"backend of model {model!r} timed out: total_timeout (0.3s)"
    assert _errors(metrics, model, f"{model}/0", "timeout") == 1
    await asyncio.to_thread(fake_backend.wait_for, lambda: model in fake_backend.cancelled_models())


async def test_total_timeout_mid_stream_ends_with_error_event(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    # 400 tokens 0.05s apart take 20s; the stream starts at once and is cut at 1.5s.
    timeouts = {"connect": "2s", "firstByte": "20s", "total": "1.5s"}
    client = await proxy_client(backend_config(model_doc(SLOW_STREAM, [fake_backend.url], timeouts=timeouts)))
    body = orjson.dumps({**CHAT, "model": SLOW_STREAM, "stream": True, "max_tokens": 400})
    resp = await client.post("/v1/chat/completions", data=body)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    events = client.stream_events(await resp.read())
    assert len(events) >= 2
    assert "data: [DONE]" not in events
    for event in events[:-1]:
        assert "choices" in orjson.loads(event.removeprefix("data: "))
    error = orjson.loads(events[-1].removeprefix("data: "))["error"]
    assert error == {
        "message": "the answer took longer than 1.5s (timeouts.total)",
        "type": "upstream_error",
        "code": "backend_stream_interrupted",
    }
    assert _errors(metrics, SLOW_STREAM, f"{SLOW_STREAM}/0", "total_timeout") == 1
    await asyncio.to_thread(fake_backend.wait_for, lambda: SLOW_STREAM in fake_backend.cancelled_models())
