"""The authenticated caller of a request and its admission (SPEC §11), set by the auth middleware and
read by the metering middleware and the handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from function_node.node.limits import Admission
from function_node.registry.directory import CallerRole

__all__ = ["ADMISSION", "Caller", "admission_of", "caller_of", "set_caller"]


# Not frozen: one is built per request, and a frozen dataclass pays object.__setattr__ per field.
@dataclass(slots=True)
class Caller:
    """Who sent the request, and its body as read (within ``auth.maxBodyBytes``) by the middleware.

    ``role`` is None only under ``registry.bypassAuth``; handlers must then not trust ``address``.
    """

    address: str  # lower-case 0x address; "" under bypassAuth without headers
    role: CallerRole | None
    nonce: str
    body: bytes = field(repr=False)
    body_sha256: str
    scheme: str  # "legacy", "v2" or "bypass"


# A RequestKey, not a str: aiohttp >= 3.12 warns on str keys (an error under filterwarnings=error).
_KEY: Final = web.RequestKey("fxn_caller", Caller)


def set_caller(request: web.Request, caller: Caller) -> None:
    request[_KEY] = caller


def caller_of(request: web.Request) -> Caller:
    """The caller set by the auth middleware; a programming error if the route is not authenticated."""
    caller = request.get(_KEY)
    if not isinstance(caller, Caller):
        raise RuntimeError(f"{request.path} reached a handler without passing the auth middleware")
    return caller


# The outcome of the nonce claim's admission: absent under ``registry.bypassAuth`` (no claim, no limits).
ADMISSION: Final = web.RequestKey("fxn_admission", Admission)


def admission_of(request: web.Request) -> Admission | None:
    return request.get(ADMISSION)
