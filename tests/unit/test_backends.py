"""Backend pools: least-in-flight with weight, capacity (429), health, failover marks, SIGHUP swap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from function_node.config.backends import BackendConfig
from function_node.devnet.process import free_port
from function_node.errors import ApiError, ConfigError, UpstreamError
from function_node.metrics import NodeMetrics
from function_node.node.backends import RETRY_AFTER_SECONDS, BackendPool, BackendSet
from tests.fixtures.backend import FakeBackend
from tests.fixtures.node import backend_config, model_doc


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _pool(doc: dict[str, object], session: aiohttp.ClientSession, metrics: NodeMetrics) -> BackendPool:
    return BackendPool(backend_config(doc).models[0], session, metrics)


async def test_least_in_flight_respects_weight(session: aiohttp.ClientSession, metrics: NodeMetrics) -> None:
    doc = model_doc("m", [])
    doc["backends"] = [{"url": "http://127.0.0.1:1", "weight": 1}, {"url": "http://127.0.0.1:2", "weight": 3}]
    pool = _pool(doc, session, metrics)
    taken = [pool.acquire() for _ in range(8)]
    by_url = {b.base_url: sum(1 for t in taken if t is b) for b in pool.backends}
    assert by_url == {"http://127.0.0.1:1": 2, "http://127.0.0.1:2": 6}
    for backend in taken:
        pool.release(backend)
    assert [b.in_flight for b in pool.backends] == [0, 0]
    assert metrics.registry.get_sample_value("fxn_upstream_in_flight", {"model": "m", "backend": "m/1"}) == 0


async def test_all_full_is_429_with_retry_after(session: aiohttp.ClientSession, metrics: NodeMetrics) -> None:
    doc = model_doc("m", [])
    doc["backends"] = [
        {"url": "http://127.0.0.1:1", "maxConcurrency": 1},
        {"url": "http://127.0.0.1:2", "maxConcurrency": 2},
    ]
    pool = _pool(doc, session, metrics)
    held = [pool.acquire() for _ in range(3)]
    with pytest.raises(ApiError) as caught:
        pool.acquire()
    assert caught.value.status == 429
    assert caught.value.code == "model_at_capacity"
    assert caught.value.headers == {"Retry-After": str(RETRY_AFTER_SECONDS)}
    pool.release(held[0])
    assert pool.acquire() is held[0]


async def test_no_healthy_backend_is_503(session: aiohttp.ClientSession, metrics: NodeMetrics) -> None:
    pool = _pool(model_doc("m", ["http://127.0.0.1:1", "http://127.0.0.1:2"]), session, metrics)
    for backend in pool.backends:
        pool.mark(backend, False, "test")
    with pytest.raises(UpstreamError) as caught:
        pool.acquire()
    assert (caught.value.status, caught.value.code) == (503, "no_healthy_backend")
    assert metrics.registry.get_sample_value("fxn_backend_healthy", {"model": "m", "backend": "m/0"}) == 0


async def test_exclude_skips_tried_backends(session: aiohttp.ClientSession, metrics: NodeMetrics) -> None:
    pool = _pool(model_doc("m", ["http://127.0.0.1:1", "http://127.0.0.1:2"]), session, metrics)
    first = pool.acquire()
    second = pool.acquire([first])
    assert second is not first
    with pytest.raises(UpstreamError):
        pool.acquire([first, second])


async def test_health_check_marks_up_and_down(
    session: aiohttp.ClientSession, metrics: NodeMetrics, fake_backend: FakeBackend
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    doc = model_doc("m", [fake_backend.url, dead])
    doc["healthCheck"] = {"path": "/v1/models", "interval": "60s", "unhealthyAfter": 1}
    pool = _pool(doc, session, metrics)
    up, down = pool.backends
    await pool.check(up)
    await pool.check(down)
    assert up.healthy is True
    assert down.healthy is False
    assert down.last_error == "health check failed: connection failed (Connection refused)"
    assert [r.path for r in fake_backend.seen] == ["/v1/models"]


async def test_health_check_non_2xx_is_unhealthy(
    session: aiohttp.ClientSession, metrics: NodeMetrics, fake_backend: FakeBackend
) -> None:
    doc = model_doc("m", [fake_backend.url])
    doc["healthCheck"] = {"path": "/no-such-path", "interval": "60s", "unhealthyAfter": 1}
    pool = _pool(doc, session, metrics)
    await pool.check(pool.backends[0])
    assert pool.backends[0].healthy is False
    assert pool.backends[0].last_error == "health check answered 404"


async def test_base_url_accepts_v1_suffix(session: aiohttp.ClientSession, metrics: NodeMetrics) -> None:
    pool = _pool(model_doc("m", ["http://127.0.0.1:8000/v1/"]), session, metrics)
    assert pool.backends[0].base_url == "http://127.0.0.1:8000"


async def test_api_key_env_resolved_into_headers(
    session: aiohttp.ClientSession, metrics: NodeMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BACKEND_KEY", "sk-test")
    monkeypatch.setenv("TEST_EXTRA", "extra-value")
    doc = model_doc("m", [])
    doc["backends"] = [
        {
            "url": "http://127.0.0.1:1",
            "apiKeyEnv": "TEST_BACKEND_KEY",
            "headers": {"x-api-key": "${TEST_EXTRA}"},
        }
    ]
    pool = _pool(doc, session, metrics)
    assert pool.backends[0].headers == {"Authorization": "Bearer sk-test", "x-api-key": "extra-value"}


async def test_backend_set_replace_swaps_pools_and_keeps_old_on_error(
    session: aiohttp.ClientSession, metrics: NodeMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_UNSET_KEY", raising=False)
    backends = BackendSet(backend_config(model_doc("a", ["http://127.0.0.1:1"])), session, metrics)
    backends.start()
    try:
        backends.replace(backend_config(model_doc("b", ["http://127.0.0.1:2"])))
        assert backends.pool("a") is None
        assert backends.pool("b") is not None
        assert (
            metrics.registry.get_sample_value("fxn_backend_healthy", {"model": "a", "backend": "a/0"}) is None
        )
        broken = model_doc("c", [])
        broken["backends"] = [{"url": "http://127.0.0.1:3", "apiKeyEnv": "TEST_UNSET_KEY"}]
        with pytest.raises(ConfigError):
            backends.replace(BackendConfig.model_validate({"models": [broken]}))
        assert list(backends.pools) == ["b"]
    finally:
        await backends.close()


async def test_health_check_needs_consecutive_failures(
    session: aiohttp.ClientSession, metrics: NodeMetrics, fake_backend: FakeBackend
) -> None:
    # A busy server misses a probe now and then: only unhealthyAfter failures in a row count.
    doc = model_doc("m", [fake_backend.url])
    doc["healthCheck"] = {"path": "/v1/models", "interval": "60s", "timeout": "0.2s", "unhealthyAfter": 3}
    pool = _pool(doc, session, metrics)
    (backend,) = pool.backends
    await pool.check(backend)  # seen healthy once
    fake_backend.stall = 1.0
    await pool.check(backend)
    await pool.check(backend)
    assert (backend.healthy, backend.failed_checks) == (True, 2)
    fake_backend.stall = 0.0
    await pool.check(backend)  # a good probe starts the count again
    assert (backend.healthy, backend.failed_checks) == (True, 0)
    fake_backend.stall = 1.0
    for _ in range(3):
        await pool.check(backend)
    assert backend.healthy is False
    assert backend.last_error == "health check failed: no answer within 0.2s (healthCheck.timeout)"
    assert metrics.registry.get_sample_value("fxn_backend_healthy", {"model": "m", "backend": "m/0"}) == 0
    fake_backend.stall = 0.0
    await pool.check(backend)
    assert (backend.healthy, backend.failed_checks) == (True, 0)


async def test_health_check_default_is_three_failures(
    session: aiohttp.ClientSession, metrics: NodeMetrics, fake_backend: FakeBackend
) -> None:
    doc = model_doc("m", [fake_backend.url])
    doc["healthCheck"] = {"path": "/v1/models", "interval": "60s", "timeout": "0.2s"}
    pool = _pool(doc, session, metrics)
    (backend,) = pool.backends
    assert pool.config.health_check.unhealthy_after == 3
    await pool.check(backend)
    fake_backend.stall = 1.0
    await pool.check(backend)
    await pool.check(backend)
    assert backend.healthy is True
    await pool.check(backend)
    assert backend.healthy is False


async def test_a_backend_never_seen_healthy_is_marked_at_its_first_failure(
    session: aiohttp.ClientSession, metrics: NodeMetrics
) -> None:
    # Down at start is not busy: no grace before a first good check.
    pool = _pool(model_doc("m", [f"http://127.0.0.1:{free_port()}"]), session, metrics)
    (backend,) = pool.backends
    await pool.check(backend)
    assert backend.healthy is False
    assert backend.last_error == "health check failed: connection failed (Connection refused)"


async def test_failed_check_keeps_a_refused_backend_unhealthy(
    session: aiohttp.ClientSession, metrics: NodeMetrics
) -> None:
    # A real request's refused connection marks the backend at once (relay); a failed check
    # afterwards does not wait for its count to keep it out.
    pool = _pool(model_doc("m", [f"http://127.0.0.1:{free_port()}"]), session, metrics)
    (backend,) = pool.backends
    pool.mark(backend, False, "connect: refused")
    await pool.check(backend)
    assert backend.healthy is False
    assert backend.last_error == "health check failed: connection failed (Connection refused)"
