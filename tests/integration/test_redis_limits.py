"""The budgets in Redis against a real redis-server: the claim-and-admit script's every outcome, the
settlement script, the keys it leaves and their expiry, concurrency between gates, and failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from function_node.config.settings import LimitsSettings, Settings
from function_node.devnet.redis_server import RedisServer
from function_node.errors import NonceStoreError
from function_node.metrics import NodeMetrics
from function_node.node.limits import CONCURRENT, NO_LIMITS, REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE, Refusal
from function_node.node.limits_redis import RedisGate
from function_node.node.nonces import NonceQuotaError
from function_node.node.nonces_redis import RedisNonceStore

pytestmark = pytest.mark.integration

ADDR = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"


def limits(**default: int) -> LimitsSettings:
    return Settings.model_validate({"limits": {"default": default}}).limits


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def gate_for(redis_server: RedisServer, settings: LimitsSettings, **kwargs: float) -> RedisGate:
    store = RedisNonceStore(redis_server.url, ttl=60.0, max_per_caller=int(kwargs.pop("share", 1000)))
    return RedisGate(store, settings, slot_lease=kwargs.pop("lease", 60.0))


async def test_requests_per_minute_across_two_gates(redis_server: RedisServer) -> None:
    gates = [await gate_for(redis_server, limits(requestsPerMinute=10)) for _ in range(2)]
    try:
        results = await asyncio.gather(*(gates[i % 2].claim(ADDR, f"n{i}", limited=True) for i in range(25)))
        admitted = [r for r in results if r is not None and r.refusal is None]
        refused = [r.refusal for r in results if r is not None and r.refusal is not None]
        assert len(admitted) == 10
        assert len(refused) == 15
        assert all(r.limit == REQUESTS_PER_MINUTE and 1 <= r.retry_after <= 6 for r in refused)
    finally:
        for gate in gates:
            await gate.store.close()


async def test_replay_and_share_come_first_and_a_refusal_spends_the_nonce(redis_server: RedisServer) -> None:
    gate = await gate_for(redis_server, limits(requestsPerMinute=1), share=2)
    try:
        first = await gate.claim(ADDR, "a", limited=True)
        assert first is not None and first.refusal is None
        assert await gate.claim(ADDR, "a", limited=True) is None  # a replay, whatever the budget
        refused = await gate.claim(ADDR, "b", limited=True)
        assert refused is not None and refused.refusal == Refusal(REQUESTS_PER_MINUTE, 60)
        assert await gate.claim(ADDR, "b", limited=True) is None  # its nonce was claimed
        with pytest.raises(NonceQuotaError):  # two live nonces: the caller's share
            await gate.claim(ADDR, "c", limited=True)
        assert await gate.claim(ADDR.replace("f39", "f38"), "c", limited=False) is NO_LIMITS
    finally:
        await gate.store.close()


async def test_slots_are_given_back_and_leases_expire(redis_server: RedisServer, raw: Redis) -> None:
    gate = await gate_for(redis_server, limits(maxConcurrent=2), lease=0.3)
    try:
        held = [await gate.claim(ADDR, f"n{i}", limited=True) for i in range(2)]
        assert all(h is not None and h.slot and h.refusal is None for h in held)
        refused = await gate.claim(ADDR, "n2", limited=True)
        assert refused is not None and refused.refusal == Refusal(CONCURRENT, 1)
        assert held[0] is not None
        await gate.settle(ADDR, held[0], 0)
        assert await raw.zcard(gate.slots_key(ADDR)) == 1
        again = await gate.claim(ADDR, "n3", limited=True)
        assert again is not None and again.refusal is None
        await asyncio.sleep(0.4)  # the slots' holders "died": their lease ends
        late = await gate.claim(ADDR, "n4", limited=True)
        assert late is not None and late.refusal is None
    finally:
        await gate.store.close()


async def test_tokens_charged_after_the_answer(redis_server: RedisServer, raw: Redis) -> None:
    gate = await gate_for(redis_server, limits(tokensPerMinute=600))
    try:
        first = await gate.claim(ADDR, "n1", limited=True)
        assert first is not None and first.needs_settle and first.slot == ""
        await gate.settle(ADDR, first, 660)  # 60 over: 6 s at 10 tokens a second
        refused = await gate.claim(ADDR, "n2", limited=True)
        assert refused is not None and refused.refusal is not None
        assert refused.refusal.limit == TOKENS_PER_MINUTE and refused.refusal.retry_after in (6, 7)
        # The bucket expires once it would be full again: an absent hash is a full one.
        assert 60_000 < await raw.pttl(gate.bucket_key(ADDR)) <= 67_000
    finally:
        await gate.store.close()


async def test_redis_down_at_admission_and_at_settlement(redis_server: RedisServer) -> None:
    metrics = NodeMetrics()
    store = RedisNonceStore(redis_server.url, ttl=60.0, socket_timeout=0.5)
    gate = RedisGate(
        store, limits(maxConcurrent=1), slot_lease=60.0, settle_errors=metrics.limits_settle_errors
    )
    try:
        held = await gate.claim(ADDR, "n1", limited=True)
        assert held is not None
        redis_server.stop()
        await gate.settle(ADDR, held, 10)  # logged and counted, never raised: the answer was given
        assert metrics.registry.get_sample_value("fxn_limits_settle_errors_total") == 1
        with pytest.raises(NonceStoreError, match="did not answer"):
            await gate.claim(ADDR, "n2", limited=True)
        redis_server.start()  # empty again: the lost slot is gone with it
        back = await gate.claim(ADDR, "n3", limited=True)
        assert back is not None and back.refusal is None
        gate.settle_soon(ADDR, back, 0)
        await gate.close()  # waits for the settlement
        raw = Redis.from_url(redis_server.url)
        assert await raw.zcard(gate.slots_key(ADDR)) == 0
        await raw.aclose()
    finally:
        await store.close()
