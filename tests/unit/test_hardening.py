"""The defects of the outside review and fault campaign (issue 10), each reproduced through the node's whole
middleware stack (``create_app``: observe, then auth, then the proxy) served on loopback, with raw sockets
where an HTTP client library would refuse to send what an attacker sends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from function_node.client import FxnSigner
from function_node.logs import merge_request_context
from function_node.metrics import NodeMetrics
from function_node.node.context import CONTEXT
from function_node.signing import LocalSigner
from tests.fixtures.backend import FakeBackend
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import ProxyClient, backend_config, model_doc
from tests.fixtures.signed import SignedTestClient

CHAT = {"model": "dev", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
GATEWAY = LocalSigner.from_hex(DEV_KEYS[0])
NODE = LocalSigner.from_hex(DEV_KEYS[2])


def _port(client: SignedTestClient) -> int:
    port = client.client.port
    assert port is not None
    return port


async def raw_request(
    port: int, head: bytes, body: bytes = b"", *, trickle: float = 0.0
) -> tuple[int, bytes, int]:
    """Send ``head`` (request line and headers, CRLF-separated, without the blank line) and ``body``
    (byte by byte, ``trickle`` seconds apart, when given); returns the answer's status and body, and how
    many body bytes were still unsent when the answer arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    unsent = 0
    try:
        writer.write(head + b"\r\nConnection: close\r\n\r\n")
        # The status line: the answer has begun (aiohttp may then linger, reading what is still sent).
        status_task = asyncio.create_task(reader.readuntil(b"\r\n"))
        if trickle:
            for i in range(len(body)):
                if status_task.done():
                    unsent = len(body) - i
                    break
                writer.write(body[i : i + 1])
                await writer.drain()
                await asyncio.sleep(trickle)
        else:
            writer.write(body)
        await writer.drain()
        status_line = await status_task
        rest = await reader.read()
    finally:
        writer.close()
    _, _, content = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), content, unsent


def signed_head(method: str, target: str, body: bytes, *, extra: bytes = b"") -> bytes:
    path = target.split("://", 1)[-1]
    path = path[path.index("/") :] if "://" in target else target
    headers = FxnSigner(GATEWAY).headers(method, path, body, NODE.address)
    lines = [f"{method} {target} HTTP/1.1", "Host: node", "Content-Type: application/json"]
    lines += [f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines).encode() + extra


def error_code(content: bytes) -> str:
    error = orjson.loads(content)["error"]
    assert set(error) == {"message", "type", "code"}
    return str(error["code"])


# --- 1. request targets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://x/v1/chat/completions",
        "m://x/v1/chat/completions",
        "https://api.example.com/v1/chat/completions?a=1",
    ],
)
async def test_absolute_form_target_is_refused_and_nothing_reaches_the_backend(
    fake_backend: FakeBackend, proxy_client: ProxyClient, metrics: NodeMetrics, target: str
) -> None:
    client = await proxy_client(backend_config(model_doc("dev", [fake_backend.url])))
    body = orjson.dumps(CHAT)
    status, content, _ = await raw_request(_port(client), signed_head("POST", target, body), body)
    assert (status, error_code(content)) == (400, "invalid_request_target")
    assert fake_backend.requests_for("dev") == []
    reason = metrics.registry.get_sample_value(
        "fxn_auth_failures_total", {"reason": "invalid_request_target"}
    )
    assert reason == 1


async def test_asterisk_form_is_refused(proxy_client: ProxyClient) -> None:
    client = await proxy_client(backend_config())
    status, content, _ = await raw_request(_port(client), b"OPTIONS * HTTP/1.1\r\nHost: node")
    assert (status, error_code(content)) == (400, "invalid_request_target")


async def test_only_the_path_and_query_reach_the_backend(
    fake_backend: FakeBackend, proxy_client: ProxyClient
) -> None:
    client = await proxy_client(backend_config(model_doc("dev", [fake_backend.url])))
    resp = await client.post("/v1/chat/completions?api-version=1&x=%20", json=CHAT)
    assert resp.status == 200
    (seen,) = fake_backend.requests_for("dev")
    assert seen.path == "/v1/chat/completions?api-version=1&x=%20"


# --- 2. bodies before the signature is checked ----------------------------------------------------------


