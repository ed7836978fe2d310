"""Matrix-proof commitments in Redis, so round two may reach any worker or replica (SPEC §7.2).

With ``nonceCache.backend: redis`` the node runs as several processes behind one address (``--workers
N``, or replicas behind a load balancer), and a scheduler's round two can land on a process that never
saw round one. Each commitment's row digests are therefore also written to Redis under its id for
``proofTtl``; round two reads them there, and takes them atomically (a Lua script swaps the value for a
``used`` tombstone), so a commitment still answers exactly one proof request across every process.

Value layout: ``u32be(n) || u64be(d_0) || … || u64be(d_{n-1})`` — 8 bytes a row (128 KiB at n = 16384).
Any Redis failure becomes :class:`SharedStoreError`; the challenge then answers 503 (fail closed).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from function_node.redis_pool import bounded_client

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["KEY_PREFIX", "RedisCommitments", "SharedCommitment", "SharedStoreError"]

KEY_PREFIX: Final = "fxn:commitment:"
_USED: Final = b"used"
_SOCKET_TIMEOUT_S: Final = 2.0
_MAX_CONNECTIONS: Final = 4
_HEADER: Final = struct.Struct(">I")

# KEYS[1] the commitment; ARGV[1] how long the tombstone stays (ms). Returns the value, "used" or nil.
_TAKE_SCRIPT: Final = """
local v = redis.call('GET', KEYS[1])
if (not v) or v == 'used' then return v end
redis.call('SET', KEYS[1], 'used', 'PX', ARGV[1])
return v
"""


class SharedStoreError(Exception):
    """Redis did not answer; the message names it without its password."""


@dataclass(frozen=True, slots=True)
class SharedCommitment:
    size: int
    digests: tuple[int, ...]


def encode(size: int, digests: Sequence[int]) -> bytes:
    return _HEADER.pack(size) + struct.pack(f">{len(digests)}Q", *digests)


def decode(value: bytes) -> SharedCommitment:
    (size,) = _HEADER.unpack_from(value)
    count = (len(value) - _HEADER.size) // 8
    if count != size:
        raise SharedStoreError(f"a stored commitment holds {count} digests for n={size}")
    return SharedCommitment(size, struct.unpack_from(f">{count}Q", value, _HEADER.size))


class RedisCommitments:
    """Publish, peek at and take commitments in the Redis of ``nonceCache.redisUrl``."""

    def __init__(self, url: str, ttl: float) -> None:
        self.url = url
        self.ttl_ms = max(1, round(ttl * 1000))
        self.redis: Redis = bounded_client(
            url, max_connections=_MAX_CONNECTIONS, timeout=_SOCKET_TIMEOUT_S, retry_reconnect=False
        )
        self._take: AsyncScript = self.redis.register_script(_TAKE_SCRIPT)

    async def publish(self, commitment_id: str, size: int, digests: Sequence[int]) -> None:
        from redis.exceptions import RedisError

        try:
            await self.redis.set(KEY_PREFIX + commitment_id, encode(size, digests), px=self.ttl_ms)
        except (RedisError, OSError, TimeoutError) as exc:
            raise SharedStoreError(self._unavailable(exc)) from exc

    async def peek(self, commitment_id: str) -> SharedCommitment | str:
        """The live commitment, or why there is none: ``"used"`` or ``"unknown"`` (never issued or
        expired: Redis forgot it after ``proofTtl``)."""
        from redis.exceptions import RedisError

        try:
            value = await self.redis.get(KEY_PREFIX + commitment_id)
        except (RedisError, OSError, TimeoutError) as exc:
            raise SharedStoreError(self._unavailable(exc)) from exc
        return self._outcome(value)

    async def take(self, commitment_id: str) -> SharedCommitment | str:
        """As :meth:`peek`, and atomically mark it used: of concurrent takes, one gets it."""
        from redis.exceptions import RedisError

        try:
            value = await self._take(keys=[KEY_PREFIX + commitment_id], args=[self.ttl_ms])
        except (RedisError, OSError, TimeoutError) as exc:
            raise SharedStoreError(self._unavailable(exc)) from exc
        return self._outcome(value)

    @staticmethod
    def _outcome(value: bytes | str | None) -> SharedCommitment | str:
        if value is None:
            return "unknown"
        raw = value.encode() if isinstance(value, str) else value  # decode_responses is off: bytes
        if raw == _USED:
            return "used"
        return decode(raw)

    def _unavailable(self, exc: BaseException) -> str:
        scheme, sep, rest = self.url.partition("://")
        safe = f"{scheme}{sep}{'***@' + rest.rsplit('@', 1)[1] if '@' in rest else rest}"
        return f"the commitment store (Redis at {safe}) did not answer: {exc}"

    async def close(self) -> None:
        await self.redis.aclose()
