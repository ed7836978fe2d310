"""Learning a node's address from its unauthenticated ``GET /health`` answer.

The address is only used to build the audience-bound v2 message: a wrong one (a spoofed /health)
makes the node refuse the request with ``bad_signature``, it cannot make a signature valid elsewhere.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import orjson

from function_node.node.auth_checks import is_wellformed_address

__all__ = ["HEALTH_PATH", "address_from_health", "origin_of"]

HEALTH_PATH: Final = "/health"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL: the node that /health is asked about."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def address_from_health(status: int, body: bytes) -> str | None:
    """The lower-case node address in a /health answer, or None if it has none."""
    if status != 200:
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    address = payload.get("address") if isinstance(payload, dict) else None
    if isinstance(address, str) and is_wellformed_address(address):
        return address.lower()
    return None
