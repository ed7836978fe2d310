"""The nonce store in Redis (or Valkey), shared by every worker and replica that uses the same URL.

One claim is one round trip: a Lua script that, atomically, refuses a replay, drops the caller's
expired nonces, refuses the claim past the caller's share (returning the milliseconds until its oldest
nonce expires), else sets the nonce key with its TTL and records it in the caller's sorted set (score:
expiry). The script reads Redis's own clock, so replicas with different clocks agree on expiry. Both
keys of a caller share a hash tag (``{address}``), so the script also runs on Redis Cluster.

Short socket timeouts, at most one immediate retry on a broken connection (a pooled connection dies
when Redis restarts), and every failure becomes NonceStoreError (fail closed). The client reconnects on
the next claim, so the node recovers by itself when Redis is back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from function_node.errors import NonceStoreError
from function_node.logs import get_logger
from function_node.node.nonces import NonceQuotaError
from function_node.redis_pool import bounded_client

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["DEFAULT_KEY_PREFIX", "RedisNonceStore"]

DEFAULT_KEY_PREFIX: Final = "fxn:nonce:"
_REDIS_SOCKET_TIMEOUT: Final = 2.0
_REDIS_MAX_CONNECTIONS: Final = 64
_REPLAYED: Final = -1
_CLAIMED: Final = 0
_MS: Final = 1000.0

# KEYS[1] the nonce key, KEYS[2] the caller's set of live nonces; ARGV[1] ttl ms, ARGV[2] the caller's
# share, ARGV[3] the nonce. Returns -1 (replay), 0 (claimed) or the ms until the oldest nonce expires.
_CLAIM_SCRIPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local held = redis.call('ZCARD', KEYS[2])
if held >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) - now)
end
redis.call('SET', KEYS[1], '1', 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
return 0
"""


class RedisNonceStore:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        ttl: float,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        *,
        max_per_caller: int = 500_000,
        socket_timeout: float = _REDIS_SOCKET_TIMEOUT,
        max_connections: int = _REDIS_MAX_CONNECTIONS,
    ) -> None:
        if ttl <= 0 or max_per_caller < 1:
            raise ValueError("ttl must be positive and max_per_caller at least 1")
        self.url = url
        self.ttl_ms = max(1, round(ttl * _MS))
        self.key_prefix = key_prefix
        self.max_per_caller = max_per_caller
        # Retried once on a connection error only: a timed-out claim may have reached Redis, and a
        # retry would then report the caller's own first attempt as a replay.
        self.redis: Redis = bounded_client(
            url, max_connections=max_connections, timeout=socket_timeout, retry_reconnect=True
        )
        # EVALSHA, falling back to EVAL once per connection the first time Redis has not seen it.
        self._claim: AsyncScript = self.redis.register_script(_CLAIM_SCRIPT)

    def key(self, address: str, nonce: str) -> str:
        return f"{self.key_prefix}{{{address.lower()}}}:{nonce}"

    def caller_key(self, address: str) -> str:
        return f"{self.key_prefix}{{{address.lower()}}}"

    async def claim(self, address: str, nonce: str) -> bool:
        from redis.exceptions import RedisError

        keys = [self.key(address, nonce), self.caller_key(address)]
        try:
            result = int(await self._claim(keys=keys, args=[self.ttl_ms, self.max_per_caller, nonce]))
        except (RedisError, OSError, TimeoutError) as exc:
            raise NonceStoreError(f"Redis at {self.safe_url()} did not answer: {exc}") from exc
        if result == _REPLAYED:
            return False
        if result == _CLAIMED:
            return True
        raise NonceQuotaError(self.max_per_caller, result / _MS)

    async def ping(self) -> None:
        """Raise NonceStoreError unless Redis answers now."""
        from redis.exceptions import RedisError

        try:
            await self.redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            raise NonceStoreError(f"Redis at {self.safe_url()} did not answer: {exc}") from exc

    async def start(self) -> None:
        """Check Redis once and say so; a node still starts (and answers 503) while Redis is down."""
        try:
            await self.ping()
        except NonceStoreError as exc:
            get_logger("fxn.nonces").warning("nonce_store_unavailable", error=str(exc))

    async def close(self) -> None:
        await self.redis.aclose()

    def safe_url(self) -> str:
        """The URL without a password, for messages and logs."""
        scheme, sep, rest = self.url.partition("://")
        if "@" in rest:
            rest = "***@" + rest.rsplit("@", 1)[1]
        return f"{scheme}{sep}{rest}"
