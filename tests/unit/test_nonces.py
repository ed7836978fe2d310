"""The memory nonce store: atomic, expiring, bounded; and the store factory."""

from __future__ import annotations

import asyncio

import pytest

from function_node.config.settings import NonceCacheSettings
from function_node.errors import NonceStoreError
from function_node.node.nonces import MemoryNonceStore, NonceQuotaError, create_nonce_store, per_caller_limit
from function_node.node.nonces_redis import RedisNonceStore

ADDR = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
OTHER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
STRANGER = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"


class ManualClock:
    """A clock the test moves by hand, so expiry is tested without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_claim_then_replay() -> None:
    store = MemoryNonceStore(ttl=60.0, max_entries=10)
    assert await store.claim(ADDR, "n1") is True
    assert await store.claim(ADDR, "n1") is False
    assert await store.claim(ADDR.upper().replace("0X", "0x"), "n1") is False  # address case does not matter
    assert await store.claim(OTHER, "n1") is True
    assert await store.claim(ADDR, "n2") is True


async def test_nonce_expires_after_ttl() -> None:
    clock = ManualClock()
    store = MemoryNonceStore(ttl=60.0, max_entries=10, clock=clock)
    assert await store.claim(ADDR, "n") is True
    clock.now += 59.9
    assert await store.claim(ADDR, "n") is False
    clock.now += 0.1
    assert await store.claim(ADDR, "n") is True
    assert len(store) == 1


async def test_exactly_one_of_many_concurrent_claims_wins() -> None:
    store = MemoryNonceStore(ttl=60.0, max_entries=1000)
    results = await asyncio.gather(*(store.claim(ADDR, "same") for _ in range(200)))
    assert results.count(True) == 1


async def test_one_caller_cannot_take_more_than_its_share() -> None:
    clock = ManualClock()
    store = MemoryNonceStore(ttl=60.0, max_entries=1000, clock=clock, max_per_caller=2)
    assert await store.claim(ADDR, "a")
    clock.now += 10
    assert await store.claim(ADDR, "b")
    with pytest.raises(NonceQuotaError) as info:
        await store.claim(ADDR, "c")
    assert (info.value.held, info.value.retry_after) == (2, 50)  # its oldest nonce expires in 50 s
    assert store.held_by(ADDR) == 2 and len(store) == 2  # nothing claimed
    assert await store.claim(ADDR, "a") is False  # a replay is a replay whatever the quota
    assert await store.claim(OTHER, "a") is True  # the others are not affected
    clock.now += 50
    assert await store.claim(ADDR, "c") is True  # the oldest expired: room again
    assert store.held_by(ADDR) == 2


async def test_default_share_is_half_of_max_entries() -> None:
    settings = NonceCacheSettings.model_validate({"maxEntries": 1000})
    assert per_caller_limit(settings) == 500
    assert per_caller_limit(settings.model_copy(update={"max_entries_per_caller": 7})) == 7
    store = create_nonce_store(settings)
    assert isinstance(store, MemoryNonceStore) and store.max_per_caller == 500


async def test_cleanup_task_runs_once_started_and_stops_on_close() -> None:
    clock = ManualClock()
    store = MemoryNonceStore(ttl=1.0, max_entries=1000, clock=clock, cleanup_interval=0.01)
    assert await store.claim(ADDR, "a")
    await store.start()
    assert store.cleanup_running
    clock.now += 2
    for _ in range(100):
        if len(store) == 0:
            break
        await asyncio.sleep(0.01)
    assert len(store) == 0 and store.held_by(ADDR) == 0  # purged without any claim arriving
    await store.close()
    assert not store.cleanup_running


async def test_full_store_purges_expired_first_then_refuses() -> None:
    clock = ManualClock()
    store = MemoryNonceStore(ttl=10.0, max_entries=3, clock=clock, max_per_caller=2)
    for who, n in ((ADDR, "a"), (ADDR, "b"), (OTHER, "c")):
        assert await store.claim(who, n)
    with pytest.raises(NonceStoreError, match="full"):
        await store.claim(STRANGER, "d")  # within its share, but the store as a whole is full
    with pytest.raises(NonceQuotaError):
        await store.claim(ADDR, "d")
    assert len(store) == 3  # refused without evicting a live nonce (that would re-open replays)
    assert await store.claim(ADDR, "a") is False
    clock.now += 10.0
    assert await store.claim(ADDR, "d") is True
    assert len(store) == 1


async def test_purge_drops_only_expired_entries_in_order() -> None:
    clock = ManualClock()
    store = MemoryNonceStore(ttl=10.0, max_entries=100, clock=clock)
    for i in range(5):
        await store.claim(ADDR, f"n{i}")
        clock.now += 1.0
    clock.now = 1000.0 + 12.5  # n0, n1, n2 claimed at 1000, 1001, 1002 have expired
    assert store.purge_expired() == 3
    assert len(store) == 2
    assert await store.claim(ADDR, "n3") is False


async def test_periodic_cleanup_task_purges_and_stops_on_close() -> None:
    clock = ManualClock()
    store = MemoryNonceStore(ttl=1.0, max_entries=100, clock=clock, cleanup_interval=0.01)
    await store.claim(ADDR, "x")
    clock.now += 5.0
    await store.start()
    for _ in range(500):
        if len(store) == 0:
            break
        await asyncio.sleep(0.01)
    assert len(store) == 0
    await store.close()
    await store.close()  # idempotent


@pytest.mark.parametrize(("ttl", "max_entries", "interval"), [(0.0, 10, 1.0), (1.0, 0, 1.0), (1.0, 10, 0.0)])
def test_memory_store_refuses_nonsense_parameters(ttl: float, max_entries: int, interval: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryNonceStore(ttl=ttl, max_entries=max_entries, cleanup_interval=interval)


async def test_factory_builds_the_configured_store() -> None:
    memory = create_nonce_store(
        NonceCacheSettings.model_validate({"ttl": "2m", "maxEntries": 5000, "cleanupInterval": "7s"})
    )
    assert isinstance(memory, MemoryNonceStore)
    assert (memory.ttl, memory.max_entries, memory.cleanup_interval) == (120.0, 5000, 7.0)
    redis = create_nonce_store(
        NonceCacheSettings.model_validate(
            {"backend": "redis", "redisUrl": "redis://127.0.0.1:1/0", "ttl": "1500ms"}
        )
    )
    assert isinstance(redis, RedisNonceStore)
    assert redis.ttl_ms == 1500
    assert redis.key("0xABCDEF", "n:1") == "fxn:nonce:{0xabcdef}:n:1"
    assert redis.max_per_caller == 500_000  # half of the default maxEntries
    await redis.close()


async def test_redis_store_with_nothing_listening_fails_closed() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    store = RedisNonceStore("redis://:hunter2@127.0.0.1:1/0", ttl=60.0)
    with pytest.raises(NonceStoreError) as info:
        await store.claim(ADDR, "n")
    assert "127.0.0.1:1" in str(info.value)
    assert "hunter2" not in str(info.value)
    with pytest.raises(NonceStoreError):
        await store.ping()
    await store.close()
