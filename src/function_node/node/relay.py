"""The upstream call and the relay of its answer, JSON or SSE, with failover before the first byte.

aiohttp errors are translated here, once, into :class:`UpstreamError`:

* the connection is refused or times out (connect): the backend is marked unhealthy and the request
  goes to another backend of the model; when none is left, 504 ``backend_timeout`` if the last
  attempt timed out connecting, else 502 ``backend_unreachable``;
* nothing arrives within ``timeouts.firstByte`` (headers or first body byte), or ``timeouts.total``
  passes: 504 ``backend_timeout``;
* the backend breaks an answer before the client got any byte: 502 ``backend_error``;
* the backend breaks a stream after bytes were relayed: :mod:`function_node.node.stream` ends it.

A backend's own 4xx/5xx answer is relayed as it is. The client's disconnect cancels the handler
(the server runs with ``handler_cancellation``), and the ``finally`` closes the upstream response,
which closes its connection, so the backend sees the cancellation at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from function_node.errors import UpstreamError
from function_node.metrics import NodeMetrics
from function_node.node.backends import Backend, BackendPool, describe_failure
from function_node.node.context import CONTEXT
from function_node.node.meter import meter_of
from function_node.node.stream import relay_stream
from function_node.node.tracing import NO_TRACING

__all__ = ["DROP_REQUEST_HEADERS", "DROP_RESPONSE_HEADERS", "forward", "request_headers", "response_headers"]

# Hop-by-hop (RFC 9110 §7.6.1; every header named in Connection is one too), recomputed (Host,
# Content-Length) and the node's own auth headers (X-Fxn-* by prefix). The caller's Authorization is
# the gateway's business, never the backend's; backend credentials come from backend.yaml.
DROP_REQUEST_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "authorization",
        "cookie",
        "x-address",
        "x-signature",
        "x-timestamp",
        "x-nonce",
        "x-fxn-auth",
    }
)
DROP_RESPONSE_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "server",
        "set-cookie",
    }
)
_SSE: Final = "text/event-stream"
_FIRST_NON_SUCCESS: Final = 300


class _UnreachableError(Exception):
    """The backend failed before answering anything: try another one."""

    def __init__(self, kind: str, detail: str, *, unhealthy: bool) -> None:
        super().__init__(detail)
        self.kind = kind
        self.unhealthy = unhealthy


def _connection_named(headers: CIMultiDictProxy[str]) -> set[str]:
    """The headers a ``Connection`` header names: hop-by-hop for this connection only."""
    return {token.strip().lower() for value in headers.getall("Connection", ()) for token in value.split(",")}


# Header lists are plain (name, value) pairs: aiohttp copies whatever it is given into its own
# CIMultiDict, so building one here too would copy every header twice; pairs keep repeated names.
Headers = list[tuple[str, str]]
_FXN_PREFIX: Final = "x-fxn-"
_TRACE_CONTEXT: Final = frozenset({"traceparent", "tracestate"})


def request_headers(
    headers: CIMultiDictProxy[str], credentials: Mapping[str, str], *, traced: bool = False
) -> Headers:
    """The caller's headers a backend may see, with the backend's own ``credentials`` replacing any
    caller header of the same name (case-insensitively), never sitting beside it; with ``traced`` the
    caller's W3C trace context is left for the node's own (the tracer adds it)."""
    dropped: frozenset[str] | set[str] = DROP_REQUEST_HEADERS
    if credentials or traced or "Connection" in headers:
        dropped = set(DROP_REQUEST_HEADERS).union(name.lower() for name in credentials)
        if "Connection" in headers:
            dropped |= _connection_named(headers)
        if traced:
            dropped |= _TRACE_CONTEXT
    out = [
        (name, value)
        for name, value in headers.items()
        if (lower := name.lower()) not in dropped and not lower.startswith(_FXN_PREFIX)
    ]
    out.extend(credentials.items())
    return out


def response_headers(headers: CIMultiDictProxy[str]) -> Headers:
    """The backend's answer headers the client may see: never hop-by-hop ones, never ``X-Fxn-*``
    (only the node speaks for the node)."""
    dropped: frozenset[str] | set[str] = DROP_RESPONSE_HEADERS
    if "Connection" in headers:
        dropped = DROP_RESPONSE_HEADERS | _connection_named(headers)
    return [
        (name, value)
        for name, value in headers.items()
        if (lower := name.lower()) not in dropped and not lower.startswith(_FXN_PREFIX)
    ]


def _timeout_error(model: str, what: str, seconds: float | None) -> UpstreamError:
    limit = f" ({seconds:g}s)" if seconds else ""
    return UpstreamError(
        504, f"backend of model {model!r} timed out: {what}{limit}", code="backend_timeout", kind=what
    )


def _exhausted(pool: BackendPool, failure: _UnreachableError) -> UpstreamError:
    """The answer once every backend failed before answering, judged by the last failure: a
    connect timeout means the backend may be alive but slow (504), anything else that it could
    not be reached at all (502)."""
    if failure.kind == "connect_timeout":
        return _timeout_error(pool.name, "connect_timeout", pool.timeout.sock_connect)
    return UpstreamError(
        502,
        f"no backend of model {pool.name!r} could be reached (last: {failure})",
        code="backend_unreachable",
        kind=failure.kind,
    )


async def forward(
    request: web.Request, pool: BackendPool, body: bytes, metrics: NodeMetrics
) -> web.StreamResponse:
    """Send ``body`` to a backend of ``pool`` at the request's path and relay the answer."""
    session = pool.session
    context = request.app.get(CONTEXT)
    tracing = context.tracing if context is not None else NO_TRACING
    tried: list[Backend] = []
    failure: _UnreachableError | None = None
    while True:
        try:
            with tracing.span("backend.choose", **{"fxn.model": pool.name}):
                backend = pool.acquire(tried)
        except UpstreamError as exc:
            if failure is None or exc.status == 429:
                raise
            raise _exhausted(pool, failure) from exc
        tried.append(backend)
        try:
            with tracing.span("upstream", **{"fxn.backend": backend.name}):
                traced = tracing is not NO_TRACING
                headers = request_headers(request.headers, backend.headers, traced=traced)
                if traced:
                    trace_context: dict[str, str] = {}
                    tracing.inject(trace_context)  # the backend joins the trace (W3C traceparent)
                    headers.extend(trace_context.items())
                return await _exchange(
                    request, session, pool, backend, headers=headers, body=body, metrics=metrics
                )
        except _UnreachableError as exc:
            backend.error(metrics, exc.kind)
            if exc.unhealthy:
                pool.mark(backend, False, f"{exc.kind}: {exc}")
            failure = exc
        finally:
            pool.release(backend)


