"""The budgets in Redis, checked in the same script as the nonce claim (SPEC §11).

For a caller with budgets, one Lua script does, atomically, what the nonce store's script does (refuse a
replay, refuse past the caller's share of the store, claim the nonce) and then refills the caller's
buckets, checks every budget, and takes from each when all pass — so admission costs no round trip more
than the claim alone, and every worker and replica sharing the Redis sees one budget. A second script,
after the answer, gives back the concurrency slot and charges the tokens: one more round trip, only for
callers with ``maxConcurrent`` or ``tokensPerMinute``. Callers without budgets use the nonce store's own
script, unchanged.

Keys, all with the caller's hash tag (so the script also runs on Redis Cluster): the bucket levels in a
hash ``fxn:limit:{address}`` that expires once both buckets would be full again (an absent hash is a
full one), and the slots in flight in a sorted set ``fxn:limit:{address}:inflight`` scored by a lease
expiry, so a slot of a worker that died is given back when its lease ends. The scripts read Redis's
clock, so replicas with different clocks agree.

A failure to reach Redis at admission is the nonce store's (503 ``nonce_store_unavailable``: fail
closed); at settlement, after the answer, it is logged and counted, and the slot comes back at the end
of its lease.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from function_node.config.settings import LimitsSettings
from function_node.errors import NonceStoreError
from function_node.logs import get_logger
from function_node.node.limits import (
    CONCURRENT,
    NO_LIMITS,
    REQUESTS_PER_MINUTE,
    TOKENS_PER_MINUTE,
    UNLIMITED,
    Admission,
    LimitPolicy,
    Refusal,
    new_slot_id,
    retry_seconds,
)
from function_node.node.nonces import NonceQuotaError

if TYPE_CHECKING:
    from prometheus_client import Counter
    from redis.commands.core import AsyncScript

    from function_node.node.nonces_redis import RedisNonceStore

__all__ = ["DEFAULT_LIMIT_PREFIX", "RedisGate"]

DEFAULT_LIMIT_PREFIX: Final = "fxn:limit:"
_MS: Final = 1000.0
_SETTLE_WAIT_S: Final = 5.0
_REPLAYED: Final = -1
_OVER_SHARE: Final = -2
_REFUSED: Final = 1
_LIMITS: Final = {1: REQUESTS_PER_MINUTE, 2: CONCURRENT, 3: TOKENS_PER_MINUTE}

# KEYS: 1 the nonce, 2 the caller's live nonces, 3 the caller's buckets, 4 its slots in flight.
# ARGV: 1 nonce ttl ms, 2 the caller's share of nonces, 3 the nonce, 4 requests/min, 5 tokens/min,
# 6 max concurrent, 7 the slot's id, 8 the slot's lease ms.
# Returns {-1} replay, {-2, ms until the oldest nonce expires}, {1, ms to wait, budget} or {0}.
_CLAIM_ADMIT_SCRIPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0, 0} end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {-2, math.max(1, tonumber(oldest[2]) - now), 0}
end
redis.call('SET', KEYS[1], '1', 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
local rpm, tpm, conc = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[3], 'r', 'rt', 't', 'tt')
local wait, which, r, tk = 0, 0, 0, 0
if rpm > 0 then
  r = math.min(rpm, (tonumber(state[1]) or rpm) + (now - (tonumber(state[2]) or now)) * rpm / 60000)
  if r < 1 then wait = math.ceil((1 - r) * 60000 / rpm); which = 1 end
end
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= conc and 1000 > wait then wait = 1000; which = 2 end
end
if tpm > 0 then
  tk = math.min(tpm, (tonumber(state[3]) or tpm) + (now - (tonumber(state[4]) or now)) * tpm / 60000)
  if tk <= 0 then
    local w = math.floor(-tk * 60000 / tpm) + 1
    if w > wait then wait = w; which = 3 end
  end
end
if which > 0 then return {1, wait, which} end
local full = 0
if rpm > 0 then
  redis.call('HSET', KEYS[3], 'r', r - 1, 'rt', now)
  full = math.max(full, (rpm - r + 1) * 60000 / rpm)
end
if tpm > 0 then
  redis.call('HSET', KEYS[3], 't', tk, 'tt', now)
  full = math.max(full, (tpm - tk) * 60000 / tpm)
end
if full > 0 then redis.call('PEXPIRE', KEYS[3], math.ceil(full) + 1000) end
if conc > 0 then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[8]), ARGV[7])
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[8]))
end
return {0, 0, 0}
"""

