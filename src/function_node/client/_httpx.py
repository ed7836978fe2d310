"""``FxnAuth``: an ``httpx.Auth`` that signs every request, so the official ``openai`` SDK can call a node::

    OpenAI(base_url=node + "/v1", api_key="-", http_client=httpx.Client(auth=FxnAuth(key)))

It works with ``httpx.Client`` and ``httpx.AsyncClient``. It signs the exact body bytes and path
that go on the wire (httpx hands the auth flow the final request).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Final

import httpx

from function_node.client._discovery import HEALTH_PATH, address_from_health, origin_of
from function_node.client._signer import FxnSigner
from function_node.signing import LocalSigner, normalize_address

__all__ = ["FxnAuth"]

_UNKNOWN: Final = ""  # discovery was tried and found no address: sign legacy, do not ask again


class FxnAuth(httpx.Auth):
    """Sign each request with ``key`` (a LocalSigner, an FxnSigner or a hex private key).

    With ``node_address`` the v2 (audience-bound) signature is used. Without it, and with
    ``discover`` (the default), the first request to a node is preceded by one ``GET /health`` at
    the node's origin (``scheme://host:port/health``) to learn its address; if that gives none,
    requests are signed legacy. Pass ``node_address`` for a node served under a path prefix.
    """

    requires_request_body = True

    def __init__(
        self,
        key: LocalSigner | FxnSigner | str,
        node_address: str | None = None,
        *,
        discover: bool = True,
    ) -> None:
        self.signer = key if isinstance(key, FxnSigner) else FxnSigner(key)
        self._fixed = normalize_address(node_address) if node_address else None
        self._discover = discover
        self._learned: dict[str, str] = {}  # origin -> address, or _UNKNOWN

    def node_address(self, url: str) -> str | None:
        """The node address this auth signs for at ``url`` (None: legacy)."""
        if self._fixed is not None:
            return self._fixed
        return self._learned.get(origin_of(url)) or None

    def _needs_discovery(self, request: httpx.Request) -> bool:
        return self._fixed is None and self._discover and origin_of(str(request.url)) not in self._learned

    def _health_request(self, request: httpx.Request) -> httpx.Request:
        url = request.url.copy_with(raw_path=HEALTH_PATH.encode(), query=None, fragment=None)
        return httpx.Request("GET", url, extensions=request.extensions)

    def _learn(self, request: httpx.Request, response: httpx.Response) -> None:
        address = address_from_health(response.status_code, response.content)
        self._learned[origin_of(str(request.url))] = address or _UNKNOWN

    def _sign(self, request: httpx.Request) -> httpx.Request:
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            self.signer.headers(request.method, target, request.content, self.node_address(str(request.url)))
        )
        return request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        if self._needs_discovery(request):
            # A transport error here reaches the caller, as it would for the request itself.
            response = yield self._health_request(request)
            response.read()
            self._learn(request, response)
        yield self._sign(request)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        if self._needs_discovery(request):
            response = yield self._health_request(request)
            await response.aread()
            self._learn(request, response)
        yield self._sign(request)
