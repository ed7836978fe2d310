"""``FxnClientSession``: a thin aiohttp wrapper that signs every request it sends.

    async with FxnClientSession(key) as fxn:
        async with await fxn.request("POST", node + "/v1/chat/completions", json=body) as resp:
            ...

It learns the node's address from ``GET /health`` (once per origin) to sign v2, like FxnAuth.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

import aiohttp
import orjson
from yarl import URL

from function_node.client._discovery import HEALTH_PATH, address_from_health, origin_of
from function_node.client._signer import FxnSigner
from function_node.signing import LocalSigner, normalize_address

__all__ = ["FxnClientSession"]

_UNKNOWN: Final = ""


class FxnClientSession:
    """Signs and sends requests over an aiohttp ``ClientSession`` (its own, or one you pass and close).

    ``legacy=True`` never signs v2 (no discovery); ``node_address`` fixes the v2 audience.
    """

    def __init__(
        self,
        key: LocalSigner | FxnSigner | str,
        node_address: str | None = None,
        *,
        legacy: bool = False,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.signer = key if isinstance(key, FxnSigner) else FxnSigner(key)
        self._fixed = normalize_address(node_address) if node_address else None
        self._legacy = legacy
        self._session = session
        self._owns_session = session is None
        self._learned: dict[str, str] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def node_address(self, url: str) -> str | None:
        """The address v2 signatures for ``url`` are bound to; None means legacy signing."""
        if self._legacy:
            return None
        if self._fixed is not None:
            return self._fixed
        origin = origin_of(url)
        if origin not in self._learned:
            async with self.session.get(origin + HEALTH_PATH) as resp:
                body = await resp.read()
            self._learned[origin] = address_from_health(resp.status, body) or _UNKNOWN
        return self._learned[origin] or None

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> aiohttp.ClientResponse:
        """Send a signed request; the caller reads and releases the response (``async with``)."""
        body = data if data is not None else (orjson.dumps(json) if json is not None else b"")
        out = dict(headers or {})
        if json is not None and data is None:
            out.setdefault("Content-Type", "application/json")
        target = URL(url).raw_path_qs
        out.update(self.signer.headers(method, target, body, await self.node_address(url)))
        return await self.session.request(method, url, data=body, headers=out, **kwargs)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FxnClientSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
