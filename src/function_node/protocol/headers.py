"""The request's authentication headers (SPEC §5): their names, the reason codes of every refusal, and
the strict format checks that come before any cryptography."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from function_node.errors import AuthError

__all__ = [
    "HEADER_ADDRESS",
    "HEADER_AUTH_SCHEME",
    "HEADER_NODE",
    "HEADER_NONCE",
    "HEADER_RESPONSE_SIGNATURE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "MAX_NONCE_CHARS",
    "REASON_STATUS",
    "V2_SCHEME",
    "AuthHeaders",
    "Reason",
    "answer_is_signed",
    "auth_error",
    "is_fxn_header",
    "is_protected_path",
    "is_wellformed_address",
    "is_wellformed_signature",
    "parse_auth_headers",
]

HEADER_ADDRESS: Final = "X-Address"
HEADER_TIMESTAMP: Final = "X-Timestamp"
HEADER_NONCE: Final = "X-Nonce"
HEADER_SIGNATURE: Final = "X-Signature"
HEADER_AUTH_SCHEME: Final = "X-Fxn-Auth"
HEADER_NODE: Final = "X-Fxn-Node"
HEADER_RESPONSE_SIGNATURE: Final = "X-Fxn-Response-Signature"
_FXN_HEADER_PREFIX: Final = "x-fxn-"
_CHALLENGE_PATH: Final = "/challenge"
_V1_PREFIX: Final = "/v1/"
_UNSIGNED_ROUTES: Final = frozenset({"health", "ready", "metrics"})

V2_SCHEME: Final = "2"
MAX_NONCE_CHARS: Final = 128
# Unix seconds fit in 11 digits until the year 5138; anything longer is not a timestamp but an
# attempt to make int() work hard (CPython refuses > 4300 digits with an error of its own).
_MAX_TIMESTAMP_DIGITS: Final = 12

_ADDRESS_RE: Final = re.compile(r"0[xX][0-9a-fA-F]{40}")
_TIMESTAMP_RE: Final = re.compile(rf"[0-9]{{1,{_MAX_TIMESTAMP_DIGITS}}}")
# Printable ASCII without the space: a nonce travels inside Redis keys and log lines.
_NONCE_RE: Final = re.compile(rf"[\x21-\x7e]{{1,{MAX_NONCE_CHARS}}}")
_SIGNATURE_RE: Final = re.compile(r"(?:0[xX])?[0-9a-fA-F]{130}")
_VALID_V: Final = frozenset((0, 1, 27, 28))


class Reason:
    """The stable reason codes: the error body's ``code``, the log field and the metric label."""

    INVALID_REQUEST_TARGET: Final = "invalid_request_target"
    MISSING_HEADER: Final = "missing_header"
    MALFORMED_HEADER: Final = "malformed_header"
    UNKNOWN_CALLER: Final = "unknown_caller"
    FORBIDDEN_ROUTE: Final = "forbidden_route"
    REGISTRY_UNAVAILABLE: Final = "registry_unavailable"
    STALE_TIMESTAMP: Final = "stale_timestamp"
    BODY_TOO_LARGE: Final = "body_too_large"
    BODY_TIMEOUT: Final = "body_timeout"
    SERVER_BUSY: Final = "server_busy"
    BAD_SIGNATURE: Final = "bad_signature"
    REPLAYED_NONCE: Final = "replayed_nonce"
    NONCE_QUOTA_EXCEEDED: Final = "nonce_quota_exceeded"
    NONCE_STORE_UNAVAILABLE: Final = "nonce_store_unavailable"


REASON_STATUS: Final[Mapping[str, int]] = {
    Reason.INVALID_REQUEST_TARGET: 400,
    Reason.MISSING_HEADER: 401,
    Reason.MALFORMED_HEADER: 400,
    Reason.UNKNOWN_CALLER: 401,
    Reason.FORBIDDEN_ROUTE: 403,
    Reason.REGISTRY_UNAVAILABLE: 503,
    Reason.STALE_TIMESTAMP: 401,
    Reason.BODY_TOO_LARGE: 413,
    Reason.BODY_TIMEOUT: 408,
    Reason.SERVER_BUSY: 503,
    Reason.BAD_SIGNATURE: 401,
    Reason.REPLAYED_NONCE: 401,
    Reason.NONCE_QUOTA_EXCEEDED: 429,
    Reason.NONCE_STORE_UNAVAILABLE: 503,
}