async def test_a_body_that_does_not_arrive_in_time_is_408(
    fake_backend: FakeBackend, proxy_client: ProxyClient
) -> None:
    client = await proxy_client(
        backend_config(model_doc("dev", [fake_backend.url])), settings={"auth": {"bodyReadTimeout": "1s"}}
    )
    body = orjson.dumps(CHAT)
    # One byte every 0.1 s: each chunk is prompt, but the whole body would take seconds.
    head = signed_head("POST", "/v1/chat/completions", body)
    status, content, unsent = await raw_request(_port(client), head, body, trickle=0.1)
    assert (status, error_code(content)) == (408, "body_timeout")
    message = orjson.loads(content)["error"]["message"]
    assert message == "the body did not arrive within 1s (auth.bodyReadTimeout)"
    assert unsent > 0  # the node answered at its deadline, before the trickle was over
    assert fake_backend.requests_for("dev") == []


async def test_unverified_bodies_together_cannot_hold_more_than_the_budget(
    fake_backend: FakeBackend, proxy_client: ProxyClient
) -> None:
    body = orjson.dumps({**CHAT, "pad": "x" * 3000})
    settings = {"auth": {"maxBodyBytes": 4096, "maxUnverifiedBodyBytes": 8192, "bodyReadTimeout": "20s"}}
    client = await proxy_client(backend_config(model_doc("dev", [fake_backend.url])), settings=settings)
    port = _port(client)
    ctx_budget = client.app[CONTEXT].body_budget
    # Two senders announce their bodies and send them slowly: they hold 2 x ~3 KiB of the 8 KiB budget.
    holders = [
        asyncio.create_task(raw_request(port, signed_head("POST", "/v1/chat/completions", body), body[:10]))
        for _ in range(2)
    ]
    for _ in range(200):
        if ctx_budget.used >= 2 * len(body):
            break
        await asyncio.sleep(0.01)
    assert ctx_budget.used == 2 * len(body)
    status, content, _ = await raw_request(port, signed_head("POST", "/v1/chat/completions", body), body)
    assert (status, error_code(content)) == (503, "server_busy")
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    for _ in range(200):
        if ctx_budget.used == 0:
            break
        await asyncio.sleep(0.01)
    assert ctx_budget.used == 0  # given back when the senders went away
    ok = await client.post("/v1/chat/completions", data=body)
    assert ok.status == 200


async def test_server_busy_carries_retry_after(fake_backend: FakeBackend, proxy_client: ProxyClient) -> None:
    body = orjson.dumps(CHAT)
    settings = {"auth": {"maxBodyBytes": len(body), "maxUnverifiedBodyBytes": len(body)}}
    client = await proxy_client(backend_config(model_doc("dev", [fake_backend.url])), settings=settings)
    budget = client.app[CONTEXT].body_budget
    budget.used = budget.limit  # as if another request's unverified body held all of it
    resp = await client.post("/v1/chat/completions", data=body)
    budget.used = 0
    assert (resp.status, resp.headers["Retry-After"]) == (503, "1")
    assert (await resp.json())["error"]["code"] == "server_busy"
    assert "X-Fxn-Response-Signature" not in resp.headers  # refused before the signature was checked


# --- 3. untrusted header bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"0x\xff" + b"1" * 39,
        b"\xc3\xa9" * 21,
        b"0x" + b"\x80" * 40,
    ],
)
async def test_non_ascii_x_address_is_400_malformed_header_and_logged_escaped(
    proxy_client: ProxyClient, value: bytes
) -> None:
    client = await proxy_client(backend_config())
    body = orjson.dumps(CHAT)
    head = signed_head("POST", "/v1/chat/completions", body)
    head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(b"X-Address"))
    with capture_logs() as logs:
        status, content, _ = await raw_request(_port(client), head + b"\r\nX-Address: " + value, body)
    assert (status, error_code(content)) == (400, "malformed_header")
    for entry in logs:
        json.dumps(entry)  # every line encodes, whatever the header held
        assert all(str(v).isascii() for v in entry.values())


async def test_a_nul_byte_in_a_header_is_refused_by_the_parser_never_a_500(proxy_client: ProxyClient) -> None:
    client = await proxy_client(backend_config())
    body = orjson.dumps(CHAT)
    head = signed_head("POST", "/v1/chat/completions", body) + b"\r\nX-Nonce-Extra: a\x00b"
    status, _, _ = await raw_request(_port(client), head, body)
    assert status == 400


# --- 5. header hygiene -------------------------------------------------------------------------------------


async def test_headers_named_in_connection_are_not_forwarded(
    fake_backend: FakeBackend, proxy_client: ProxyClient
) -> None:
    client = await proxy_client(backend_config(model_doc("dev", [fake_backend.url])))
    resp = await client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={
            "Connection": "keep-alive, X-Internal-Hop, x-other",
            "X-Internal-Hop": "1",
            "X-Other": "2",
            "X-Kept": "3",
        },
    )
    assert resp.status == 200
    (seen,) = fake_backend.requests_for("dev")
    names = {name.lower() for name, _ in seen.header_list}
    assert "x-internal-hop" not in names and "x-other" not in names and "connection" not in names
    assert dict(seen.header_list)["X-Kept"] == "3"


