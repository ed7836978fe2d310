"""Every error answer the node gives is built here, so that no path can answer without the OpenAI shape
(or, for an authenticated request, without its response signature: the auth middleware signs what
this module builds).

:func:`error_answer` turns whatever a handler raised into the answer: an :class:`ApiError` (auth
refusals included) into its status and body; an aiohttp HTTP exception (the router's 404 and 405) into
the same shape; an unavailable dependency into 503; anything else into a 500 without details (logged
with its traceback by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from function_node.errors import ApiError, NonceStoreError, RegistryError, error_body

__all__ = ["INTERNAL_ERROR", "ErrorAnswer", "error_answer", "error_response"]

INTERNAL_ERROR: Final = "internal_error"
# Failures of the node's own dependencies, answered as unavailability (fail closed).
_UNAVAILABLE: Final[dict[type[Exception], str]] = {
    RegistryError: "registry_unavailable",
    NonceStoreError: "nonce_store_unavailable",
}


def error_response(
    status: int, message: str, code: str, type_: str, headers: dict[str, str] | None = None
) -> web.Response:
    """One OpenAI-shaped error answer: ``{"error": {"message", "type", "code"}}``."""
    return web.Response(
        body=error_body(message, type_=type_, code=code),
        status=status,
        content_type="application/json",
        headers=headers,
    )


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    response: web.Response
    code: str  # the reason code: the body's "code" and the request log line's "reason"
    unexpected: bool  # a 500 for an exception nobody raised on purpose: log it with its traceback


def error_answer(exc: Exception) -> ErrorAnswer:
    """The answer for ``exc``."""
    if isinstance(exc, ApiError):
        return ErrorAnswer(
            error_response(exc.status, exc.message, exc.code, exc.type, exc.headers), exc.code, False
        )
    if isinstance(exc, web.HTTPException):
        # The router's 404/405 (and aiohttp's 413 for a body over client_max_size): keep the status
        # and its standard headers (Allow on a 405), give the body our shape.
        code = exc.reason.lower().replace(" ", "_")
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return ErrorAnswer(
            error_response(exc.status, exc.reason, code, "invalid_request_error", headers), code, False
        )
    for kind, code in _UNAVAILABLE.items():
        if isinstance(exc, kind):
            return ErrorAnswer(error_response(503, str(exc), code, "service_unavailable"), code, False)
    return ErrorAnswer(
        error_response(500, "internal error", INTERNAL_ERROR, "server_error"), INTERNAL_ERROR, True
    )
