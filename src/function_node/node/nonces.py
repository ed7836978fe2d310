"""Nonce stores: refuse a replayed (address, nonce) within ``nonceCache.ttl``, and share the store's
capacity fairly between callers.

``claim`` is atomic: exactly one of any number of concurrent claims of the same pair succeeds, in one
process (memory store) or across every replica sharing a Redis (one Lua script). Its outcomes, in the
order they are decided (SPEC §5 step 6, §11):

1. the pair was already claimed: False (``replayed_nonce``), whatever the caller's quota;
2. the caller already holds ``maxEntriesPerCaller`` live nonces: :class:`NonceQuotaError` with the
   seconds until its oldest one expires (``nonce_quota_exceeded``, 429); nothing is claimed, so one
   flooding gateway cannot get every other caller refused;
3. else the pair is claimed: True.

Two implementations:

* :class:`MemoryNonceStore` — one process. Claims never await, so each is atomic on the event loop.
  The TTL is the same for every entry, so insertion order is expiry order: expired entries are dropped
  from the front of an ``OrderedDict`` on every claim (and by a periodic task when idle), O(1) per
  entry, and each caller's own expiries sit in a deque in the same order. It is bounded by
  ``max_entries``: when full after dropping the expired entries, it refuses new claims with
  NonceStoreError (503) rather than evicting live nonces (which would re-open the replay window).
* :class:`~function_node.node.nonces_redis.RedisNonceStore` — shared by replicas and workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from function_node.config.settings import NonceCacheSettings
from function_node.errors import NonceStoreError

if TYPE_CHECKING:
    from function_node.node.nonces_redis import RedisNonceStore

__all__ = ["MemoryNonceStore", "NonceQuotaError", "NonceStore", "create_nonce_store", "per_caller_limit"]


class NonceQuotaError(Exception):
    """The caller holds as many live nonces as it may; ``retry_after`` is whole seconds (at least 1)."""

    def __init__(self, held: int, retry_after: float) -> None:
        super().__init__(f"this caller holds {held} live nonces, its share of the nonce store")
        self.held = held
        self.retry_after = max(1, math.ceil(retry_after))


class NonceStore(Protocol):
    async def claim(self, address: str, nonce: str) -> bool:
        """True if this (address, nonce) was unclaimed and is now claimed; False if it is a replay.

        Raises NonceQuotaError past the caller's share (nothing claimed), NonceStoreError when the
        store cannot answer (the node then fails closed, 503).
        """
        ...

    async def ping(self) -> None:
        """Raise NonceStoreError unless the store answers now (``/ready``)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def per_caller_limit(settings: NonceCacheSettings) -> int:
    """``maxEntriesPerCaller``, where 0 means half of ``maxEntries``."""
    return settings.max_entries_per_caller or max(1, settings.max_entries // 2)


class MemoryNonceStore:
    """An in-process, expiring, bounded nonce store. See the module docstring for the full policy."""

    def __init__(
        self,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        cleanup_interval: float = 60.0,
        max_per_caller: int = 0,
    ) -> None:
        if ttl <= 0 or max_entries < 1 or cleanup_interval <= 0 or max_per_caller < 0:
            raise ValueError("ttl and cleanup_interval must be positive and max_entries at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_per_caller = max_per_caller or max(1, max_entries // 2)
        self.cleanup_interval = cleanup_interval
        self._clock = clock
        self._expiry: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._by_caller: dict[str, deque[float]] = {}
        self._cleanup_task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._expiry)

    def held_by(self, address: str) -> int:
        held = self._by_caller.get(address.lower())
        return len(held) if held is not None else 0

    async def claim(self, address: str, nonce: str) -> bool:
        # No await in here: the checks and the insert cannot interleave with another claim.
        now = self._clock()
        self.purge_expired(now)
        caller = address.lower()
        key = (caller, nonce)
        if key in self._expiry:
            return False
        held = self._by_caller.get(caller)
        if held is not None and len(held) >= self.max_per_caller:
            raise NonceQuotaError(len(held), held[0] - now)
        if len(self._expiry) >= self.max_entries:
            raise NonceStoreError(
                f"the memory nonce store is full ({self.max_entries} live nonces); refusing new "
                "requests until nonces expire (raise nonceCache.maxEntries or use backend: redis)"
            )
        expiry = now + self.ttl
        self._expiry[key] = expiry
        if held is None:
            held = self._by_caller[caller] = deque()
        held.append(expiry)
        return True

    def purge_expired(self, now: float | None = None) -> int:
        """Drop every expired entry; returns how many. Entries expire in insertion order."""
        current = self._clock() if now is None else now
        dropped = 0
        expiry = self._expiry
        while expiry:
            key, when = next(iter(expiry.items()))
            if when > current:
                break
            del expiry[key]
            held = self._by_caller[key[0]]
            held.popleft()
            if not held:
                del self._by_caller[key[0]]
            dropped += 1
        return dropped

    async def ping(self) -> None:
        return None  # in this process: it always answers

    async def start(self) -> None:
        """Start the periodic purge, which frees memory when no claims arrive to do it lazily."""
        if self._cleanup_task is None:
            self._cleanup_task = asyncio.create_task(self._cleanup_loop(), name="nonce-cleanup")

    @property
    def cleanup_running(self) -> bool:
        return self._cleanup_task is not None and not self._cleanup_task.done()

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


def create_nonce_store(settings: NonceCacheSettings) -> MemoryNonceStore | RedisNonceStore:
    """The store ``nonceCache`` asks for; call ``start()`` on it, and ``close()`` at shutdown."""
    if settings.backend == "redis":
        from function_node.node.nonces_redis import RedisNonceStore

        return RedisNonceStore(settings.redis_url, settings.ttl, max_per_caller=per_caller_limit(settings))
    return MemoryNonceStore(
        settings.ttl,
        settings.max_entries,
        cleanup_interval=settings.cleanup_interval,
        max_per_caller=per_caller_limit(settings),
    )
