"""The Redis nonce store against a real redis-server on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from function_node.client import FxnAuth, FxnSigner
from function_node.devnet.redis_server import RedisServer
from function_node.errors import NonceStoreError
from function_node.metrics import NodeMetrics
from function_node.node.nonces import NonceQuotaError
from function_node.node.nonces_redis import RedisNonceStore
from function_node.signing import LocalSigner
from tests.fixtures.auth import ClientFactory, make_context
from tests.fixtures.backend import FakeBackend
from tests.fixtures.node import NodeProcess, model_doc

pytestmark = pytest.mark.integration

ADDR = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
OTHER_CALLER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
BODY = b'{"model":"m"}'


async def post(client: TestClient[web.Request, web.Application], headers: dict[str, str]) -> tuple[int, str]:
    async with client.post("/v1/echo", data=BODY, headers=headers) as resp:
        payload = await resp.json()
        return resp.status, payload["error"]["code"] if "error" in payload else ""


async def test_200_concurrent_claims_across_two_clients_exactly_one_wins(redis_server: RedisServer) -> None:
    replicas = [RedisNonceStore(redis_server.url, ttl=60.0) for _ in range(2)]
    try:
        results = await asyncio.gather(*(replicas[i % 2].claim(ADDR, "same") for i in range(200)))
        assert results.count(True) == 1
        assert await replicas[0].claim(ADDR, "other") is True
    finally:
        for store in replicas:
            await store.close()


async def test_claim_sets_the_nonce_key_and_the_callers_set_with_the_ttl(redis_server: RedisServer) -> None:
    store = RedisNonceStore(redis_server.url, ttl=30.0, key_prefix="test:")
    raw = Redis.from_url(redis_server.url)
    try:
        assert await store.claim(ADDR.upper().replace("0X", "0x"), "n-1") is True
        assert sorted(await raw.keys("*")) == [f"test:{{{ADDR}}}".encode(), f"test:{{{ADDR}}}:n-1".encode()]
        assert 0 < await raw.pttl(f"test:{{{ADDR}}}:n-1") <= 30_000
        assert 0 < await raw.pttl(f"test:{{{ADDR}}}") <= 30_000
        assert await raw.zrange(f"test:{{{ADDR}}}", 0, -1) == [b"n-1"]
    finally:
        await raw.aclose()
        await store.close()


async def test_a_callers_share_is_enforced_atomically_across_replicas(redis_server: RedisServer) -> None:
    replicas = [RedisNonceStore(redis_server.url, ttl=60.0, max_per_caller=3) for _ in range(2)]
    try:
        outcomes: list[bool | int] = []
        for i in range(8):  # alternating replicas: one share between them, not one each
            try:
                outcomes.append(await replicas[i % 2].claim(ADDR, f"n{i}"))
            except NonceQuotaError as exc:
                outcomes.append(exc.retry_after)
        assert outcomes[:3] == [True, True, True]
        assert all(isinstance(o, int) and 1 <= o <= 60 for o in outcomes[3:])  # Retry-After seconds
        # A replay is a replay whatever the quota; another caller is not affected.
        assert await replicas[1].claim(ADDR, "n0") is False
        assert await replicas[0].claim(OTHER_CALLER, "n0") is True
    finally:
        for store in replicas:
            await store.close()


async def test_quota_frees_up_as_the_callers_nonces_expire(redis_server: RedisServer) -> None:
    store = RedisNonceStore(redis_server.url, ttl=0.2, max_per_caller=1)
    try:
        assert await store.claim(ADDR, "a") is True
        with pytest.raises(NonceQuotaError) as info:
            await store.claim(ADDR, "b")
        assert info.value.retry_after == 1  # 200 ms, rounded up to whole seconds
        await asyncio.sleep(0.3)
        assert await store.claim(ADDR, "b") is True
    finally:
        await store.close()


async def test_expired_nonce_can_be_claimed_again(redis_server: RedisServer) -> None:
    store = RedisNonceStore(redis_server.url, ttl=0.05)
    try:
        assert await store.claim(ADDR, "short") is True
        assert await store.claim(ADDR, "short") is False
        for _ in range(200):  # Redis expires the key on its own clock; poll instead of a fixed sleep
            await asyncio.sleep(0.02)
            if await store.claim(ADDR, "short"):
                break
        else:
            pytest.fail("the nonce never expired")
    finally:
        await store.close()


async def test_redis_down_fails_closed_and_recovers_without_restart(
    redis_server: RedisServer,
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    metrics: NodeMetrics,
) -> None:
    store = RedisNonceStore(redis_server.url, ttl=60.0)
    ctx = make_context(node_signer, metrics, gateways=[gateway_signer.address], schedulers=[], nonces=store)
    client = await auth_client_factory(ctx)
    signer = FxnSigner(gateway_signer)

    first = signer.headers("POST", "/v1/echo", BODY)
    assert await post(client, first) == (200, "")
    assert await post(client, first) == (401, "replayed_nonce")

    redis_server.stop()
    assert await post(client, signer.headers("POST", "/v1/echo", BODY)) == (503, "nonce_store_unavailable")
    with pytest.raises(NonceStoreError, match=str(redis_server.port)):
        await store.claim(ADDR, "while-down")
    assert metrics.registry.get_sample_value("fxn_nonce_store_errors_total") == 1

    redis_server.start()  # same port, empty (nothing persisted)
    assert await post(client, signer.headers("POST", "/v1/echo", BODY)) == (200, "")
    assert await post(client, signer.headers("POST", "/v1/echo", BODY)) == (200, "")


async def test_two_apps_sharing_redis_refuse_each_others_replays(
    redis_server: RedisServer,
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    metrics: NodeMetrics,
) -> None:
    clients = [
        await auth_client_factory(
            make_context(
                node_signer,
                metrics,
                gateways=[gateway_signer.address],
                schedulers=[],
                nonces=RedisNonceStore(redis_server.url, ttl=60.0),
            )
        )
        for _ in range(2)
    ]
    headers = FxnSigner(gateway_signer).headers("POST", "/v1/echo", BODY)
    assert await post(clients[0], headers) == (200, "")
    assert await post(clients[1], headers) == (401, "replayed_nonce")


def test_node_process_fails_closed_while_redis_is_down_and_recovers_by_itself(
    redis_server: RedisServer,
    fake_backend: FakeBackend,
    node_factory: Callable[..., NodeProcess],
    gateway_signer: LocalSigner,
) -> None:
    node = node_factory(
        models=[model_doc("dev", [fake_backend.url])],
        gateways=[gateway_signer.address],
        schedulers=[],
        config={"nonceCache": {"backend": "redis", "redisUrl": redis_server.url}},
    )
    chat = b'{"model":"dev","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
    with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:

        def send() -> httpx.Response:
            return http.post(node.url + "/v1/chat/completions", content=chat)

        assert send().status_code == 200
        redis_server.stop()
        down = send()
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "nonce_store_unavailable"
        assert str(redis_server.port) in down.json()["error"]["message"]
        assert node.process.running  # failing closed, not crashing
        redis_server.start()  # same port; the node is not restarted
        again = send()
        assert again.status_code == 200
        assert again.json()["object"] == "chat.completion"
    # Only the two admitted requests reached the backend.
    assert len(fake_backend.requests_for("dev")) == 2
    refused = node.wait_for_log(lambda d: d.get("event") == "request" and d.get("status") == 503)
    assert refused["reason"] == "nonce_store_unavailable"
