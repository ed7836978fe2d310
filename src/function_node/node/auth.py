"""The authentication middleware: SPEC §5's checks, in order, on ``/v1/*`` and ``/challenge``.

Order (the first failure answers): headers present and well-formed → caller allowed on the route →
timestamp within ``auth.maxClockSkew`` → body within ``auth.maxBodyBytes`` → signature recovers to
``X-Address`` → nonce claimed. The nonce is claimed last so that nobody can burn another caller's
nonces with unsigned requests, and the body is read only for known callers.

``acceptLegacySignatures: false`` refuses a legacy signature with ``bad_signature`` (the message says
that v2 is required): the request's signature is not one this node accepts, and keeping to SPEC's
reason codes keeps dashboards and gateways' error handling unchanged.

Answers to authenticated requests carry ``X-Fxn-Node``; plain (non-streamed) answers also carry
``X-Fxn-Response-Signature``. A streamed answer's headers leave before the middleware sees it
again, so the app registers :func:`add_node_header` on ``on_response_prepare`` for those.
Handlers' ``web.HTTPException`` and ``ApiError`` are turned into answers here so that they are
signed too; an error middleware, if any, belongs inside (after) this one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from function_node.errors import ApiError, AuthError, NonceStoreError, RegistryError, SigningError
from function_node.logs import get_logger
from function_node.node.auth_checks import (
    HEADER_ADDRESS,
    HEADER_NODE,
    HEADER_NONCE,
    HEADER_RESPONSE_SIGNATURE,
    AuthHeaders,
    Reason,
    auth_error,
    is_wellformed_address,
    parse_auth_headers,
)
from function_node.node.caller import Caller, set_caller
from function_node.node.context import CONTEXT, NodeContext
from function_node.registry.directory import CallerRole
from function_node.signing import (
    body_sha256,
    legacy_message,
    recover_address,
    response_message,
    v2_message,
)

__all__ = ["AUTH_REASON_KEY", "add_node_header", "auth_middleware", "is_protected_path", "read_body_limited"]

# RequestKeys, not str keys (aiohttp warns on those): read the reason with request.get(AUTH_REASON_KEY).
AUTH_REASON_KEY: Final = web.RequestKey("fxn_auth_reason", str)
_NODE_HEADER_KEY: Final = web.RequestKey("fxn_node_header", str)
_READ_CHUNK: Final = 64 * 1024
_CHALLENGE_PATH: Final = "/challenge"
_V1_PREFIX: Final = "/v1/"


def is_protected_path(path: str) -> bool:
    return path == _CHALLENGE_PATH or path.startswith(_V1_PREFIX)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_protected_path(request.path):
        return await handler(request)
    ctx = request.app[CONTEXT]
    claimed_address = request.headers.get(HEADER_ADDRESS, "")
    try:
        if ctx.settings.registry.bypass_auth:
            caller = await _admit_bypass(request, ctx)
        else:
            caller = await _authenticate(request, ctx)
    except AuthError as exc:
        return _reject(request, ctx, exc, claimed_address)
    set_caller(request, caller)
    request[_NODE_HEADER_KEY] = ctx.signer.address  # LocalSigner keeps it checksummed
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _sign_answer(ctx, caller, exc, request[_NODE_HEADER_KEY])
        raise
    except ApiError as exc:
        response = web.Response(
            status=exc.status, body=exc.body(), content_type="application/json", headers=exc.headers
        )
    _sign_answer(ctx, caller, response, request[_NODE_HEADER_KEY])
    return response


async def add_node_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: ``X-Fxn-Node`` on streamed answers to authenticated requests."""
    node = request.get(_NODE_HEADER_KEY)
    if isinstance(node, str) and HEADER_NODE not in response.headers:
        response.headers[HEADER_NODE] = node


async def _authenticate(request: web.Request, ctx: NodeContext) -> Caller:
    headers = parse_auth_headers(request.headers)
    role = _check_route(request.path, headers.address, ctx)
    skew = abs(time.time() - headers.timestamp)
    if skew > ctx.settings.auth.max_clock_skew:
        raise auth_error(
            Reason.STALE_TIMESTAMP,
            f"X-Timestamp is {skew:.0f}s away from the node's clock; the limit is "
            f"{ctx.settings.auth.max_clock_skew:.0f}s (check the caller's clock)",
        )
    body = await read_body_limited(request, ctx.settings.auth.max_body_bytes)
    body_hash = body_sha256(body)
    _check_signature(request, ctx, headers, body_hash)
    try:
        fresh = await ctx.nonces.claim(headers.address, headers.nonce)
    except NonceStoreError as exc:
        ctx.metrics.nonce_store_errors.inc()
        raise auth_error(Reason.NONCE_STORE_UNAVAILABLE, f"the nonce store is unavailable: {exc}") from exc
    if not fresh:
        raise auth_error(Reason.REPLAYED_NONCE, "this X-Nonce was already used by this caller")
    return Caller(
        address=headers.address,
        role=role,
        nonce=headers.nonce,
        body=body,
        body_sha256=body_hash,
        scheme=headers.scheme,
    )


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


async def read_body_limited(request: web.Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise auth_error(Reason.BODY_TOO_LARGE, f"the body is {declared} bytes; the limit is {limit}")
    if not request.body_exists:
        return b""
    if declared is not None:
        # The common case: a declared length within the limit. One read of exactly that many bytes,
        # with no copy into a buffer and no extra wait for the end of the stream.
        try:
            return await request.content.readexactly(declared)
        except asyncio.IncompleteReadError as exc:
            return exc.partial  # the client sent less than it declared; the signature check decides
    body = bytearray()
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            raise auth_error(Reason.BODY_TOO_LARGE, f"the body exceeds the limit of {limit} bytes")


async def _admit_bypass(request: web.Request, ctx: NodeContext) -> Caller:
    """``registry.bypassAuth``: everyone is admitted, but the body limit still holds."""
    body = await read_body_limited(request, ctx.settings.auth.max_body_bytes)
    address = request.headers.get(HEADER_ADDRESS, "").strip()
    return Caller(
        address=address.lower() if is_wellformed_address(address) else "",
        role=None,
        nonce=request.headers.get(HEADER_NONCE, ""),
        body=body,
        body_sha256=body_sha256(body),
        scheme="bypass",
    )


def _sign_answer(ctx: NodeContext, caller: Caller, response: web.StreamResponse, node: str) -> None:
    if response.prepared:
        return  # a stream: its headers are gone; add_node_header covered X-Fxn-Node
    response.headers[HEADER_NODE] = node
    if not isinstance(response, web.Response):
        return
    body = response.body
    if body is None:
        body = b""
    if not isinstance(body, bytes | bytearray):
        return  # a Payload (file, async generator): not a plain answer, so not signed
    message = response_message(caller.body_sha256, caller.nonce, body_sha256(bytes(body)))
    response.headers[HEADER_RESPONSE_SIGNATURE] = "0x" + ctx.signer.sign(message)


def _reject(request: web.Request, ctx: NodeContext, exc: AuthError, claimed_address: str) -> web.Response:
    request[AUTH_REASON_KEY] = exc.reason
    ctx.metrics.auth_failures.labels(exc.reason).inc()
    get_logger("fxn.auth").warning(
        "auth_rejected",
        reason=exc.reason,
        status=exc.status,
        caller=claimed_address[:64],
        path=request.path,
        method=request.method,
    )
    return web.Response(status=exc.status, body=exc.body(), content_type="application/json")
