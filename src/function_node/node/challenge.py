"""POST /challenge: parse ``{"type", "payload"}``, dispatch to the challenge registry, answer JSON.

The auth middleware has already admitted a scheduler and read the body. Heavy work happens inside the
challenges, off the event loop (the matrix challenges queue on one worker thread and refuse with 429
``too_many_pending_proofs`` past ``challenge.matmul.maxPendingProofs``). Refusals keep the challenge's
status and carry the OpenAI error body; every answer is counted in ``fxn_challenges_total{type,outcome}``
(outcome ``ok``, ``refused`` for 4xx, ``error`` for 5xx) and timed in ``fxn_challenge_duration_seconds``.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson
from aiohttp import web

from function_node.challenges.base import ChallengeContext
from function_node.challenges.registry import ChallengeRegistry
from function_node.errors import ChallengeError, error_body
from function_node.logs import get_logger
from function_node.node.caller import caller_of

__all__ = ["CHALLENGES", "CHALLENGE_CONTEXT", "challenge_handler"]

CHALLENGES: Final = web.AppKey("fxn_challenges", ChallengeRegistry)
CHALLENGE_CONTEXT: Final = web.AppKey("fxn_challenge_context", ChallengeContext)
_UNKNOWN_TYPE_LABEL: Final = "unknown"
_SERVER_ERROR: Final = 500


def _error(status: int, message: str, code: str) -> web.Response:
    return web.Response(status=status, body=error_body(message, code=code), content_type="application/json")


def _parse(body: bytes) -> tuple[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ChallengeError("the body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ChallengeError('the body must be {"type": "<TYPE>", "payload": ...}', code="invalid_challenge")
    return data["type"], data.get("payload")


async def challenge_handler(request: web.Request) -> web.Response:
    registry = request.app[CHALLENGES]
    ctx = request.app[CHALLENGE_CONTEXT]
    metrics = ctx.metrics
    started = time.perf_counter()
    label = _UNKNOWN_TYPE_LABEL
    try:
        type_, payload = _parse(caller_of(request).body)
        challenge = registry.get(type_)
        if challenge is None:
            raise ChallengeError(
                f"unknown challenge type {type_!r}; known types: {', '.join(registry.types())}",
                code="unknown_challenge_type",
            )
        label = type_
        answer = await challenge.run(payload, ctx)
        response = web.Response(body=orjson.dumps(answer), content_type="application/json")
        outcome = "ok"
    except ChallengeError as exc:
        response = _error(exc.status, str(exc), exc.code)
        outcome = "error" if exc.status >= _SERVER_ERROR else "refused"
        get_logger("fxn.challenge").info("challenge refused", type=label, code=exc.code, status=exc.status)
    except Exception:  # one place turns a failure into a counted, OpenAI-shaped 500
        get_logger("fxn.challenge").exception("challenge failed", type=label)
        response = _error(_SERVER_ERROR, f"the {label} challenge failed on the node", "challenge_failed")
        outcome = "error"
    metrics.challenges.labels(label, outcome).inc()
    metrics.challenge_duration.labels(label).observe(time.perf_counter() - started)
    return response
