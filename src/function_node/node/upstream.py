"""The upstream connection pool, with the original Go node's meaning of ``proxy.maxIdleConns``.

Go's ``http.Transport.MaxIdleConns`` caps only *idle* keep-alive connections; connections in use are not
capped, so a node serving 1,000 streams opens 1,000 upstream connections and capacity is governed per
backend by ``maxConcurrency``. aiohttp's ``TCPConnector(limit=...)`` caps connections *in use* instead,
which would queue request 101 behind a default of 100 without a word. This connector keeps aiohttp's pool
unbounded and closes a released connection instead of parking it when ``max_idle`` are already idle.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

__all__ = ["IdleCappedConnector"]


class IdleCappedConnector(aiohttp.TCPConnector):
    """A TCPConnector with no cap on connections in use and at most ``max_idle`` kept idle."""

    def __init__(self, *, max_idle: int, **kwargs: Any) -> None:
        super().__init__(limit=0, limit_per_host=0, **kwargs)
        self._max_idle = max_idle

    def idle_count(self) -> int:
        return sum(len(parked) for parked in self._conns.values())

    # aiohttp has no public hook for "a connection is about to be parked"; _release is that moment
    # (aiohttp 3.9-3.14), and tests/unit/test_upstream_pool.py fails if its behaviour changes.
    def _release(
        self,
        key: Any,
        protocol: ResponseHandler,
        *,
        should_close: bool = False,
    ) -> None:
        if not should_close and self.idle_count() >= self._max_idle:
            should_close = True
        super()._release(key, protocol, should_close=should_close)
