"""Usage from every answer, in-process through the node's whole stack (create_app: observe, auth,
metering, proxy) against the fake backend: the stream usage the node asks for and holds back, on the
bytes; the ledger's rows; and every refusal of the per-caller limits (SPEC §6, §11)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from function_node.metrics import NodeMetrics
from function_node.node.context import CONTEXT
from function_node.usage.ledger import LedgerRow, UsageLedger, ledger_path
from tests.fixtures.backend import (
    SLOW_STREAM,
    USAGE_STREAM,
    USAGE_STREAM_TOKENS,
    FakeBackend,
    usage_stream_events,
)
from tests.fixtures.node import ProxyClient, backend_config, model_doc
from tests.fixtures.signed import SignedTestClient

CHAT: dict[str, Any] = {
    "model": "dev",
    "messages": [{"role": "user", "content": "hello there"}],
    "max_tokens": 5,
}
GATEWAY = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # DEV_KEYS[0], the proxy_client's caller
BIG = b"123456789012345678901234567890"


def _models(url: str, **extra: Any) -> list[dict[str, Any]]:
    return [model_doc(name, [url], **extra) for name in ("dev", USAGE_STREAM, SLOW_STREAM)]


async def _ledger(client: SignedTestClient, home: Path) -> list[LedgerRow]:
    await client.app[CONTEXT].usage.flush()
    ledger = UsageLedger(ledger_path(home)).open()
    try:
        return ledger.query()
    finally:
        ledger.close()


def _body(**extra: Any) -> bytes:
    return orjson.dumps({**CHAT, **extra})


async def test_stream_without_usage_asked_relays_the_backends_other_events_byte_for_byte(
    fake_backend: FakeBackend, proxy_client: ProxyClient, tmp_path: Path
) -> None:
    client = await proxy_client(backend_config(*_models(fake_backend.url)))
    body = (
        b'{"model":"usage-stream","stream":true,"seed":'
        + BIG
        + b',"messages":[{"role":"user","content":"x"}]}'
    )
    resp = await client.post("/v1/chat/completions", data=body)
    assert resp.status == 200
    raw = await resp.read()
    client.stream_events(raw)  # the signature line covers exactly the bytes relayed
    relayed = raw[: raw.rindex(b": fxn-signature")]
    asked = usage_stream_events(asked=True)
    assert relayed == b"".join(e for e in asked if b'"choices":[]' not in e)  # "usage":null kept as sent
    (seen,) = fake_backend.requests_for(USAGE_STREAM)
    assert seen.body == b'{"stream_options":{"include_usage":true},' + body[1:]
    (row,) = await _ledger(client, tmp_path)
    assert (row.caller, row.model, row.requests, row.errors) == (GATEWAY, USAGE_STREAM, 1, 0)
    assert (row.prompt_tokens, row.completion_tokens) == USAGE_STREAM_TOKENS


async def test_stream_that_asked_gets_the_usage_as_sent(
    fake_backend: FakeBackend, proxy_client: ProxyClient, tmp_path: Path
) -> None:
    client = await proxy_client(backend_config(*_models(fake_backend.url)))
    body = orjson.dumps({"model": USAGE_STREAM, "stream": True, "stream_options": {"include_usage": True}})
    resp = await client.post("/v1/chat/completions", data=body)
    raw = await resp.read()
    client.stream_events(raw)
    assert raw[: raw.rindex(b": fxn-signature")] == b"".join(usage_stream_events(asked=True))
    (seen,) = fake_backend.requests_for(USAGE_STREAM)
    assert seen.body == body  # asked already: forwarded as its original bytes
    (row,) = await _ledger(client, tmp_path)
    assert (row.prompt_tokens, row.completion_tokens) == USAGE_STREAM_TOKENS


async def test_force_stream_usage_off_forwards_the_body_untouched(
    fake_backend: FakeBackend, proxy_client: ProxyClient, tmp_path: Path
) -> None:
    client = await proxy_client(backend_config(*_models(fake_backend.url, forceStreamUsage=False)))
    body = orjson.dumps({"model": USAGE_STREAM, "stream": True})
    raw = await (await client.post("/v1/chat/completions", data=body)).read()
    assert raw[: raw.rindex(b": fxn-signature")] == b"".join(usage_stream_events(asked=False))
    (seen,) = fake_backend.requests_for(USAGE_STREAM)
    assert seen.body == body
    (row,) = await _ledger(client, tmp_path)
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (1, 0, 0)  # the backend said nothing


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_dev_backend_streams_count_their_tokens(
    fake_backend: FakeBackend, proxy_client: ProxyClient, tmp_path: Path, metrics: NodeMetrics, path: str
) -> None:
    client = await proxy_client(backend_config(*_models(fake_backend.url)))
    body = (
        _body(stream=True)
        if "chat" in path
        else orjson.dumps({"model": "dev", "prompt": "a b c", "max_tokens": 4, "stream": True})
    )
    raw = await (await client.post(path, data=body)).read()
    events = client.stream_events(raw)
    assert events[-1] == "data: [DONE]"
    chunks = [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(chunk["choices"] for chunk in chunks)  # the openai SDK's chunk.choices[0] always works
    assert "usage" not in "".join(events)
    (row,) = await _ledger(client, tmp_path)
    expected = (2, 5) if "chat" in path else (3, 4)
    assert (row.prompt_tokens, row.completion_tokens) == expected
    value = metrics.registry.get_sample_value
    assert value("fxn_tokens_total", {"model": "dev", "kind": "prompt"}) == expected[0]
    assert value("fxn_tokens_total", {"model": "dev", "kind": "completion"}) == expected[1]
    assert value("fxn_caller_requests_total", {"caller": GATEWAY, "model": "dev", "status_class": "2xx"}) == 1


async def test_plain_answers_are_counted_under_the_gateways_model_name(
    fake_backend: FakeBackend, proxy_client: ProxyClient, tmp_path: Path
) -> None:
    alias = model_doc("public/alias", [fake_backend.url], upstreamModel="dev")
    client = await proxy_client(backend_config(alias))
    body = (
        b'{"model":"public/alias","seed":'
        + BIG
        + b',"messages":[{"role":"user","content":"hello there"}],"max_tokens":5}'
    )
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", data=body)
        assert resp.status == 200
        assert (await resp.json())["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
    seen = fake_backend.requests_for("dev")
    assert seen[0].body == body.replace(b'"public/alias"', b'"dev"')  # the big integer intact
    resp = await client.post("/v1/chat/completions", data=orjson.dumps({**CHAT, "model": "nope"}))
    assert resp.status == 404
    rows = await _ledger(client, tmp_path)
    assert [
        (r.model, r.requests, r.errors, r.errors_4xx, r.prompt_tokens, r.completion_tokens) for r in rows
    ] == [
        ("-", 1, 1, 1, 0, 0),
        ("public/alias", 2, 0, 0, 4, 10),
    ]
    assert rows[1].upstream_seconds > 0


async def test_a_stream_cut_by_the_client_is_counted_cancelled(
    fake_backend: FakeBackend, proxy_client: ProxyClient, tmp_path: Path, metrics: NodeMetrics
) -> None:
    client = await proxy_client(backend_config(*_models(fake_backend.url)))
    resp = await client.post(
        "/v1/chat/completions", data=_body(model=SLOW_STREAM, stream=True, max_tokens=200)
    )
    assert (await resp.content.readany()).startswith(b"data: ")
    resp.close()
    await asyncio.to_thread(fake_backend.wait_for, lambda: SLOW_STREAM in fake_backend.cancelled_models())
    for _ in range(100):
        rows = await _ledger(client, tmp_path)
        if rows:
            break
        await asyncio.sleep(0.05)
    (row,) = rows
    assert (row.model, row.requests, row.cancelled, row.errors) == (SLOW_STREAM, 1, 1, 0)
    labels = {"caller": GATEWAY, "model": SLOW_STREAM, "status_class": "cancelled"}
    assert metrics.registry.get_sample_value("fxn_caller_requests_total", labels) == 1


# --- limits (memory store: this process) ---------------------------------------------------------


def _limits(**default: int) -> dict[str, Any]:
    return {"limits": {"default": default}}


async def _refused(client: SignedTestClient, resp: Any, limit: str, metrics: NodeMetrics) -> int:
    assert resp.status == 429
    body = await resp.read()
    client.assert_signed(429, resp.headers, body)  # a refusal after the signature verified is signed
    error = orjson.loads(body)["error"]
    assert (error["code"], error["type"]) == ("rate_limited", "rate_limit_error")
    assert f"limits {limit}" in error["message"]
    retry = int(resp.headers["Retry-After"])
    assert retry >= 1
    assert metrics.registry.get_sample_value("fxn_auth_failures_total", {"reason": "rate_limited"}) is None
    return retry


async def test_requests_per_minute(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics, tmp_path: Path
) -> None:
    client = await proxy_client(
        backend_config(*_models(fake_backend.url)), settings=_limits(requestsPerMinute=3)
    )
    statuses = [(await client.post("/v1/chat/completions", data=_body())).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    resp = await client.post("/v1/chat/completions", data=_body())
    retry = await _refused(client, resp, "requestsPerMinute", metrics)
    assert 19 <= retry <= 20  # one request every 20 s
    limited = {"caller": GATEWAY, "limit": "requestsPerMinute"}
    assert metrics.registry.get_sample_value("fxn_rate_limited_total", limited) == 1
    assert len(fake_backend.requests_for("dev")) == 3  # refused before the backend
    rows = await _ledger(client, tmp_path)
    assert [(r.model, r.requests, r.errors_4xx) for r in rows] == [("dev", 4, 1)]
    # The refused request's nonce was claimed: replaying it is a replay.
    assert client.last is not None
    again = await client.client.post(
        "/v1/chat/completions", data=client.last.body, headers=dict(resp.request_info.headers)
    )
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "replayed_nonce"


async def test_tokens_per_minute_refuse_the_next_request_once_spent(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    client = await proxy_client(
        backend_config(*_models(fake_backend.url)), settings=_limits(tokensPerMinute=10)
    )
    assert (
        await client.post("/v1/chat/completions", data=_body(max_tokens=16))
    ).status == 200  # 2 + 16 tokens
    resp = await client.post("/v1/chat/completions", data=_body())
    retry = await _refused(client, resp, "tokensPerMinute", metrics)
    assert 47 <= retry <= 49  # 8 tokens short at 10 a minute
    assert len(fake_backend.requests_for("dev")) == 1


async def test_max_concurrent_with_a_slow_stream(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics
) -> None:
    client = await proxy_client(backend_config(*_models(fake_backend.url)), settings=_limits(maxConcurrent=1))
    slow = await client.post(
        "/v1/chat/completions", data=_body(model=SLOW_STREAM, stream=True, max_tokens=10)
    )
    assert slow.status == 200
    resp = await client.post("/v1/chat/completions", data=_body())
    assert await _refused(client, resp, "maxConcurrent", metrics) == 1
    await slow.read()  # the stream ends: its slot is given back
    assert (await client.post("/v1/chat/completions", data=_body())).status == 200


async def test_a_caller_of_its_own_and_routes_without_budgets(
    fake_backend: FakeBackend, proxy_client: ProxyClient
) -> None:
    settings = {
        "limits": {"default": {"requestsPerMinute": 1}, "callers": {GATEWAY: {"requestsPerMinute": 2}}}
    }
    client = await proxy_client(backend_config(*_models(fake_backend.url)), settings=settings)
    statuses = [(await client.post("/v1/chat/completions", data=_body())).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert (await client.get("/health", sign=False)).status == 200  # not /v1/*: no budget


async def test_bypass_auth_counts_requests_without_budgets(
    fake_backend: FakeBackend, proxy_client: ProxyClient, tmp_path: Path
) -> None:
    # Development only: no signature, no nonce claim, so no budgets; the ledger still counts.
    settings = {"registry": {"bypassAuth": True}, "limits": {"default": {"requestsPerMinute": 1}}}
    client = await proxy_client(backend_config(*_models(fake_backend.url)), settings=settings)
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", data=_body(), sign=False)
        assert resp.status == 200
    (row,) = await _ledger(client, tmp_path)
    assert (row.caller, row.requests, row.prompt_tokens) == ("", 2, 4)
