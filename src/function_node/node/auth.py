"""The authentication middleware: SPEC §5's checks, in order, on ``/v1/*`` and ``/challenge``, and the
response signature on every answer to a request whose signature verified.

Order (the first failure answers): request target in origin form (every route) → headers present and
well-formed → caller allowed on the route → timestamp within ``auth.maxClockSkew`` → body within
``auth.maxBodyBytes``, within ``auth.bodyReadTimeout`` and within the node-wide budget of unverified
bytes → signature recovers to ``X-Address`` → nonce claimed. The nonce is claimed last so that nobody
can burn another caller's nonces with unsigned requests, and the body is read only for known callers.

``acceptLegacySignatures: false`` refuses a legacy signature with ``bad_signature`` (the message says
that v2 is required): the request's signature is not one this node accepts, and keeping to SPEC's
reason codes keeps dashboards and gateways' error handling unchanged.

Once the signature verified, whatever the handler answers or raises is answered from here, built by
:mod:`function_node.node.answers` and signed (``X-Fxn-Response-Signature``), refusals after the check
(``replayed_nonce``) included. A streamed answer's headers leave before the middleware sees it again:
the relay signs it with the trailing SSE line (from the :class:`AnswerSigner` stored on the request),
and the app's response hook puts ``X-Fxn-Node`` on its headers as they leave.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from function_node.errors import AuthError, NonceStoreError, RegistryError, SigningError
from function_node.logs import escape_untrusted, get_logger
from function_node.node.answers import error_answer
from function_node.node.body import read_body
from function_node.node.caller import ADMISSION, Caller, set_caller
from function_node.node.context import CONTEXT, NodeContext
from function_node.node.limits import Admission
from function_node.node.nonces import NonceQuotaError
from function_node.protocol import (
    HEADER_ADDRESS,
    HEADER_NONCE,
    HEADER_RESPONSE_SIGNATURE,
    AnswerSigner,
    AuthHeaders,
    Reason,
    auth_error,
    is_protected_path,
    is_wellformed_address,
    legacy_message,
    parse_auth_headers,
    v2_message,
)
from function_node.registry.directory import CallerRole
from function_node.signing import body_sha256, recover_address

__all__ = [
    "ANSWER_SIGNER",
    "REASON_KEY",
    "answer_signer_of",
    "auth_middleware",
]

# RequestKeys, not str keys (aiohttp warns on those): read them with request.get(...).
REASON_KEY: Final = web.RequestKey("fxn_reason", str)  # the reason code of an error answer
ANSWER_SIGNER: Final = web.RequestKey("fxn_answer_signer", AnswerSigner)
_CHALLENGE_PATH: Final = "/challenge"
_V1_PREFIX: Final = "/v1/"  # the routes the per-caller budgets count (SPEC §11)


def answer_signer_of(request: web.Request) -> AnswerSigner | None:
    """The signer of this request's answers; None before (or without) a verified signature."""
    return request.get(ANSWER_SIGNER)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    if not request.raw_path.startswith("/"):
        # Absolute-, authority- or asterisk-form: the router would serve the parsed path while the raw
        # target (a scheme and host of the caller's choice) would be appended to a backend's URL.
        refusal = auth_error(
            Reason.INVALID_REQUEST_TARGET,
            "the request target must be a path beginning with '/' (origin form), not a URL",
        )
        return _refuse(request, ctx, refusal)
    if not is_protected_path(request.path):
        return await handler(request)
    try:
        bypass = ctx.settings.registry.bypass_auth
        with ctx.tracing.span("auth"):
            caller = await (_admit_bypass(request, ctx) if bypass else _verify(request, ctx))
    except AuthError as exc:
        return _refuse(request, ctx, exc)
    signer = AnswerSigner(ctx.signer, caller.address, caller.body_sha256, caller.nonce)
    request[ANSWER_SIGNER] = signer
    set_caller(request, caller)
    try:
        if caller.scheme != "bypass":
            limited = request.path.startswith(_V1_PREFIX)  # budgets count /v1/* requests
            with ctx.tracing.span("auth.nonce"):
                request[ADMISSION] = await _claim_nonce(ctx, caller, limited=limited)
        response = await handler(request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure of an authenticated request is answered, and signed, here
        response = _answer_error(request, ctx, exc)
    if not response.prepared:
        _sign_plain(response, signer)
    return response


async def _verify(request: web.Request, ctx: NodeContext) -> Caller:
    """Steps 1-5: the request is who it says it is (the nonce is claimed afterwards)."""
    headers = parse_auth_headers(request.headers)
    role = _check_route(request.path, headers.address, ctx)
    skew = abs(ctx.clock() - headers.timestamp)
    if skew > ctx.settings.auth.max_clock_skew:
        raise auth_error(
            Reason.STALE_TIMESTAMP,
            f"X-Timestamp is {skew:.0f}s away from the node's clock; the limit is "
            f"{ctx.settings.auth.max_clock_skew:.0f}s (check the caller's clock)",
        )
    with ctx.body_budget.hold() as held:
        body = await read_body(request, ctx.settings.auth, held)
        body_hash = body_sha256(body)
        _check_signature(request, ctx, headers, body_hash)
    return Caller(
        address=headers.address,
        role=role,
        nonce=headers.nonce,
        body=body,
        body_sha256=body_hash,
        scheme=headers.scheme,
    )


async def _claim_nonce(ctx: NodeContext, caller: Caller, *, limited: bool) -> Admission:
    """Step 6, with the caller's budgets checked in the same call (a refusal is the metering
    middleware's to answer: it is not an authentication failure)."""
    try:
        admission = await ctx.gate.claim(caller.address, caller.nonce, limited=limited)
    except NonceStoreError as exc:
        ctx.metrics.nonce_store_errors.inc()
        raise auth_error(Reason.NONCE_STORE_UNAVAILABLE, f"the nonce store is unavailable: {exc}") from exc
    except NonceQuotaError as exc:
        raise auth_error(
            Reason.NONCE_QUOTA_EXCEEDED,
            f"{exc} (nonceCache.maxEntriesPerCaller); its oldest nonce expires in {exc.retry_after}s",
            headers={"Retry-After": str(exc.retry_after)},
        ) from exc
    if admission is None:
        raise auth_error(Reason.REPLAYED_NONCE, "this X-Nonce was already used by this caller")
    return admission


def _role_of(address: str, ctx: NodeContext) -> CallerRole | None:
    try:
        return ctx.callers.role_of(address)
    except RegistryError as exc:
        raise auth_error(Reason.REGISTRY_UNAVAILABLE, str(exc)) from exc


def _check_route(path: str, address: str, ctx: NodeContext) -> CallerRole:
    role = _role_of(address, ctx)
    if role is None:
        raise auth_error(Reason.UNKNOWN_CALLER, f"{address} is not a registered gateway or scheduler")
    if path == _CHALLENGE_PATH and role is not CallerRole.SCHEDULER:
        raise auth_error(Reason.FORBIDDEN_ROUTE, f"{_CHALLENGE_PATH} is for schedulers only")
    return role


def _check_signature(request: web.Request, ctx: NodeContext, headers: AuthHeaders, body_hash: str) -> None:
    if headers.scheme == "v2":
        path = request.raw_path.split("?", 1)[0]
        message = v2_message(
            ctx.signer.address,
            request.method,
            path,
            body_hash,
            headers.timestamp_text,
            headers.nonce,
        )
    elif ctx.settings.auth.accept_legacy_signatures:
        message = legacy_message(body_hash, headers.timestamp_text, headers.nonce)
    else:
        raise auth_error(
            Reason.BAD_SIGNATURE,
            "this node requires the audience-bound v2 signature (X-Fxn-Auth: 2); legacy signatures are off",
        )
    try:
        signer = recover_address(message, headers.signature)
    except SigningError as exc:
        raise auth_error(Reason.BAD_SIGNATURE, f"the signature is invalid: {exc}") from exc
    if signer != headers.address:
        raise auth_error(Reason.BAD_SIGNATURE, "the signature does not match X-Address and the request")


async def _admit_bypass(request: web.Request, ctx: NodeContext) -> Caller:
    """``registry.bypassAuth``: everyone is admitted, but the body limits still hold."""
    with ctx.body_budget.hold() as held:
        body = await read_body(request, ctx.settings.auth, held)
    address = request.headers.get(HEADER_ADDRESS, "").strip()
    return Caller(
        address=address.lower() if is_wellformed_address(address) else "",
        role=None,
        nonce=request.headers.get(HEADER_NONCE, ""),
        body=body,
        body_sha256=body_sha256(body),
        scheme="bypass",
    )


def _sign_plain(response: web.StreamResponse, signer: AnswerSigner) -> None:
    if not isinstance(response, web.Response):
        return  # a StreamResponse that is not prepared yet cannot occur: handlers prepare what they stream
    body = response.body
    if body is None:
        body = b""
    if not isinstance(body, bytes | bytearray):
        raise TypeError(f"an authenticated answer must have a bytes body, not {type(body).__name__}")
    response.headers[HEADER_RESPONSE_SIGNATURE] = signer.plain(response.status, bytes(body))


def _answer_error(request: web.Request, ctx: NodeContext, exc: Exception) -> web.Response:
    answer = error_answer(exc)
    request[REASON_KEY] = answer.code
    if isinstance(exc, AuthError):
        ctx.metrics.auth_failures.labels(exc.reason).inc()
        _log_refusal(request, exc)
    elif answer.unexpected:
        get_logger("fxn.request").exception("unhandled error", error_type=type(exc).__name__)
    return answer.response


def _refuse(request: web.Request, ctx: NodeContext, exc: AuthError) -> web.Response:
    """A refusal before the signature verified: answered unsigned (the node does not know who asks)."""
    request[REASON_KEY] = exc.reason
    ctx.metrics.auth_failures.labels(exc.reason).inc()
    _log_refusal(request, exc)
    return error_answer(exc).response


def _log_refusal(request: web.Request, exc: AuthError) -> None:
    get_logger("fxn.auth").warning(
        "auth_rejected",
        reason=exc.reason,
        status=exc.status,
        caller=escape_untrusted(request.headers.get(HEADER_ADDRESS, "")),
        path=escape_untrusted(request.path),
        method=escape_untrusted(request.method),
    )