async def _exchange(
    request: web.Request,
    session: aiohttp.ClientSession,
    pool: BackendPool,
    backend: Backend,
    *,
    headers: Headers,
    body: bytes,
    metrics: NodeMetrics,
) -> web.StreamResponse:
    started = time.perf_counter()
    timeout = pool.timeout
    try:
        resp = await session.request(
            request.method,
            backend.base_url + request.rel_url.raw_path_qs,
            data=body,
            headers=headers,
            timeout=timeout,
        )
    except aiohttp.ConnectionTimeoutError as exc:
        raise _UnreachableError("connect_timeout", "connect timed out", unhealthy=True) from exc
    except aiohttp.SocketTimeoutError as exc:
        backend.error(metrics, "first_byte_timeout")
        raise _timeout_error(pool.name, "first_byte_timeout", timeout.sock_read) from exc
    except aiohttp.ClientConnectorError as exc:
        raise _UnreachableError("connect", describe_failure(exc), unhealthy=True) from exc
    except aiohttp.ServerDisconnectedError as exc:
        # Often a kept-alive connection the backend had just closed: retry elsewhere, stay healthy.
        raise _UnreachableError(
            "disconnected", "closed the connection before answering", unhealthy=False
        ) from exc
    except TimeoutError as exc:
        backend.error(metrics, "timeout")
        raise _timeout_error(pool.name, "total_timeout", timeout.total) from exc
    except aiohttp.ClientError as exc:
        backend.error(metrics, "protocol")
        raise UpstreamError(
            502, f"backend of model {pool.name!r} failed: {type(exc).__name__}", code="backend_error"
        ) from exc

    complete = False
    meter = meter_of(request)
    try:
        if resp.content_type == _SSE:
            answer = await _start_stream(request, pool, backend, resp=resp, started=started, metrics=metrics)
        else:
            answer = await _relay_body(pool, backend, resp, started, metrics)
            if meter is not None and answer.status < _FIRST_NON_SUCCESS and isinstance(answer.body, bytes):
                meter.take_json(answer.body)
        complete = True
        return answer
    finally:
        if meter is not None:
            meter.upstream_seconds += time.perf_counter() - started
        if complete:
            resp.release()
        else:
            resp.close()  # drops the connection: the backend sees the request cancelled


async def _read_first(
    pool: BackendPool, backend: Backend, resp: aiohttp.ClientResponse, metrics: NodeMetrics
) -> bytes:
    """The first body chunk, or the whole body; errors become 504/502 (nothing was sent yet)."""
    try:
        return await resp.content.readany()
    except aiohttp.SocketTimeoutError as exc:
        backend.error(metrics, "first_byte_timeout")
        raise _timeout_error(pool.name, "first_byte_timeout", pool.timeout.sock_read) from exc
    except TimeoutError as exc:
        backend.error(metrics, "timeout")
        raise _timeout_error(pool.name, "total_timeout", pool.timeout.total) from exc
    except aiohttp.ClientError as exc:
        backend.error(metrics, "broken_response")
        raise UpstreamError(
            502,
            f"backend of model {pool.name!r} broke its answer: {type(exc).__name__}",
            code="backend_error",
        ) from exc


async def _relay_body(
    pool: BackendPool, backend: Backend, resp: aiohttp.ClientResponse, started: float, metrics: NodeMetrics
) -> web.Response:
    first = await _read_first(pool, backend, resp, metrics)
    backend.ttfb_metric.observe(time.perf_counter() - started)
    parts = [first]
    while first:
        chunk = await _read_first(pool, backend, resp, metrics)
        if not chunk:
            break
        parts.append(chunk)
    backend.latency_metric.observe(time.perf_counter() - started)
    if resp.status >= 500:
        backend.error(metrics, "status_5xx")
    return web.Response(
        body=parts[0] if len(parts) == 1 else b"".join(parts),
        status=resp.status,
        reason=resp.reason,
        headers=response_headers(resp.headers),
    )


async def _start_stream(
    request: web.Request,
    pool: BackendPool,
    backend: Backend,
    *,
    resp: aiohttp.ClientResponse,
    started: float,
    metrics: NodeMetrics,
) -> web.StreamResponse:
    # Wait for the first chunk before answering, so a backend that hangs after its headers still
    # gets a clean 504 instead of an empty stream.
    first = await _read_first(pool, backend, resp, metrics)
    backend.ttfb_metric.observe(time.perf_counter() - started)
    out = web.StreamResponse(status=resp.status, reason=resp.reason, headers=response_headers(resp.headers))
    await out.prepare(request)
    return await relay_stream(
        request, out, first, resp=resp, pool=pool, backend=backend, started=started, metrics=metrics
    )
