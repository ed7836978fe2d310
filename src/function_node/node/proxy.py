"""The OpenAI endpoints (SPEC §6): read ``"model"``, pick the model's pool, forward.

The body was read (within ``auth.maxBodyBytes``) and authenticated by the auth middleware; the
handler takes it from the caller record and never reads the request again. It is edited only when
``upstreamModel`` differs from the requested name and when the node asks for a stream's usage (SPEC
§6), each edit a splice of the one member concerned, so every other byte reaches the backend as sent.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

from function_node.errors import ApiError
from function_node.logs import bind_request
from function_node.node.backends import BACKENDS
from function_node.node.caller import caller_of
from function_node.node.json_edit import set_string_member
from function_node.node.meter import meter_of
from function_node.node.metering import request_stream_usage
from function_node.node.relay import forward

__all__ = ["OPENAI_PATHS", "add_openai_routes", "openai_handler", "select_model"]

OPENAI_PATHS: Final = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


def select_model(body: bytes) -> tuple[str, dict[str, Any]]:
    """The requested model name and the parsed body; ApiError 400 for invalid JSON or no model."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(document, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, 'the request body has no "model" string', code="missing_model")
    return model, document


async def openai_handler(request: web.Request) -> web.StreamResponse:
    body = caller_of(request).body
    name, document = select_model(body)
    bind_request(model=name)  # the request's log line names it, a 404's too
    backends = request.app[BACKENDS]
    pool = backends.pool(name)
    if pool is None:
        raise ApiError(404, f"model {name!r} is not served by this node", code="model_not_found")
    upstream = pool.config.upstream_model
    if upstream and upstream != name:
        body = set_string_member(body, "model", name, upstream)
    meter = meter_of(request)
    if meter is not None:
        meter.model = name
        body = request_stream_usage(request, pool.config, document, body, meter)
    return await forward(request, pool, body, backends.metrics)


def add_openai_routes(app: web.Application) -> None:
    for path in OPENAI_PATHS:
        app.router.add_post(path, openai_handler)
