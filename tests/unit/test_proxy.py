"""The proxy in-process against the fake backend: relay, rewrite, header hygiene, every error path.

Every request goes through the node's whole middleware stack (``create_app``), signed as the
development gateway by ``proxy_client``'s client.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from function_node.client import FxnSigner
from function_node.devnet.dev_backend import reply_tokens
from function_node.devnet.process import free_port
from function_node.metrics import NodeMetrics
from function_node.signing import LocalSigner
from tests.fixtures.backend import (
    DIE_MIDSTREAM,
    HANG_AFTER_HEADERS,
    HANG_BEFORE_HEADERS,
    MIDSTREAM_EVENTS,
    SLOW_STREAM,
    STATUS_422,
    STATUS_422_BODY,
    STATUS_500,
    FakeBackend,
)
from tests.fixtures.node import NodeAppClient, ProxyClient, backend_config, model_doc

CHAT = {"model": "dev", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}


def _fault_models(url: str, **extra: object) -> list[dict[str, object]]:
    names = [
        "dev",
        HANG_BEFORE_HEADERS,
        HANG_AFTER_HEADERS,
        DIE_MIDSTREAM,
        STATUS_500,
        STATUS_422,
        SLOW_STREAM,
    ]
    docs = [model_doc(n, [url], **extra) for n in names]
    for doc in docs:
        doc["timeouts"] = {"connect": "2s", "firstByte": "0.5s", "total": "30s"}
    return docs


async def test_chat_relayed_byte_for_byte(fake_backend: FakeBackend, proxy_client: ProxyClient) -> None:
    client = await proxy_client(backend_config(*_fault_models(fake_backend.url)))
    body = b'{"model":"dev","messages":[{"role":"user","content":"hi"}],  "max_tokens":3}'
    resp = await client.post(
        "/v1/chat/completions",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer gateway-secret",
            "X-Custom": "kept",
            "X-Request-Id": "req-123",
        },
    )
    assert resp.status == 200
    answer = await resp.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "".join(reply_tokens("hi", 3))
    assert resp.headers["X-Request-Id"] == "req-123"
    (seen,) = fake_backend.requests_for("dev")
    assert seen.body == body  # no rewrite configured: untouched
    lowered = {k.lower(): v for k, v in seen.headers.items()}
    for dropped in ("x-address", "x-signature", "x-timestamp", "x-nonce", "x-fxn-auth", "authorization"):
        assert dropped not in lowered
    assert lowered["x-custom"] == "kept"
    assert lowered["content-length"] == str(len(body))


async def test_upstream_model_rewritten_and_credentials_added(
    fake_backend: FakeBackend, proxy_client: ProxyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-upstream")
    doc = model_doc("public-name", [], upstreamModel="internal/name")
    doc["backends"] = [{"url": fake_backend.url + "/v1", "apiKeyEnv": "TEST_UPSTREAM_KEY"}]
    client = await proxy_client(backend_config(doc))
    resp = await client.post("/v1/chat/completions", data=orjson.dumps({**CHAT, "model": "public-name"}))
    assert resp.status == 200
    (seen,) = fake_backend.requests_for("internal/name")
    assert seen.path == "/v1/chat/completions"
    assert orjson.loads(seen.body)["messages"] == CHAT["messages"]
    assert {k.lower(): v for k, v in seen.headers.items()}["authorization"] == "Bearer sk-upstream"


async def test_completions_and_embeddings(fake_backend: FakeBackend, proxy_client: ProxyClient) -> None:
    client = await proxy_client(backend_config(model_doc("dev", [fake_backend.url])))
    resp = await client.post(
        "/v1/completions", data=orjson.dumps({"model": "dev", "prompt": "x", "max_tokens": 2})
    )
    assert resp.status == 200
    assert (await resp.json())["object"] == "text_completion"
    resp = await client.post("/v1/embeddings", data=orjson.dumps({"model": "dev", "input": ["a", "b"]}))
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert [d["index"] for d in data] == [0, 1]
    assert abs(sum(v * v for v in data[0]["embedding"]) - 1.0) < 1e-9


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b'{"messages": []}', 400, "missing_model"),
        (b'{"model": ""}', 400, "missing_model"),
        (b'{"model": 7}', 400, "missing_model"),
        (b'{"model": "nope"}', 404, "model_not_found"),
    ],
)
async def test_request_errors(
    fake_backend: FakeBackend, proxy_client: ProxyClient, body: bytes, status: int, code: str
) -> None:
    client = await proxy_client(backend_config(model_doc("dev", [fake_backend.url])))
    resp = await client.post("/v1/chat/completions", data=body)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "code"}
    assert [r for r in fake_backend.seen if r.method == "POST"] == []


async def test_backend_500_relayed_as_is(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    client = await proxy_client(backend_config(*_fault_models(fake_backend.url)))
    resp = await client.post("/v1/chat/completions", data=orjson.dumps({**CHAT, "model": STATUS_500}))
    assert resp.status == 500
    assert (await resp.json())["error"]["code"] == "fake_500"
    assert (
        metrics.registry.get_sample_value(
            "fxn_upstream_errors_total",
            {"model": STATUS_500, "backend": f"{STATUS_500}/0", "kind": "status_5xx"},
        )
        == 1
    )


async def test_backend_422_relayed_byte_for_byte(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    client = await proxy_client(backend_config(*_fault_models(fake_backend.url)))
    resp = await client.post("/v1/chat/completions", data=orjson.dumps({**CHAT, "model": STATUS_422}))
    assert resp.status == 422
    assert resp.headers["Content-Type"].startswith("application/json")
    assert await resp.read() == STATUS_422_BODY
    # The backend's refusal of the request is not a fault of the backend.
    assert (
        metrics.registry.get_sample_value(
            "fxn_upstream_errors_total",
            {"model": STATUS_422, "backend": f"{STATUS_422}/0", "kind": "status_5xx"},
        )
        is None
    )
    ready = await (await client.get("/ready")).json()
    assert all(b["healthy"] for b in ready["backends"])


async def test_post_models_lists_the_same_as_get(
    fake_backend: FakeBackend, proxy_client: ProxyClient
) -> None:
    doc = model_doc("dev", [fake_backend.url], fxnId="3")
    client = await proxy_client(backend_config(doc, model_doc("other", [fake_backend.url])))
    got = await client.get("/v1/models")
    posted = await client.post("/v1/models", data=b"{}")
    assert got.status == posted.status == 200
    listing = await got.json()
    assert await posted.json() == listing
    assert [(m["id"], m["fxn_id"]) for m in listing["data"]] == [("dev", "3"), ("other", None)]
    assert fake_backend.seen == []  # answered by the node itself


@pytest.mark.parametrize("model", [HANG_BEFORE_HEADERS, HANG_AFTER_HEADERS])
@pytest.mark.parametrize("stream", [False, True])
async def test_first_byte_timeout_is_504(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics, model: str, stream: bool
) -> None:
    client = await proxy_client(backend_config(*_fault_models(fake_backend.url)))
    resp = await client.post(
        "/v1/chat/completions", data=orjson.dumps({**CHAT, "model": model, "stream": stream})
    )
    assert resp.status == 504
    error = (await resp.json())["error"]
    assert error["code"] == "backend_timeout"
    assert "first_byte_timeout (0.5s)" in error["message"]
    fake_backend.wait_for(lambda: model in fake_backend.cancelled_models())
    assert (
        metrics.registry.get_sample_value(
            "fxn_upstream_errors_total",
            {"model": model, "backend": f"{model}/0", "kind": "first_byte_timeout"},
        )
        == 1
    )


async def test_sse_relayed_and_ends_with_done(fake_backend: FakeBackend, proxy_client: ProxyClient) -> None:
    client = await proxy_client(backend_config(model_doc("dev", [fake_backend.url])))
    resp = await client.post("/v1/chat/completions", data=orjson.dumps({**CHAT, "stream": True}))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    events = client.stream_events(await resp.read())
    assert events[-1] == "data: [DONE]"
    contents = [orjson.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in events[:-1]]
    assert "".join(contents) == "".join(reply_tokens("hello there", 5))
    assert len(events) == 1 + 5 + 1 + 1  # role, 5 tokens, finish, [DONE]


async def test_die_midstream_ends_with_error_event(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    client = await proxy_client(backend_config(*_fault_models(fake_backend.url)))
    resp = await client.post(
        "/v1/chat/completions", data=orjson.dumps({**CHAT, "model": DIE_MIDSTREAM, "stream": True})
    )
    assert resp.status == 200
    events = client.stream_events(await resp.read())
    assert events[:MIDSTREAM_EVENTS] == [f'data: {{"n": {i}}}' for i in range(MIDSTREAM_EVENTS)]
    assert len(events) == MIDSTREAM_EVENTS + 1
    error = orjson.loads(events[-1].removeprefix("data: "))["error"]
    assert error["code"] == "backend_stream_interrupted"
    assert error["type"] == "upstream_error"
    assert (
        metrics.registry.get_sample_value(
            "fxn_upstream_errors_total",
            {"model": DIE_MIDSTREAM, "backend": f"{DIE_MIDSTREAM}/0", "kind": "midstream"},
        )
        == 1
    )


async def test_client_disconnect_cancels_upstream(
    fake_backend: FakeBackend, proxy_client: ProxyClient
) -> None:
    client = await proxy_client(backend_config(*_fault_models(fake_backend.url)))
    body = orjson.dumps({**CHAT, "model": SLOW_STREAM, "stream": True, "max_tokens": 200})
    resp = await client.post("/v1/chat/completions", data=body)
    assert resp.status == 200
    first = await resp.content.readany()
    assert first.startswith(b"data: ")
    resp.close()  # the client goes away mid-stream
    await asyncio.to_thread(fake_backend.wait_for, lambda: SLOW_STREAM in fake_backend.cancelled_models())


async def test_failover_to_second_backend(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    doc = model_doc("dev", [])
    # The dead backend weighs more, so it is chosen first.
    doc["backends"] = [{"url": dead, "weight": 5}, {"url": fake_backend.url, "weight": 1}]
    doc["healthCheck"] = {"enabled": False}  # the request, not a health check, must find it dead
    client = await proxy_client(backend_config(doc))
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(CHAT))
    assert resp.status == 200
    assert len(fake_backend.requests_for("dev")) == 1
    assert (
        metrics.registry.get_sample_value(
            "fxn_upstream_errors_total", {"model": "dev", "backend": "dev/0", "kind": "connect"}
        )
        == 1
    )
    ready = await (await client.get("/ready")).json()
    assert {b["backend"]: b["healthy"] for b in ready["backends"]} == {"dev/0": False, "dev/1": True}


async def test_all_unreachable_is_502_then_503(proxy_client: ProxyClient) -> None:
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    client = await proxy_client(backend_config(model_doc("dev", dead, healthCheck={"enabled": False})))
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(CHAT))
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "backend_unreachable"
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(CHAT))
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "no_healthy_backend"
    resp = await client.get("/ready")
    assert resp.status == 503
    assert (await resp.json())["ready"] is False


async def test_max_concurrency_full_is_429(fake_backend: FakeBackend, proxy_client: ProxyClient) -> None:
    doc = model_doc(SLOW_STREAM, [])
    doc["backends"] = [{"url": fake_backend.url, "maxConcurrency": 1}]
    client = await proxy_client(backend_config(doc))
    body = orjson.dumps({**CHAT, "model": SLOW_STREAM, "stream": True, "max_tokens": 20})
    first = await client.post("/v1/chat/completions", data=body)
    assert first.status == 200
    second = await client.post("/v1/chat/completions", data=body)
    assert second.status == 429
    assert second.headers["Retry-After"] == "1"
    assert (await second.json())["error"]["code"] == "model_at_capacity"
    assert b"data: [DONE]\n\n: fxn-signature 0x" in await first.read()
    third = await client.post("/v1/chat/completions", data=body)
    assert third.status == 200
    await third.read()


async def test_full_app_in_process_with_auth(
    fake_backend: FakeBackend, node_app: NodeAppClient, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    client = await node_app(
        backend_config(model_doc("dev", [fake_backend.url])), gateways=[gateway_signer.address]
    )
    body = orjson.dumps(CHAT)
    headers = FxnSigner(gateway_signer).headers("POST", "/v1/chat/completions", body, node_signer.address)
    resp = await client.post("/v1/chat/completions", data=body, headers=headers)
    assert resp.status == 200
    assert resp.headers["X-Fxn-Node"] == node_signer.address
    replay = await client.post("/v1/chat/completions", data=body, headers=headers)
    assert replay.status == 401
    assert (await replay.json())["error"]["code"] == "replayed_nonce"
    health = await (await client.get("/health")).json()
    assert health["address"] == node_signer.address
    assert len(fake_backend.requests_for("dev")) == 1
