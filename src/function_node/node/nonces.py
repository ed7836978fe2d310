"""Nonce stores: refuse a replayed (address, nonce) within ``nonceCache.ttl``.

``claim`` is atomic: exactly one of any number of concurrent claims of the same pair succeeds, in
one process (memory store) or across every replica sharing a Redis (one ``SET key 1 NX PX ttl``).

Two implementations:

* :class:`MemoryNonceStore` — one process. Claims never await, so each is atomic on the event loop.
  The TTL is the same for every entry, so insertion order is expiry order: expired entries are
  dropped from the front of an ``OrderedDict`` on every claim (and by a periodic task when idle),
  O(1) per entry. It is bounded by ``max_entries``: when full after dropping the expired entries,
  it refuses new claims with NonceStoreError (503) rather than evicting live nonces (which would
  re-open the replay window) or growing without limit under a flood of signed requests.
* :class:`RedisNonceStore` — shared by replicas. Short socket timeouts, at most one immediate retry
  on a broken connection (a pooled connection dies when Redis restarts), and every failure becomes
  NonceStoreError (fail closed). The client reconnects on the next claim, so the node recovers by
  itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from function_node.config.settings import NonceCacheSettings
from function_node.errors import NonceStoreError
from function_node.logs import get_logger

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MemoryNonceStore", "NonceStore", "RedisNonceStore", "create_nonce_store"]

DEFAULT_KEY_PREFIX: Final = "fxn:nonce:"
_REDIS_SOCKET_TIMEOUT: Final = 2.0
_REDIS_MAX_CONNECTIONS: Final = 64


class NonceStore(Protocol):
    async def claim(self, address: str, nonce: str) -> bool:
        """True if this (address, nonce) was unclaimed and is now claimed; False if it is a replay.

        Raises NonceStoreError when the store cannot answer (the node then fails closed, 503).
        """
        ...

    async def close(self) -> None: ...


class MemoryNonceStore:
    """An in-process, expiring, bounded nonce store. See the module docstring for the full policy."""

    def __init__(
        self,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        cleanup_interval: float = 60.0,
    ) -> None:
        if ttl <= 0 or max_entries < 1 or cleanup_interval <= 0:
            raise ValueError("ttl and cleanup_interval must be positive and max_entries at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self.cleanup_interval = cleanup_interval
        self._clock = clock
        self._expiry: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._cleanup_task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._expiry)

    async def claim(self, address: str, nonce: str) -> bool:
        # No await in here: the check and the insert cannot interleave with another claim.
        now = self._clock()
        self.purge_expired(now)
        key = (address.lower(), nonce)
        if key in self._expiry:
            return False
        if len(self._expiry) >= self.max_entries:
            raise NonceStoreError(
                f"the memory nonce store is full ({self.max_entries} live nonces); refusing new "
                "requests until nonces expire (raise nonceCache.maxEntries or use backend: redis)"
            )
        self._expiry[key] = now + self.ttl
        return True

    def purge_expired(self, now: float | None = None) -> int:
        """Drop every expired entry; returns how many. Entries expire in insertion order."""
        current = self._clock() if now is None else now
        dropped = 0
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry > current:
                break
            del self._expiry[key]
            dropped += 1
        return dropped

    async def start(self) -> None:
        """Start the periodic purge, which frees memory when no claims arrive to do it lazily."""
        if self._cleanup_task is None:
            self._cleanup_task = asyncio.create_task(self._cleanup_loop(), name="nonce-cleanup")

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cleanup_interval)
            self.purge_expired()

    async def close(self) -> None:
        task, self._cleanup_task = self._cleanup_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class RedisNonceStore:
    """A nonce store in Redis (or Valkey), shared by every replica that uses the same URL and prefix."""

    def __init__(
        self,
        url: str,
        ttl: float,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        *,
        socket_timeout: float = _REDIS_SOCKET_TIMEOUT,
        max_connections: int = _REDIS_MAX_CONNECTIONS,
    ) -> None:
        # Imported here: redis is only needed by nodes configured for it.
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.url = url
        self.ttl_ms = max(1, round(ttl * 1000))
        self.key_prefix = key_prefix
        # One retry, on connection errors only: it replaces a pooled connection that died with a
        # restarted Redis. A timeout is not retried: the SET may have reached Redis, and a retry
        # would then report the caller's own first attempt as a replay.
        # A bounded pool: a burst of requests waits (up to socket_timeout) for one of
        # max_connections connections instead of opening one connection per request.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._redis: Redis = Redis.from_pool(pool)

    def key(self, address: str, nonce: str) -> str:
        return f"{self.key_prefix}{address.lower()}:{nonce}"

    async def claim(self, address: str, nonce: str) -> bool:
        from redis.exceptions import RedisError

        try:
            result = await self._redis.set(self.key(address, nonce), b"1", nx=True, px=self.ttl_ms)
        except (RedisError, OSError, TimeoutError) as exc:
            raise NonceStoreError(f"Redis at {self._safe_url()} did not answer: {exc}") from exc
        return bool(result)

    async def ping(self) -> None:
        """Raise NonceStoreError unless Redis answers now."""
        from redis.exceptions import RedisError

        try:
            await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            raise NonceStoreError(f"Redis at {self._safe_url()} did not answer: {exc}") from exc

    async def start(self) -> None:
        """Check Redis once and say so; a node still starts (and answers 503) while Redis is down."""
        try:
            await self.ping()
        except NonceStoreError as exc:
            get_logger("fxn.nonces").warning("nonce_store_unavailable", error=str(exc))

    async def close(self) -> None:
        await self._redis.aclose()

    def _safe_url(self) -> str:
        """The URL without a password, for messages and logs."""
        scheme, sep, rest = self.url.partition("://")
        if "@" in rest:
            rest = "***@" + rest.rsplit("@", 1)[1]
        return f"{scheme}{sep}{rest}"


def create_nonce_store(settings: NonceCacheSettings) -> MemoryNonceStore | RedisNonceStore:
    """The store ``nonceCache`` asks for; call ``start()`` on it, and ``close()`` at shutdown."""
    if settings.backend == "redis":
        return RedisNonceStore(settings.redis_url, settings.ttl)
    return MemoryNonceStore(settings.ttl, settings.max_entries, cleanup_interval=settings.cleanup_interval)
