"""Nonce stores: refuse a replayed (address, nonce) within ``nonceCache.ttl``.

``claim`` is atomic: exactly one of any number of concurrent claims of the same pair succeeds, in
one process (memory store) or across every replica sharing a Redis (one ``SET key 1 NX PX ttl``).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NonceStore"]


class NonceStore(Protocol):
    async def claim(self, address: str, nonce: str) -> bool:
        """True if this (address, nonce) was unclaimed and is now claimed; False if it is a replay.

        Raises NonceStoreError when the store cannot answer (the node then fails closed, 503).
        """
        ...

    async def close(self) -> None: ...
