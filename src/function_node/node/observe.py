"""The outermost middleware: request id, log context, one log line and the request metrics per request.

An exception that reaches it (from an unauthenticated route; the auth middleware answers, and signs,
everything of the routes it protects) is answered by :func:`~function_node.node.answers.error_answer`,
the one place error answers are built. The route label is the route's template, so label values stay
bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client.metrics import Counter, Histogram

from function_node.logs import REQUEST_CONTEXT, RequestLine, get_logger
from function_node.metrics import NodeMetrics
from function_node.node.answers import error_answer
from function_node.node.auth import REASON_KEY
from function_node.node.caller import caller_of
from function_node.node.context import CONTEXT
from function_node.node.stream import STREAM_OUTCOME, StreamOutcome
from function_node.node.tracing import NO_TRACING

__all__ = ["REQUEST_ID", "install_request_id", "observe_middleware"]

REQUEST_ID: Final = web.RequestKey("fxn_request_id", str)
_STATUS_KEY: Final = web.RequestKey("fxn_logged_status", int)
_MAX_REQUEST_ID: Final = 64
_CLIENT_CLOSED: Final = 499  # nginx's convention for "the client went away first"
_UNMATCHED: Final = "unmatched"


class _RequestIds:
    """Request ids unique across processes and restarts: a random prefix drawn once, and a counter
    (a random id per request would cost a getrandom() call each)."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(5).hex()
        self._counter = itertools.count(1)

    def __call__(self, request: web.Request) -> str:
        given = request.headers.get("X-Request-Id", "")
        if 0 < len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable():
            return given
        return f"{self._prefix}{next(self._counter):06x}"


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else _UNMATCHED


def observe_middleware(metrics: NodeMetrics) -> Middleware:
    """The middleware, bound to ``metrics``; put it first in the application's middlewares."""
    # bind() resolves structlog's lazy proxy once (configure logging before building the app);
    # the proxy would otherwise rebuild the logger on every request line.
    log = get_logger("fxn.request").bind()
    request_line = RequestLine()
    request_ids = _RequestIds()
    # Labelled children, cached per app: labels() takes a lock and hashes on every call.
    counters: dict[tuple[str, str, int], Counter] = {}
    histograms: dict[tuple[str, str], Histogram] = {}

    def record(route: str, method: str, status: int, elapsed: float) -> None:
        key = (route, method, status)
        counter = counters.get(key)
        if counter is None:
            counter = counters[key] = metrics.requests.labels(route, method, str(status))
        counter.inc()
        hkey = (route, method)
        histogram = histograms.get(hkey)
        if histogram is None:
            histogram = histograms[hkey] = metrics.request_latency.labels(route, method)
        histogram.observe(elapsed)

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = request_ids(request)
        request[REQUEST_ID] = request_id
        route = _route(request)
        # aiohttp serves a keep-alive connection's requests in one task, so one request's context
        # would leak into the next without the reset in ``finally``.
        log_context = REQUEST_CONTEXT.set(
            {"request_id": request_id, "route": route, "method": request.method}
        )
        context = request.app.get(CONTEXT)
        tracing = context.tracing if context is not None else NO_TRACING
        status = 500
        with tracing.request(request) as span:
            try:
                return await _answer(request, handler)
            except asyncio.CancelledError:
                # The client left. After a complete stream that is a normal end (it got everything).
                complete = request.get(STREAM_OUTCOME) is StreamOutcome.COMPLETE
                status = 200 if complete else _CLIENT_CLOSED
                raise
            finally:
                status = request.get(_STATUS_KEY, status)
                span.finish(status, route)
                elapsed = time.perf_counter() - started
                record(route, request.method, status, elapsed)
                try:
                    caller = caller_of(request).address
                except RuntimeError:  # refused before auth finished, or an unauthenticated route
                    caller = ""
                request_line.info(
                    "request",
                    status=status,
                    latency_ms=round(elapsed * 1000, 3),
                    caller=caller,
                    reason=request.get(REASON_KEY, ""),
                )
                REQUEST_CONTEXT.reset(log_context)

    async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # unauthenticated routes; the auth middleware answers its own
            answer = error_answer(exc)
            request[REASON_KEY] = answer.code
            if answer.unexpected:
                log.exception("unhandled error", error_type=type(exc).__name__)
            response = answer.response
        status = response.status
        if request.get(STREAM_OUTCOME) is StreamOutcome.CLIENT_GONE:
            status = _CLIENT_CLOSED  # the stream's headers said 200; the client left before the end
        request[_STATUS_KEY] = status
        return response

    return observe


def install_request_id(app: web.Application) -> None:
    """Add ``X-Request-Id`` to every answer, streamed ones included (before their headers leave)."""

    async def stamp(request: web.Request, response: web.StreamResponse) -> None:
        request_id = request.get(REQUEST_ID)
        if request_id is not None:
            response.headers["X-Request-Id"] = request_id

    app.on_response_prepare.append(stamp)