def auth_error(reason: str, message: str, *, headers: dict[str, str] | None = None) -> AuthError:
    """An AuthError whose status is the one SPEC §5 gives ``reason``."""
    return AuthError(REASON_STATUS[reason], reason, message, headers=headers)


def is_protected_path(path: str) -> bool:
    """The routes that need the four headers, and whose answers the node signs: ``/v1/*``, ``/challenge``."""
    return path == _CHALLENGE_PATH or path.startswith(_V1_PREFIX)


def answer_is_signed(path: str) -> bool:
    """Whether a caller must expect the node's signature on the answer to ``path``: everything but the
    unauthenticated status routes. Judged on the last segment, so a node served under a path prefix is
    checked too."""
    return path.rstrip("/").rsplit("/", 1)[-1] not in _UNSIGNED_ROUTES


def is_fxn_header(name: str) -> bool:
    """``X-Fxn-*``: the node's own headers, which a backend can never supply."""
    return name[:6].lower() == _FXN_HEADER_PREFIX


# -- the request headers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthHeaders:
    """The four authentication headers (and the scheme), checked for form but not yet for truth."""

    address: str  # lower-case 0x address
    timestamp: int
    timestamp_text: str  # exactly as sent: it is part of the signed message
    nonce: str
    signature: str  # as sent; well-formed (65 bytes of hex, valid v)
    scheme: str  # "legacy" or "v2"


def is_wellformed_address(value: str) -> bool:
    return _ADDRESS_RE.fullmatch(value) is not None


def is_wellformed_signature(value: str) -> bool:
    """65 bytes of hex, ``0x`` optional, with a recovery byte of 0, 1, 27 or 28."""
    if _SIGNATURE_RE.fullmatch(value) is None:
        return False
    return int(value[-2:], 16) in _VALID_V


def parse_auth_headers(headers: Mapping[str, str]) -> AuthHeaders:
    """Check that the four headers are present and well-formed; raise AuthError otherwise.

    Missing headers are named all at once (401 ``missing_header``); the first malformed one is
    named with what its form should be (400 ``malformed_header``). A value with a byte outside
    ASCII (aiohttp decodes header bytes as Latin-1 or with surrogates) is malformed, never a 500.
    """
    names = (HEADER_ADDRESS, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
    missing = [name for name in names if not headers.get(name)]
    if missing:
        raise auth_error(Reason.MISSING_HEADER, f"missing authentication header(s): {', '.join(missing)}")
    address = headers[HEADER_ADDRESS].strip()
    timestamp = headers[HEADER_TIMESTAMP].strip()
    nonce = headers[HEADER_NONCE]
    signature = headers[HEADER_SIGNATURE].strip()
    if not address.isascii() or not is_wellformed_address(address):
        raise auth_error(Reason.MALFORMED_HEADER, f"{HEADER_ADDRESS} must be 0x followed by 40 hex digits")
    if not timestamp.isascii() or _TIMESTAMP_RE.fullmatch(timestamp) is None:
        raise auth_error(
            Reason.MALFORMED_HEADER, f"{HEADER_TIMESTAMP} must be unix time in seconds, decimal digits only"
        )
    if not nonce.isascii() or _NONCE_RE.fullmatch(nonce) is None:
        raise auth_error(
            Reason.MALFORMED_HEADER,
            f"{HEADER_NONCE} must be 1 to {MAX_NONCE_CHARS} printable ASCII characters without spaces",
        )
    if not signature.isascii() or not is_wellformed_signature(signature):
        raise auth_error(
            Reason.MALFORMED_HEADER,
            f"{HEADER_SIGNATURE} must be 65 bytes of hex (0x optional) with v of 27, 28, 0 or 1",
        )
    scheme_header = headers.get(HEADER_AUTH_SCHEME)
    if scheme_header is None:
        scheme = "legacy"
    elif scheme_header.strip() == V2_SCHEME:
        scheme = "v2"
    else:
        raise auth_error(Reason.MALFORMED_HEADER, f"{HEADER_AUTH_SCHEME} must be {V2_SCHEME} when present")
    return AuthHeaders(
        address=address.lower(),
        timestamp=int(timestamp),
        timestamp_text=timestamp,
        nonce=nonce,
        signature=signature,
        scheme=scheme,
    )
