"""How a relayed stream ends: at the backend's ``[DONE]``, with a client that hangs up right after it,
and with the node's error event when the backend's 200 stream is empty (issue 16's defects 1 and 2)."""

from __future__ import annotations

import asyncio
import time

import orjson

from function_node.metrics import NodeMetrics
from tests.backends.wire import split_signature
from tests.fixtures.backend import EMPTY_STREAM, LINGER_AFTER_DONE, LINGER_EVENTS, FakeBackend
from tests.fixtures.node import ProxyClient, backend_config, model_doc

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
ROUTE = "/v1/chat/completions"


def _answered(metrics: NodeMetrics, status: int) -> float:
    labels = {"route": ROUTE, "method": "POST", "status": str(status)}
    return metrics.registry.get_sample_value("fxn_requests_total", labels) or 0.0


async def test_stream_ends_at_done_without_waiting_for_the_backend(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    fake_backend.linger = 5.0
    client = await proxy_client(backend_config(model_doc(LINGER_AFTER_DONE, [fake_backend.url])))
    started = time.monotonic()
    resp = await client.post(ROUTE, data=orjson.dumps({**CHAT, "model": LINGER_AFTER_DONE}))
    assert resp.status == 200
    assert split_signature(await resp.read())[0] == LINGER_EVENTS
    assert time.monotonic() - started < fake_backend.linger  # not held open until the backend ends
    assert _answered(metrics, 200) == 1


async def test_client_leaving_right_after_done_is_a_normal_end(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    # The openai SDK closes its connection as soon as it has read [DONE]. Before the fix the node was
    # still waiting for the backend's end of body, the hang-up cancelled it and it recorded a 499.
    client = await proxy_client(backend_config(model_doc(LINGER_AFTER_DONE, [fake_backend.url])))
    resp = await client.post(ROUTE, data=orjson.dumps({**CHAT, "model": LINGER_AFTER_DONE}))
    received = b""
    while b"data: [DONE]\n\n" not in received:
        chunk = await resp.content.readany()
        assert chunk, f"the stream ended before [DONE]: {received!r}"
        received += chunk
    resp.close()
    await asyncio.to_thread(
        fake_backend.wait_for, lambda: _answered(metrics, 200) + _answered(metrics, 499) > 0
    )
    assert (_answered(metrics, 200), _answered(metrics, 499)) == (1, 0)


async def test_empty_event_stream_ends_with_the_error_event(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    client = await proxy_client(backend_config(model_doc(EMPTY_STREAM, [fake_backend.url])))
    resp = await client.post(ROUTE, data=orjson.dumps({**CHAT, "model": EMPTY_STREAM}))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    body, _signature = split_signature(await resp.read())
    assert body.startswith(b"data: ") and body.endswith(b"\n\n")
    assert orjson.loads(body.removeprefix(b"data: ")) == {
        "error": {
            "message": "the backend answered with an empty event stream",
            "type": "upstream_error",
            "code": "backend_stream_interrupted",
        }
    }
    labels = {"model": EMPTY_STREAM, "backend": f"{EMPTY_STREAM}/0", "kind": "empty_stream"}
    assert metrics.registry.get_sample_value("fxn_upstream_errors_total", labels) == 1