async def test_backend_credentials_replace_a_caller_header_of_the_same_name(
    fake_backend: FakeBackend, proxy_client: ProxyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BACKEND_KEY", "the-backends-key")
    doc = model_doc("dev", [])
    doc["backends"] = [{"url": fake_backend.url, "headers": {"x-api-key": "${TEST_BACKEND_KEY}"}}]
    client = await proxy_client(backend_config(doc))
    resp = await client.post("/v1/chat/completions", json=CHAT, headers={"X-Api-Key": "the-callers-guess"})
    assert resp.status == 200
    (seen,) = fake_backend.requests_for("dev")
    values = [value for name, value in seen.header_list if name.lower() == "x-api-key"]
    assert values == ["the-backends-key"]  # once, the backend's own: never the caller's, never both


async def test_a_backends_x_fxn_headers_never_reach_the_client(proxy_client: ProxyClient) -> None:
    async def lying(_: web.Request) -> web.Response:
        return web.json_response(
            {"id": "x", "object": "chat.completion", "choices": []},
            headers={"X-Fxn-Node": "0x" + "ab" * 20, "X-Fxn-Response-Signature": "0x00", "X-Fxn-Other": "1"},
        )

    async with Served(lying) as url:
        client = await proxy_client(backend_config(model_doc("dev", [url])))
        resp = await client.post("/v1/chat/completions", json=CHAT)
        raw = await resp.read()
    assert resp.headers["X-Fxn-Node"] == NODE.address
    assert "X-Fxn-Other" not in resp.headers
    client.assert_signed(resp.status, resp.headers, raw)  # the node's own signature, not the backend's


# --- 14. backends by name, never by URL --------------------------------------------------------------------


async def test_metrics_and_ready_name_backends_never_by_url(
    fake_backend: FakeBackend, proxy_client: ProxyClient
) -> None:
    client = await proxy_client(backend_config(model_doc("dev", [fake_backend.url])))
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
    metrics_text = await (await client.get("/metrics")).text()
    ready_text = await (await client.get("/ready")).text()
    host_port = fake_backend.url.removeprefix("http://")
    assert 'backend="dev/0"' in metrics_text
    assert host_port not in metrics_text and host_port not in ready_text


# --- helpers -----------------------------------------------------------------------------------------------


class Served:
    """A throwaway aiohttp backend for one test: ``async with Served(handler) as url``."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", handler)
        self.runner = web.AppRunner(self.app)

    async def __aenter__(self) -> str:
        from function_node.devnet.process import free_port

        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: Any) -> None:
        await self.runner.cleanup()


# --- 4. the node's own requests never follow redirects --------------------------------------------------


async def test_health_checks_do_not_follow_redirects_with_the_backends_credentials(
    metrics: NodeMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiohttp

    from function_node.node.backends import BackendPool

    monkeypatch.setenv("TEST_BACKEND_KEY", "the-backends-key")
    seen_by_collector: list[dict[str, str]] = []

    async def collector(request: web.Request) -> web.Response:
        seen_by_collector.append(dict(request.headers))
        return web.json_response({"object": "list", "data": []})

    async with Served(collector) as collector_url:

        async def redirecting(request: web.Request) -> web.Response:
            raise web.HTTPFound(collector_url + "/steal")

        async with Served(redirecting) as backend_url:
            doc = model_doc("m", [])
            doc["backends"] = [{"url": backend_url, "headers": {"x-api-key": "${TEST_BACKEND_KEY}"}}]
            async with aiohttp.ClientSession() as session:
                pool = BackendPool(backend_config(doc).models[0], session, metrics)
                await pool.check(pool.backends[0])
    assert seen_by_collector == []  # the redirect was not followed: the key stayed with the backend


# --- the request log line names the model on 404 and the reason on 5xx (issue 13 item 10) ---------------


async def test_request_log_line_names_the_model_of_a_404_and_the_reason_of_a_502(
    proxy_client: ProxyClient,
) -> None:
    from function_node.devnet.process import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    client = await proxy_client(backend_config(model_doc("dev", [dead])))
    with capture_logs(processors=[merge_request_context]) as logs:
        missing = await client.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"})
        unreachable = await client.post("/v1/chat/completions", json=CHAT)
    assert (missing.status, unreachable.status) == (404, 502)
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert [(e["status"], e.get("model"), e["reason"]) for e in lines] == [
        (404, "no-such-model", "model_not_found"),
        (502, "dev", "backend_unreachable"),
    ]
    assert all(dead.removeprefix("http://") not in json.dumps(entry) for entry in logs)
