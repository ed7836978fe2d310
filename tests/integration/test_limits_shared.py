"""Per-caller limits enforced together by real node processes (``fxn start``) sharing a real redis-server
(SPEC §11): requests per minute, requests in flight and tokens per minute are one budget for every
replica; Redis down fails closed and the nodes recover by themselves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from function_node.client import FxnAuth
from function_node.devnet.redis_server import RedisServer
from function_node.signing import LocalSigner
from tests.fixtures.backend import SLOW_STREAM, FakeBackend
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import NodeProcess, model_doc

pytestmark = pytest.mark.integration

GATEWAY = LocalSigner.from_hex(DEV_KEYS[0])
NODE_KEY = DEV_KEYS[2]  # the replicas share the node's key (one provider, two processes)
CHAT: dict[str, Any] = {
    "model": "dev",
    "messages": [{"role": "user", "content": "hello there"}],
    "max_tokens": 5,
}


def replicas(
    node_factory: Callable[..., NodeProcess], redis: RedisServer, backend: FakeBackend, limits: dict[str, Any]
) -> tuple[NodeProcess, NodeProcess]:
    config = {"nonceCache": {"backend": "redis", "redisUrl": redis.url}, "limits": {"default": limits}}
    models = [model_doc(name, [backend.url]) for name in ("dev", SLOW_STREAM)]
    a, b = (
        node_factory(
            models=models, gateways=[GATEWAY.address], schedulers=[], config=config, key_hex=NODE_KEY
        )
        for _ in range(2)
    )
    return a, b


@pytest.fixture
def signed() -> Iterator[httpx.Client]:
    """Signs v2 for the replicas' address and checks every answer's signature, refusals included."""
    node = LocalSigner.from_hex(NODE_KEY).address
    with httpx.Client(auth=FxnAuth(GATEWAY, node_address=node), timeout=30) as client:
        yield client


def chat(client: httpx.Client, node: NodeProcess, **extra: Any) -> httpx.Response:
    return client.post(node.url + "/v1/chat/completions", content=orjson.dumps({**CHAT, **extra}))


def assert_rate_limited(resp: httpx.Response, limit: str) -> int:
    assert resp.status_code == 429
    error = resp.json()["error"]
    assert (error["code"], error["type"]) == ("rate_limited", "rate_limit_error")
    assert f"limits {limit}" in error["message"]
    return int(resp.headers["Retry-After"])


def test_requests_per_minute_is_one_budget_for_two_replicas(
    node_factory: Callable[..., NodeProcess],
    redis_server: RedisServer,
    fake_backend: FakeBackend,
    signed: httpx.Client,
) -> None:
    a, b = replicas(node_factory, redis_server, fake_backend, {"requestsPerMinute": 5})
    answers = [chat(signed, node) for node in (a, b) * 5]
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 5
    for resp in answers[5:]:
        assert 1 <= assert_rate_limited(resp, "requestsPerMinute") <= 12  # one request every 12 s
    assert len(fake_backend.requests_for("dev")) == 5
    # Refusals are the limit's, not authentication failures, on both replicas.
    for node in (a, b):
        text = httpx.get(node.url + "/metrics").text
        assert (
            'fxn_rate_limited_total{caller="' + GATEWAY.address.lower() + '",limit="requestsPerMinute"}'
            in text
        )
        assert 'reason="rate_limited"' not in text


def test_max_concurrent_across_replicas(
    node_factory: Callable[..., NodeProcess],
    redis_server: RedisServer,
    fake_backend: FakeBackend,
    signed: httpx.Client,
) -> None:
    a, b = replicas(node_factory, redis_server, fake_backend, {"maxConcurrent": 1})
    started = threading.Event()
    body = orjson.dumps({**CHAT, "model": SLOW_STREAM, "stream": True, "max_tokens": 30})
    streamed: list[bytes] = []

    def slow() -> None:
        with signed.stream("POST", a.url + "/v1/chat/completions", content=body) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_raw():
                started.set()
                streamed.append(chunk)

    thread = threading.Thread(target=slow)
    thread.start()
    assert started.wait(10)
    with httpx.Client(auth=FxnAuth(GATEWAY, node_address=a.signer.address), timeout=30) as other:
        refused = chat(other, b)
    assert assert_rate_limited(refused, "maxConcurrent") == 1
    thread.join(30)
    assert b"".join(streamed).count(b"data: [DONE]") == 1
    # The slot comes back when the stream has ended (the node reports it right after its last byte).
    deadline = time.monotonic() + 5
    while (status := chat(signed, b).status_code) == 429 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 200


def test_tokens_per_minute_spent_on_one_replica_refuse_the_next_on_the_other(
    node_factory: Callable[..., NodeProcess],
    redis_server: RedisServer,
    fake_backend: FakeBackend,
    signed: httpx.Client,
) -> None:
    a, b = replicas(node_factory, redis_server, fake_backend, {"tokensPerMinute": 10})
    assert chat(signed, a, max_tokens=16).status_code == 200  # 2 prompt + 16 completion tokens
    retry = assert_rate_limited(chat(signed, b), "tokensPerMinute")
    assert 46 <= retry <= 49  # 8 tokens short, refilled at 10 a minute
    assert len(fake_backend.requests_for("dev")) == 1


def test_redis_down_fails_closed_and_the_nodes_recover(
    node_factory: Callable[..., NodeProcess],
    redis_server: RedisServer,
    fake_backend: FakeBackend,
    signed: httpx.Client,
) -> None:
    a, b = replicas(node_factory, redis_server, fake_backend, {"requestsPerMinute": 100, "maxConcurrent": 4})
    assert chat(signed, a).status_code == 200
    redis_server.stop()
    for node in (a, b):
        resp = chat(signed, node)
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "nonce_store_unavailable"
    redis_server.start()  # same port, empty: the budgets start full again
    assert [chat(signed, node).status_code for node in (a, b)] == [200, 200]
