"""Whose signature a node's answers must carry, and which address v2 signatures are bound to (SPEC §5
Audience).

The address comes from what the caller already trusts: an explicit ``node_address`` (the provider
registry entry, a config file). ``GET /health`` is only a hint: when an address is expected and
``/health`` claims another, nothing is sent (:class:`~function_node.errors.NodeIdentityError`). With a
bare URL, the address ``/health`` gives is trusted on first use, and every later answer from that
origin must be signed by it. A node that names no address in ``/health`` gets legacy signatures and
its answers cannot be checked.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import orjson

from function_node.errors import NodeIdentityError
from function_node.protocol import is_wellformed_address
from function_node.signing import normalize_address

__all__ = ["HEALTH_PATH", "Audience", "address_from_health", "origin_of"]

HEALTH_PATH: Final = "/health"
_UNKNOWN: Final = ""  # /health was asked and named no address: sign legacy, check nothing


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


class Audience:
    """The expected node address per origin, fixed or learned once from ``/health``.

    ``legacy=True`` never signs v2 (and still checks answers against a fixed address); ``discover=False``
    never asks ``/health``.
    """

    __slots__ = ("_discover", "_fixed", "_learned", "_legacy")

    def __init__(self, node_address: str | None, *, discover: bool = True, legacy: bool = False) -> None:
        self._fixed = normalize_address(node_address) if node_address else None
        self._discover = discover
        self._legacy = legacy
        self._learned: dict[str, str] = {}  # origin -> address, or _UNKNOWN

    def needs_health(self, url: str) -> bool:
        """Ask ``/health`` before the first request to this origin (to learn, or to cross-check)."""
        return self._discover and origin_of(url) not in self._learned

    def learn(self, url: str, status: int, body: bytes) -> None:
        """Take a ``/health`` answer; raise NodeIdentityError when it contradicts the expected address."""
        claimed = address_from_health(status, body)
        origin = origin_of(url)
        if self._fixed is not None and claimed is not None and claimed != self._fixed:
            raise NodeIdentityError(
                f"{origin}/health says the node is {claimed}, but {self._fixed} is expected there; "
                "nothing was sent (is the URL right, or is this node relaying another one?)"
            )
        self._learned[origin] = claimed or _UNKNOWN

    def expected(self, url: str) -> str | None:
        """The address every answer from ``url`` must be signed by; None when it is not known."""
        if self._fixed is not None:
            return self._fixed
        return self._learned.get(origin_of(url)) or None

    def audience(self, url: str) -> str | None:
        """The address v2 signatures are bound to; None means the legacy message."""
        return None if self._legacy else self.expected(url)
