"""ENDPOINT_REACHABLE: only configured backends (or allowlisted prefixes) are probed, never followed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from function_node.challenges.endpoint import EndpointChallenge, normalize_url
from function_node.devnet.process import free_port
from function_node.errors import ChallengeError
from tests.fixtures.challenges import ContextFactory


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A real HTTP server on loopback that records what it was asked."""
    seen: list[web.Request] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"data": []})

    async def moved(request: web.Request) -> web.Response:
        seen.append(request)
        raise web.HTTPFound("http://127.0.0.1:1/elsewhere")

    async def broken(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_get("/", models)
    app.router.add_get("/v1", models)
    app.router.add_get("/v1/", models)
    app.router.add_get("/moved/v1/models", moved)
    app.router.add_get("/tools/broken", broken)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", seen
    await server.close()


def _backends(base: str) -> dict[str, Any]:
    return {
        "models": [
            {"name": "m1", "backends": [{"url": base + "/v1", "apiKeyEnv": "FXN_TEST_PROBE_KEY"}]},
            {"name": "moved", "backends": [{"url": base + "/moved"}]},
        ]
    }


async def test_probe_of_a_configured_backend(
    upstream: tuple[str, list[web.Request]],
    challenge_ctx_factory: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, seen = upstream
    monkeypatch.setenv("FXN_TEST_PROBE_KEY", "sk-probe")
    ctx = challenge_ctx_factory(backends=_backends(base))
    for payload in (
        base + "/v1",
        {"url": base + "/v1/"},
        base.upper().replace("HTTP://", "http://") + "/v1/models",
    ):
        answer = await EndpointChallenge().run(payload, ctx)
        assert (answer["reachable"], answer["statusCode"]) == (True, 200)
        assert answer["latencyMs"] >= 0
    assert seen[0].headers["Authorization"] == "Bearer sk-probe"


async def test_model_probes_every_backend_and_does_not_follow_redirects(
    upstream: tuple[str, list[web.Request]], challenge_ctx_factory: ContextFactory
) -> None:
    base, seen = upstream
    ctx = challenge_ctx_factory(backends=_backends(base))
    (answer,) = await EndpointChallenge().run({"model": "moved"}, ctx)
    assert answer == {
        "url": base + "/moved/v1/models",
        "reachable": True,
        "statusCode": 302,
        "latencyMs": answer["latencyMs"],
    }
    assert [r.path for r in seen] == ["/moved/v1/models"]  # the redirect target was never asked
    results = await EndpointChallenge().run({"model": "m1"}, ctx)
    assert [r["statusCode"] for r in results] == [200]


async def test_allowlisted_prefix_and_unreachable(
    upstream: tuple[str, list[web.Request]], challenge_ctx_factory: ContextFactory
) -> None:
    base, _ = upstream
    dead = f"http://127.0.0.1:{free_port()}"
    ctx = challenge_ctx_factory({"challenge": {"endpointAllowlist": [base + "/tools", dead + "/"]}})
    answer = await EndpointChallenge().run(base + "/tools/broken", ctx)
    assert (answer["reachable"], answer["statusCode"]) == (False, 503)
    answer = await EndpointChallenge().run(dead + "/health", ctx)
    assert (answer["reachable"], answer["statusCode"]) == (False, None)
    assert answer["error"] == "ClientConnectorError"


REFUSED = "URL refused: it is neither a configured backend nor under challenge.endpointAllowlist"


@pytest.mark.parametrize(
    ("suffix_or_url", "message"),
    [
        ("/v1/chat/completions", REFUSED),  # a backend's other paths are not probes
        ("/toolsmith", REFUSED),  # prefix match is per path segment
        ("/tools/../admin", REFUSED),  # dot segments resolved before comparing
        (
            "/tools/%2e%2e/admin",
            "URL refused: percent-encoded dots or slashes and backslashes are not accepted",
        ),
        ("/tools?x=1", "URL refused: URLs with a query or fragment are not accepted"),
        ("/tools/x\r\nHost: evil", "URL refused: URLs with spaces or control characters are not accepted"),
        ("http://169.254.169.254/latest/meta-data", REFUSED),
        ("http://user:pw@127.0.0.1/", "URL refused: URLs with user info are not accepted"),
        ("file:///etc/passwd", "URL refused: only http:// and https:// URLs with a host can be probed"),
        ("https://{host}/v1", REFUSED),  # another scheme (and so another port) is another origin
        ("http://127.0.0.1:99999/", "URL refused: not a valid URL (Port out of range 0-65535)"),
        # loopback ports that no backend is configured on: a probe is not a local port scanner
        ("http://127.0.0.1:{free}/", REFUSED),
        ("http://localhost:{next_port}/v1/models", REFUSED),
    ],
)
async def test_refused_urls(
    upstream: tuple[str, list[web.Request]],
    challenge_ctx_factory: ContextFactory,
    suffix_or_url: str,
    message: str,
) -> None:
    base, seen = upstream
    ctx = challenge_ctx_factory({"challenge": {"endpointAllowlist": [base + "/tools"]}}, _backends(base))
    host = base.removeprefix("http://")
    port = int(host.rsplit(":", 1)[1])
    fields = {"host": host, "free": free_port(), "next_port": port + 1}
    url = suffix_or_url.format(**fields) if "//" in suffix_or_url else base + suffix_or_url
    with pytest.raises(ChallengeError) as info:
        await EndpointChallenge().run(url, ctx)
    assert (info.value.status, info.value.code, str(info.value)) == (400, "endpoint_not_allowed", message)
    assert seen == []


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        ({"model": "nope"}, "unknown_model", "model 'nope' is not configured on this node"),
        (
            5,
            "invalid_payload",
            'ENDPOINT_REACHABLE payload must be a URL string, {"url": ...} or {"model": ...}',
        ),
        (
            {"url": 5},
            "invalid_payload",
            'ENDPOINT_REACHABLE payload must be a URL string, {"url": ...} or {"model": ...}',
        ),
    ],
)
async def test_bad_payloads(
    challenge_ctx_factory: ContextFactory, payload: Any, code: str, message: str
) -> None:
    with pytest.raises(ChallengeError) as info:
        await EndpointChallenge().run(payload, challenge_ctx_factory())
    assert (info.value.status, info.value.code, str(info.value)) == (400, code, message)


def test_normalisation() -> None:
    assert normalize_url("HTTP://LocalHost/v1/") == normalize_url("http://localhost:80/v1")
    assert normalize_url("https://h/a/./b/../c") == ("https", "h", 443, "/a/c")
    assert normalize_url("http://h") == normalize_url("http://h/")