# KEYS: 1 the caller's buckets, 2 its slots in flight. ARGV: 1 the slot's id (or ""), 2 tokens, 3 tokens/min.
_SETTLE_SCRIPT: Final = """
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[2], ARGV[1]) end
local tokens, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm > 0 and tokens > 0 then
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  local state = redis.call('HMGET', KEYS[1], 't', 'tt')
  local tk = math.min(tpm, (tonumber(state[1]) or tpm) + (now - (tonumber(state[2]) or now)) * tpm / 60000)
  tk = tk - tokens
  redis.call('HSET', KEYS[1], 't', tk, 'tt', now)
  local need = math.ceil((tpm - tk) * 60000 / tpm) + 1000
  if redis.call('PTTL', KEYS[1]) < need then redis.call('PEXPIRE', KEYS[1], need) end
end
return 0
"""


class RedisGate:
    """See the module docstring. ``slot_lease``: seconds after which a slot not given back returns."""

    in_process = False

    def __init__(
        self,
        store: RedisNonceStore,
        settings: LimitsSettings,
        *,
        slot_lease: float,
        key_prefix: str = DEFAULT_LIMIT_PREFIX,
        settle_errors: Counter | None = None,
    ) -> None:
        self.store = store
        self.policy = LimitPolicy(settings)
        self.key_prefix = key_prefix
        self.lease_ms = max(1, round(slot_lease * _MS))
        self._settle_errors = settle_errors
        self._settling: set[asyncio.Task[None]] = set()
        self._claim_admit: AsyncScript = store.redis.register_script(_CLAIM_ADMIT_SCRIPT)
        self._settle: AsyncScript = store.redis.register_script(_SETTLE_SCRIPT)

    def bucket_key(self, address: str) -> str:
        return f"{self.key_prefix}{{{address.lower()}}}"

    def slots_key(self, address: str) -> str:
        return f"{self.key_prefix}{{{address.lower()}}}:inflight"

    async def claim(self, address: str, nonce: str, *, limited: bool) -> Admission | None:
        spec = self.policy.for_caller(address) if limited else UNLIMITED
        if spec is UNLIMITED:
            return NO_LIMITS if await self.store.claim(address, nonce) else None
        from redis.exceptions import RedisError

        store = self.store
        slot = new_slot_id() if spec.max_concurrent else ""
        keys = [store.key(address, nonce), store.caller_key(address), self.bucket_key(address)]
        keys.append(self.slots_key(address))
        args: list[str | int] = [store.ttl_ms, store.max_per_caller, nonce, spec.requests_per_minute]
        args += [spec.tokens_per_minute, spec.max_concurrent, slot, self.lease_ms]
        try:
            code, ms, which = (int(v) for v in await self._claim_admit(keys=keys, args=args))
        except (RedisError, OSError, TimeoutError) as exc:
            raise NonceStoreError(f"Redis at {store.safe_url()} did not answer: {exc}") from exc
        if code == _REPLAYED:
            return None
        if code == _OVER_SHARE:
            raise NonceQuotaError(store.max_per_caller, ms / _MS)
        if code == _REFUSED:
            return Admission(spec, refusal=Refusal(_LIMITS[which], retry_seconds(ms / _MS)))
        return Admission(spec, slot=slot)

    async def settle(self, address: str, admission: Admission, tokens: int) -> None:
        from redis.exceptions import RedisError

        keys = [self.bucket_key(address), self.slots_key(address)]
        try:
            await self._settle(keys=keys, args=[admission.slot, tokens, admission.spec.tokens_per_minute])
        except (RedisError, OSError, TimeoutError) as exc:
            if self._settle_errors is not None:
                self._settle_errors.inc()
            get_logger("fxn.limits").warning(
                "limits_settle_failed",
                error=f"Redis at {self.store.safe_url()} did not answer: {exc}",
                caller=address,
                tokens=tokens,
            )

    def settle_soon(self, address: str, admission: Admission, tokens: int) -> None:
        task = asyncio.create_task(self.settle(address, admission, tokens), name="limits-settle")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def close(self) -> None:
        # The Redis connection is the nonce store's, closed with it, after this.
        if self._settling:
            await asyncio.wait(list(self._settling), timeout=_SETTLE_WAIT_S)
