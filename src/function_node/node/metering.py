"""The metering middleware: budgets enforced and usage recorded for every ``/v1/*`` request (SPEC §11).

It sits inside the auth middleware, so everything it sees was authenticated and its nonce claimed, and
whatever it raises is answered by the auth layer, signed. Per request:

1. the admission made with the nonce claim (:mod:`function_node.node.limits`): a refusal is raised
   here as :class:`~function_node.errors.RateLimitedError` (429 ``rate_limited`` with ``Retry-After``,
   counted in ``fxn_rate_limited_total``, never in ``fxn_auth_failures_total``);
2. a :class:`~function_node.node.meter.Meter` on the request, which the proxy and the relay fill;
3. once the answer is finished — or cut by the client, or failed — one record to the usage recorder,
   and the settlement of the admission (slot given back, tokens charged).

:func:`request_stream_usage` is the proxy's half of SPEC §6: it asks the backend for the stream's usage
when the client did not, and marks the meter so that the relay holds that event back.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from function_node.config.backends import ModelConfig
from function_node.errors import RateLimitedError
from function_node.node.answers import error_answer
from function_node.node.backends import BACKENDS
from function_node.node.caller import admission_of, caller_of
from function_node.node.context import CONTEXT
from function_node.node.json_edit import with_stream_usage
from function_node.node.limits import Admission
from function_node.node.meter import METER, NO_MODEL, Meter
from function_node.node.stream import STREAM_OUTCOME, StreamOutcome
from function_node.node.usage import CANCELLED, status_class

__all__ = ["STREAM_USAGE_PATHS", "asks_for_usage", "metering_middleware", "request_stream_usage"]

_V1_PREFIX: Final = "/v1/"
# The endpoints whose streams carry a usage chunk when asked (embeddings do not stream).
STREAM_USAGE_PATHS: Final = frozenset({"/v1/chat/completions", "/v1/completions"})
_OK: Final = "2xx"


def asks_for_usage(document: dict[str, Any]) -> bool:
    options = document.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def request_stream_usage(
    request: web.Request, model: ModelConfig, document: dict[str, Any], body: bytes, meter: Meter
) -> bytes:
    """The body to forward: ``body`` asking for ``stream_options.include_usage`` when the request streams,
    did not ask for it, and the model forces it (``forceStreamUsage``); otherwise ``body`` itself."""
    if (
        document.get("stream") is not True
        or not model.force_stream_usage
        or request.path not in STREAM_USAGE_PATHS
        or asks_for_usage(document)
    ):
        return body
    meter.strip_usage = True
    return with_stream_usage(body, document)


@web.middleware
async def metering_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(_V1_PREFIX):
        return await handler(request)
    ctx = request.app[CONTEXT]
    caller = caller_of(request).address
    admission = admission_of(request)
    meter = Meter()
    request[METER] = meter
    if admission is not None and admission.refusal is not None:
        raise _refusal(request, caller, admission)
    outcome = "5xx"
    cancelled = False
    try:
        response = await handler(request)
        # Only a streamed answer has a stream outcome (a missing request key costs a KeyError to look up).
        stream = None if isinstance(response, web.Response) else request.get(STREAM_OUTCOME)
        if stream is StreamOutcome.CLIENT_GONE:
            outcome = CANCELLED
        elif stream is StreamOutcome.BACKEND_FAILED:
            outcome = "5xx"
        else:
            outcome = status_class(response.status)
        return response
    except asyncio.CancelledError:
        # The client left; after a complete stream it had everything (a normal end).
        complete = request.get(STREAM_OUTCOME) is StreamOutcome.COMPLETE
        outcome = _OK if complete else CANCELLED
        cancelled = True
        raise
    except Exception as exc:
        outcome = status_class(error_answer(exc).response.status)
        raise
    finally:
        usage = meter.final_usage()
        ctx.usage.record(caller, meter.model, outcome, usage, meter.upstream_seconds)
        if admission is not None and admission.needs_settle:
            tokens = usage.total if usage is not None else 0
            gate = ctx.gate
            if cancelled or gate.in_process:
                gate.settle_soon(caller, admission, tokens)
            else:
                await gate.settle(caller, admission, tokens)


def _refusal(request: web.Request, caller: str, admission: Admission) -> RateLimitedError:
    ctx = request.app[CONTEXT]
    refusal = admission.refusal
    assert refusal is not None
    ctx.usage.record(caller, _served_model(request), "4xx", None, 0.0)
    ctx.usage.rate_limited(caller, refusal.limit)
    return RateLimitedError(refusal.limit, refusal.retry_after, refusal.message(admission.spec))


def _served_model(request: web.Request) -> str:
    """The model a refused request named, when this node serves it (labels stay bounded)."""
    backends = request.app.get(BACKENDS)
    try:
        document = orjson.loads(caller_of(request).body)
    except orjson.JSONDecodeError:
        return NO_MODEL
    name = document.get("model") if isinstance(document, dict) else None
    if isinstance(name, str) and backends is not None and backends.pool(name) is not None:
        return name
    return NO_MODEL
