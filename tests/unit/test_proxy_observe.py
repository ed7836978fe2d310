"""The observe middleware: OpenAI-shaped errors for every failure, request ids, the log line, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from function_node.errors import ApiError, NonceStoreError, RegistryError
from function_node.logs import bind_request, merge_request_context
from function_node.metrics import NodeMetrics
from function_node.node.observe import install_request_id, observe_middleware

Client = TestClient[web.Request, web.Application]


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret detail that must not leak")


async def _api_error(request: web.Request) -> web.Response:
    raise ApiError(
        429, "slow down", code="model_at_capacity", type_="rate_limit_error", headers={"Retry-After": "1"}
    )


async def _registry(request: web.Request) -> web.Response:
    raise RegistryError("registry unavailable: gateway-chain (stale)")


async def _nonces(request: web.Request) -> web.Response:
    raise NonceStoreError("redis down")


async def _ok(request: web.Request) -> web.Response:
    bind_request(model="m1")
    return web.json_response({"ok": True})


async def _slow(request: web.Request) -> web.Response:
    await asyncio.Event().wait()
    return web.Response()


@pytest.fixture
async def client(metrics: NodeMetrics) -> AsyncIterator[Callable[[], Awaitable[Client]]]:
    made: list[Client] = []

    async def make() -> Client:
        app = web.Application(middlewares=[observe_middleware(metrics)])
        install_request_id(app)
        for path, handler in (
            ("/boom", _boom),
            ("/api", _api_error),
            ("/registry", _registry),
            ("/nonces", _nonces),
            ("/ok/{id}", _ok),
            ("/slow", _slow),
        ):
            app.router.add_get(path, handler)
        c = TestClient(TestServer(app, handler_cancellation=True))
        await c.start_server()
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()


@pytest.mark.parametrize(
    ("path", "status", "code", "type_"),
    [
        ("/boom", 500, "internal_error", "server_error"),
        ("/api", 429, "model_at_capacity", "rate_limit_error"),
        ("/registry", 503, "registry_unavailable", "service_unavailable"),
        ("/nonces", 503, "nonce_store_unavailable", "service_unavailable"),
        ("/no/such/route", 404, "not_found", "invalid_request_error"),
    ],
)
async def test_errors_in_openai_shape(
    client: Callable[[], Awaitable[Client]], path: str, status: int, code: str, type_: str
) -> None:
    c = await client()
    resp = await c.get(path)
    assert resp.status == status
    body = await resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["type"] == type_
    assert "secret detail" not in body["error"]["message"]
    assert len(resp.headers["X-Request-Id"]) == 16


async def test_method_not_allowed(client: Callable[[], Awaitable[Client]]) -> None:
    resp = await (await client()).post("/boom")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_api_error_headers_kept(client: Callable[[], Awaitable[Client]]) -> None:
    resp = await (await client()).get("/api")
    assert resp.headers["Retry-After"] == "1"


async def test_log_line_and_metrics(client: Callable[[], Awaitable[Client]], metrics: NodeMetrics) -> None:
    with structlog.testing.capture_logs(processors=[merge_request_context]) as logs:
        c = await client()  # the middleware binds its logger when built
        resp = await c.get("/ok/123", headers={"X-Request-Id": "caller-chosen-id"})
        await c.get("/ok/456")
    assert resp.headers["X-Request-Id"] == "caller-chosen-id"
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert len(lines) == 2
    first, second = lines
    assert first["request_id"] == "caller-chosen-id"
    assert first["route"] == "/ok/{id}"  # the template: label values stay bounded
    assert first["status"] == 200
    assert first["model"] == "m1"
    assert first["caller"] == ""
    assert first["reason"] == ""
    assert second["request_id"] != first["request_id"]
    assert (
        metrics.registry.get_sample_value(
            "fxn_requests_total", {"route": "/ok/{id}", "method": "GET", "status": "200"}
        )
        == 2
    )
    assert (
        metrics.registry.get_sample_value(
            "fxn_request_duration_seconds_count", {"route": "/ok/{id}", "method": "GET"}
        )
        == 2
    )


async def test_unprintable_request_id_replaced(client: Callable[[], Awaitable[Client]]) -> None:
    resp = await (await client()).get("/ok/1", headers={"X-Request-Id": "x" * 65})
    assert resp.headers["X-Request-Id"] != "x" * 65


async def test_client_gone_counts_499(client: Callable[[], Awaitable[Client]], metrics: NodeMetrics) -> None:
    c = await client()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(c.get("/slow"), 0.2)
    for _ in range(200):
        if metrics.registry.get_sample_value(
            "fxn_requests_total", {"route": "/slow", "method": "GET", "status": "499"}
        ):
            break
        await asyncio.sleep(0.01)
    assert (
        metrics.registry.get_sample_value(
            "fxn_requests_total", {"route": "/slow", "method": "GET", "status": "499"}
        )
        == 1
    )
