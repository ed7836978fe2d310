"""The signed messages of SPEC §5 and §7.1, joined exactly as the spec says.

The response message's first line, ``fxn-response-v1``, is one no request message can have (a legacy
message starts with 64 hex digits and a dot, a v2 message with ``fxn-auth-v2``), so no answer's
signature can be passed off as a request's.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "RESPONSE_SCHEME",
    "V2_PREFIX",
    "identity_message",
    "legacy_message",
    "response_message",
    "v2_message",
]

V2_PREFIX: Final = "fxn-auth-v2"
RESPONSE_SCHEME: Final = "fxn-response-v1"


def legacy_message(body_hash: str, timestamp: str, nonce: str) -> str:
    """The live network's request message: ``hex(sha256(body)) + "." + timestamp + "." + nonce``."""
    return f"{body_hash}.{timestamp}.{nonce}"


def v2_message(  # noqa: PLR0917 - the parameters are the message's fields, in the order they are joined
    node_address: str, method: str, path: str, body_hash: str, timestamp: str, nonce: str
) -> str:
    """The audience-bound request message (``X-Fxn-Auth: 2``); ``path`` is the target's path as sent."""
    return "\n".join((V2_PREFIX, node_address.lower(), method.upper(), path, body_hash, timestamp, nonce))


def identity_message(address: str, ip_address: str, nonce: str) -> str:
    """What an IDENTITY answer's ``signature`` signs (SPEC §7.1)."""
    return f"{address}.{ip_address}.{nonce}"


def response_message(  # noqa: PLR0917 - the parameters are the message's fields, in the order they are joined
    node_address: str, caller_address: str, request_body_hash: str, nonce: str, status: int, body_hash: str
) -> str:
    """What a response signature signs: which node answered what, with which status, to whom."""
    return "\n".join(
        (
            RESPONSE_SCHEME,
            node_address.lower(),
            caller_address.lower(),
            request_body_hash,
            nonce,
            str(status),
            body_hash,
        )
    )
