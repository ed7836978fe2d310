"""The auth middleware through a real aiohttp server: every SPEC §5 rejection, its order, and success."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import partial

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler
from structlog.testing import capture_logs

from function_node.client import FxnSigner, verify_response_signature
from function_node.config.settings import AuthSettings, Settings
from function_node.metrics import NodeMetrics
from function_node.node.auth import REASON_KEY
from function_node.node.context import NodeContext
from function_node.node.nonces import MemoryNonceStore
from function_node.registry.base import RegistryStatus
from function_node.registry.directory import CallerDirectory
from function_node.registry.static import StaticRegistry
from function_node.signing import LocalSigner
from tests.fixtures.auth import ClientFactory, build_auth_app, make_context

Client = TestClient[web.Request, web.Application]
BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'


async def send(
    client: Client,
    signer: LocalSigner,
    *,
    method: str = "POST",
    path: str = "/v1/echo",
    body: bytes = BODY,
    node: str | None = None,
    timestamp: int | None = None,
    nonce: str | None = None,
    override: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    sent_body: bytes | None = None,
) -> tuple[int, dict[str, object], dict[str, str], bytes]:
    headers = FxnSigner(signer).headers(method, path, body, node, timestamp=timestamp, nonce=nonce)
    headers.update(override or {})
    for name in drop:
        del headers[name]
    async with client.request(
        method, path, data=body if sent_body is None else sent_body, headers=headers
    ) as resp:
        raw = await resp.read()
        payload = orjson.loads(raw) if resp.content_type == "application/json" else {}
        return resp.status, payload, dict(resp.headers), raw


def code_of(payload: dict[str, object]) -> object:
    error = payload["error"]
    assert isinstance(error, dict)
    assert error["type"] == "authentication_error"
    return error["code"]


@pytest.fixture
def make_ctx(
    node_signer: LocalSigner, metrics: NodeMetrics, gateway_signer: LocalSigner, scheduler_signer: LocalSigner
) -> partial[NodeContext]:
    """make_context for this node, with the gateway and the scheduler registered; takes overrides."""
    return partial(
        make_context,
        node_signer,
        metrics,
        gateways=[gateway_signer.address],
        schedulers=[scheduler_signer.address],
    )


@pytest.fixture
async def client(auth_client_factory: ClientFactory, make_ctx: partial[NodeContext]) -> AsyncIterator[Client]:
    yield await auth_client_factory(make_ctx())


def failures(metrics: NodeMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("fxn_auth_failures_total", {"reason": reason}) or 0.0


def signed(node: str, caller: str, nonce: str, status: int, raw: bytes, signature: str) -> bool:
    return verify_response_signature(
        node,
        caller_address=caller,
        request_body=BODY,
        nonce=nonce,
        status=status,
        body=raw,
        signature=signature,
    )


# --- success -----------------------------------------------------------------------------------


async def test_legacy_request_is_admitted_and_the_answer_is_signed(
    client: Client, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    status, payload, headers, raw = await send(client, gateway_signer, nonce="n-1")
    assert status == 200
    assert payload["address"] == gateway_signer.address.lower()
    assert payload["role"] == "gateway"
    assert payload["scheme"] == "legacy"
    assert payload["body"] == BODY.decode()
    assert headers["X-Fxn-Node"] == node_signer.address
    signature = headers["X-Fxn-Response-Signature"]
    caller = gateway_signer.address
    assert signed(node_signer.address, caller, "n-1", 200, raw, signature)
    assert not signed(node_signer.address, caller, "n-2", 200, raw, signature)
    assert not signed(gateway_signer.address, caller, "n-1", 200, raw, signature)
    assert not signed(node_signer.address, node_signer.address, "n-1", 200, raw, signature)
    assert not signed(node_signer.address, caller, "n-1", 201, raw, signature)


async def test_v2_request_is_admitted(
    client: Client, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    status, payload, _, _ = await send(client, gateway_signer, node=node_signer.address)
    assert (status, payload["scheme"]) == (200, "v2")


async def test_v2_signs_the_path_without_its_query(
    client: Client, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    status, _, _, _ = await send(client, gateway_signer, path="/v1/echo?a=1&b=2", node=node_signer.address)
    assert status == 200


async def test_scheduler_may_call_v1_and_challenge(client: Client, scheduler_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(client, scheduler_signer)
    assert (status, payload["role"]) == (200, "scheduler")
    status, payload, _, _ = await send(client, scheduler_signer, path="/challenge")
    assert (status, payload["role"]) == (200, "scheduler")


async def test_address_in_any_case_and_signature_forms_are_accepted(
    client: Client, gateway_signer: LocalSigner
) -> None:
    headers = FxnSigner(gateway_signer).headers("POST", "/v1/echo", BODY, nonce="case-1")
    sig = headers["X-Signature"]
    v = int(sig[-2:], 16)
    headers["X-Address"] = "0X" + headers["X-Address"][2:].upper()
    headers["X-Signature"] = sig[2:-2] + f"{v - 27:02x}"  # no 0x, v as 0/1
    async with client.post("/v1/echo", data=BODY, headers=headers) as resp:
        assert resp.status == 200


async def test_unprotected_paths_pass_without_headers(client: Client) -> None:
    async with client.get("/health") as resp:
        assert resp.status == 200
        assert "X-Fxn-Node" not in resp.headers


@pytest.mark.parametrize("path", ["/v1", "/challenge/x", "/v2/echo", "/health/v1/"])
async def test_only_v1_subpaths_and_challenge_are_protected(client: Client, path: str) -> None:
    async with client.get(path) as resp:
        assert resp.status == 404  # the router's answer: the middleware let it through untouched
        assert "X-Fxn-Node" not in resp.headers


async def test_handler_http_exception_and_api_error_are_signed(
    client: Client, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    status, _, headers, raw = await send(
        client, gateway_signer, method="GET", path="/v1/not-found", nonce="a"
    )
    assert status == 404
    assert signed(
        node_signer.address, gateway_signer.address, "a", 404, raw, headers["X-Fxn-Response-Signature"]
    )
    status, payload, headers, raw = await send(
        client, gateway_signer, method="GET", path="/v1/api-error", nonce="b"
    )
    assert status == 404
    assert payload["error"] == {
        "message": "model 'x' is not served here",
        "type": "invalid_request_error",
        "code": "model_not_found",
    }
    assert headers["X-Fxn-Node"] == node_signer.address
    assert signed(
        node_signer.address, gateway_signer.address, "b", 404, raw, headers["X-Fxn-Response-Signature"]
    )


async def test_streamed_answer_has_node_header_and_a_signature_line_not_a_header(
    client: Client, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    body = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"a b"}]}'
    status, _, headers, raw = await send(
        client, gateway_signer, path="/v1/chat/completions", body=body, nonce="s-1"
    )
    assert status == 200
    assert headers["X-Fxn-Node"] == node_signer.address
    assert "X-Fxn-Response-Signature" not in headers
    _, _, line = raw.rpartition(b"data: [DONE]\n\n")
    assert line.startswith(b": fxn-signature 0x") and line.endswith(b"\n\n")
    assert verify_response_signature(
        node_signer.address,
        caller_address=gateway_signer.address,
        request_body=body,
        nonce="s-1",
        status=200,
        body=raw,
    )


# --- each rejection ----------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["X-Address", "X-Timestamp", "X-Nonce", "X-Signature"])
async def test_missing_header(
    client: Client, gateway_signer: LocalSigner, metrics: NodeMetrics, header: str
) -> None:
    status, payload, headers, _ = await send(client, gateway_signer, drop=(header,))
    assert (status, code_of(payload)) == (401, "missing_header")
    error = payload["error"]
    assert isinstance(error, dict)
    assert header in str(error["message"])
    assert "X-Fxn-Node" not in headers
    assert failures(metrics, "missing_header") == 1


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Address", "0x1234"),
        ("X-Address", "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
        ("X-Address", "0x1_39fd6e51aad88f6f4ce6ab8827279cfffb9226"),
        ("X-Address", "0xg39fd6e51aad88f6f4ce6ab8827279cfffb92266"),
        ("X-Timestamp", "abc"),
        ("X-Timestamp", "-5"),
        ("X-Timestamp", "1.5"),
        ("X-Timestamp", "1e9"),
        ("X-Timestamp", "9" * 13),
        ("X-Nonce", "has space"),
        ("X-Nonce", "x" * 129),
        ("X-Nonce", "caf\u00e9"),
        ("X-Signature", "0x1234"),
        ("X-Signature", "zz" * 65),
        ("X-Signature", "0x" + "ab" * 64 + "1d"),
        ("X-Signature", "ab" * 64 + " 1b"),
        ("X-Fxn-Auth", "3"),
    ],
)
async def test_malformed_header(
    client: Client, gateway_signer: LocalSigner, metrics: NodeMetrics, header: str, value: str
) -> None:
    status, payload, _, _ = await send(client, gateway_signer, override={header: value})
    assert (status, code_of(payload)) == (400, "malformed_header")
    assert failures(metrics, "malformed_header") == 1


async def test_nonce_of_128_printable_characters_is_accepted(
    client: Client, gateway_signer: LocalSigner
) -> None:
    nonce = "".join(chr(0x21 + i % 94) for i in range(128))
    status, payload, _, _ = await send(client, gateway_signer, nonce=nonce)
    assert (status, payload["nonce"]) == (200, nonce)


async def test_unknown_caller(client: Client, stranger_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(client, stranger_signer)
    assert (status, code_of(payload)) == (401, "unknown_caller")
    status, payload, _, _ = await send(client, stranger_signer, path="/challenge")
    assert (status, code_of(payload)) == (401, "unknown_caller")


async def test_gateway_on_challenge_is_forbidden(client: Client, gateway_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(client, gateway_signer, path="/challenge")
    assert (status, code_of(payload)) == (403, "forbidden_route")


@pytest.mark.parametrize("offset", [-400, 400, -10_000_000])  # margins: no timing assumption
async def test_stale_timestamp(client: Client, gateway_signer: LocalSigner, offset: int) -> None:
    status, payload, _, _ = await send(client, gateway_signer, timestamp=int(time.time()) + offset)
    assert (status, code_of(payload)) == (401, "stale_timestamp")


@pytest.mark.parametrize("offset", [-200, 200])
async def test_timestamp_within_skew_is_accepted(
    client: Client, gateway_signer: LocalSigner, offset: int
) -> None:
    status, _, _, _ = await send(client, gateway_signer, timestamp=int(time.time()) + offset)
    assert status == 200


async def test_bad_signature_other_key(
    client: Client, gateway_signer: LocalSigner, stranger_signer: LocalSigner
) -> None:
    status, payload, _, _ = await send(
        client, stranger_signer, override={"X-Address": gateway_signer.address}
    )
    assert (status, code_of(payload)) == (401, "bad_signature")


async def test_bad_signature_tampered_body(client: Client, gateway_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(client, gateway_signer, sent_body=BODY.replace(b"hi", b"ho"))
    assert (status, code_of(payload)) == (401, "bad_signature")


async def test_bad_signature_signature_not_on_the_curve(client: Client, gateway_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(client, gateway_signer, override={"X-Signature": "00" * 64 + "1b"})
    assert (status, code_of(payload)) == (401, "bad_signature")


async def test_v2_for_another_node_is_refused(
    client: Client, gateway_signer: LocalSigner, stranger_signer: LocalSigner
) -> None:
    status, payload, _, _ = await send(client, gateway_signer, node=stranger_signer.address)
    assert (status, code_of(payload)) == (401, "bad_signature")


async def test_v2_for_another_method_is_refused(
    client: Client, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    headers = FxnSigner(gateway_signer).headers("GET", "/v1/echo", BODY, node_signer.address)
    async with client.post("/v1/echo", data=BODY, headers=headers) as resp:
        assert resp.status == 401
        assert code_of(await resp.json()) == "bad_signature"


async def test_replayed_nonce(client: Client, gateway_signer: LocalSigner, metrics: NodeMetrics) -> None:
    headers = FxnSigner(gateway_signer).headers("POST", "/v1/echo", BODY)
    async with client.post("/v1/echo", data=BODY, headers=headers) as resp:
        assert resp.status == 200
    async with client.post("/v1/echo", data=BODY, headers=headers) as resp:
        assert resp.status == 401
        assert code_of(await resp.json()) == "replayed_nonce"
    assert failures(metrics, "replayed_nonce") == 1


async def test_same_nonce_from_two_callers_is_not_a_replay(
    client: Client, gateway_signer: LocalSigner, scheduler_signer: LocalSigner
) -> None:
    assert (await send(client, gateway_signer, nonce="shared"))[0] == 200
    assert (await send(client, scheduler_signer, nonce="shared"))[0] == 200


async def test_body_too_large_by_content_length(
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    metrics: NodeMetrics,
    make_ctx: partial[NodeContext],
) -> None:
    settings = Settings(auth=AuthSettings(max_body_bytes=64))
    client = await auth_client_factory(make_ctx(settings=settings))
    status, payload, _, _ = await send(client, gateway_signer, body=b"x" * 65)
    assert (status, code_of(payload)) == (413, "body_too_large")
    status, _, _, _ = await send(client, gateway_signer, body=b"x" * 64)
    assert status == 200


async def test_body_too_large_when_chunked(
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    metrics: NodeMetrics,
    make_ctx: partial[NodeContext],
) -> None:
    settings = Settings(auth=AuthSettings(max_body_bytes=100_000))
    client = await auth_client_factory(make_ctx(settings=settings))

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"y" * 4096

    headers = FxnSigner(gateway_signer).headers("POST", "/v1/echo", b"y" * 4096 * 40)
    async with client.post("/v1/echo", data=chunks(), headers=headers) as resp:
        assert resp.status == 413
        assert code_of(await resp.json()) == "body_too_large"


async def test_chunked_body_within_limit_is_signed_and_read(
    client: Client, gateway_signer: LocalSigner
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield BODY[:10]
        yield BODY[10:]

    headers = FxnSigner(gateway_signer).headers("POST", "/v1/echo", BODY)
    async with client.post("/v1/echo", data=chunks(), headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["body"] == BODY.decode()


async def test_legacy_refused_when_v2_required(
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    metrics: NodeMetrics,
    make_ctx: partial[NodeContext],
) -> None:
    settings = Settings(auth=AuthSettings(accept_legacy_signatures=False))
    client = await auth_client_factory(make_ctx(settings=settings))
    status, payload, _, _ = await send(client, gateway_signer)
    assert (status, code_of(payload)) == (401, "bad_signature")
    error = payload["error"]
    assert isinstance(error, dict)
    assert "v2" in str(error["message"])
    status, _, _, _ = await send(client, gateway_signer, node=node_signer.address)
    assert status == 200


async def test_nonce_store_unavailable(
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    scheduler_signer: LocalSigner,
    metrics: NodeMetrics,
    make_ctx: partial[NodeContext],
) -> None:
    # A memory store of one entry is full after one request: it refuses (fails closed), like Redis down.
    store = MemoryNonceStore(ttl=600.0, max_entries=1, max_per_caller=1)
    client = await auth_client_factory(make_ctx(nonces=store))
    assert (await send(client, gateway_signer))[0] == 200
    status, payload, headers, raw = await send(client, scheduler_signer, nonce="s-1")
    assert (status, code_of(payload)) == (503, "nonce_store_unavailable")
    assert metrics.registry.get_sample_value("fxn_nonce_store_errors_total") == 1
    # Refused after the signature verified: signed, like every answer from then on.
    assert signed(
        node_signer.address, scheduler_signer.address, "s-1", 503, raw, headers["X-Fxn-Response-Signature"]
    )


async def test_nonce_quota_exceeded_is_429_signed_and_claims_nothing(
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    scheduler_signer: LocalSigner,
    metrics: NodeMetrics,
    make_ctx: partial[NodeContext],
) -> None:
    store = MemoryNonceStore(ttl=600.0, max_entries=1000, max_per_caller=2)
    client = await auth_client_factory(make_ctx(nonces=store))
    assert (await send(client, gateway_signer, nonce="g-1"))[0] == 200
    assert (await send(client, gateway_signer, nonce="g-2"))[0] == 200
    status, payload, headers, raw = await send(client, gateway_signer, nonce="g-3")
    assert (status, code_of(payload)) == (429, "nonce_quota_exceeded")
    assert headers["Retry-After"] == "600"
    assert "oldest nonce expires in 600s" in str(payload["error"])
    assert signed(
        node_signer.address, gateway_signer.address, "g-3", 429, raw, headers["X-Fxn-Response-Signature"]
    )
    assert failures(metrics, "nonce_quota_exceeded") == 1
    assert store.held_by(gateway_signer.address) == 2  # g-3 was not claimed
    # A replay is a replay whatever the quota; other callers are not affected.
    assert code_of((await send(client, gateway_signer, nonce="g-1"))[1]) == "replayed_nonce"
    assert (await send(client, scheduler_signer, nonce="s-1"))[0] == 200


class NeverLoadedRegistry:
    """A registry whose first load has not succeeded (a chain registry during an RPC outage)."""

    name = "gateway-chain"

    def contains(self, address: str) -> bool:
        raise AssertionError("an unusable registry must not be consulted")

    def status(self) -> RegistryStatus:
        return RegistryStatus(self.name, "chain", loaded=False, stale=False, entries=0, last_success=None)


async def test_registry_unavailable(
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    scheduler_signer: LocalSigner,
    metrics: NodeMetrics,
) -> None:
    directory = CallerDirectory(
        gateways=[NeverLoadedRegistry()],
        schedulers=[StaticRegistry("scheduler-static", [scheduler_signer.address])],
    )
    client = await auth_client_factory(
        make_context(node_signer, metrics, gateways=[], schedulers=[], directory=directory)
    )
    status, payload, _, _ = await send(client, gateway_signer)
    assert (status, code_of(payload)) == (503, "registry_unavailable")
    error = payload["error"]
    assert isinstance(error, dict)
    assert "gateway-chain (not loaded)" in str(error["message"])
    # A caller found in a usable registry is still served.
    assert (await send(client, scheduler_signer))[0] == 200


# --- order -------------------------------------------------------------------------------------


async def test_missing_before_malformed(client: Client, gateway_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(
        client, gateway_signer, override={"X-Address": "nope"}, drop=("X-Nonce",)
    )
    assert (status, code_of(payload)) == (401, "missing_header")


async def test_malformed_before_unknown_caller(client: Client, stranger_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(client, stranger_signer, override={"X-Timestamp": "soon"})
    assert (status, code_of(payload)) == (400, "malformed_header")


async def test_unknown_caller_before_stale_timestamp(client: Client, stranger_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(client, stranger_signer, timestamp=1)
    assert (status, code_of(payload)) == (401, "unknown_caller")


async def test_forbidden_route_before_stale_timestamp(client: Client, gateway_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(client, gateway_signer, path="/challenge", timestamp=1)
    assert (status, code_of(payload)) == (403, "forbidden_route")


async def test_stale_timestamp_before_body_too_large(
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    metrics: NodeMetrics,
    make_ctx: partial[NodeContext],
) -> None:
    settings = Settings(auth=AuthSettings(max_body_bytes=8))
    client = await auth_client_factory(make_ctx(settings=settings))
    status, payload, _, _ = await send(client, gateway_signer, body=b"z" * 100, timestamp=1)
    assert (status, code_of(payload)) == (401, "stale_timestamp")
    status, payload, _, _ = await send(
        client, gateway_signer, body=b"z" * 100, override={"X-Signature": "00" * 64 + "1b"}
    )
    assert (status, code_of(payload)) == (413, "body_too_large")


async def test_stale_timestamp_before_bad_signature(client: Client, gateway_signer: LocalSigner) -> None:
    status, payload, _, _ = await send(
        client, gateway_signer, timestamp=1, override={"X-Signature": "00" * 64 + "1b"}
    )
    assert (status, code_of(payload)) == (401, "stale_timestamp")


async def test_bad_signature_before_replay_and_does_not_burn_the_nonce(
    client: Client, gateway_signer: LocalSigner, stranger_signer: LocalSigner
) -> None:
    assert (await send(client, gateway_signer, nonce="used"))[0] == 200
    # A forged request reusing an already-claimed nonce: the signature is checked first.
    status, payload, _, _ = await send(
        client, stranger_signer, nonce="used", override={"X-Address": gateway_signer.address}
    )
    assert (status, code_of(payload)) == (401, "bad_signature")
    # A forged request with a fresh nonce must not claim it for the real caller.
    status, payload, _, _ = await send(
        client, stranger_signer, nonce="fresh", override={"X-Address": gateway_signer.address}
    )
    assert (status, code_of(payload)) == (401, "bad_signature")
    assert (await send(client, gateway_signer, nonce="fresh"))[0] == 200


# --- observability and bypass --------------------------------------------------------------------


async def test_rejection_is_logged_counted_and_recorded_on_the_request(
    node_signer: LocalSigner,
    stranger_signer: LocalSigner,
    metrics: NodeMetrics,
    make_ctx: partial[NodeContext],
) -> None:
    seen: list[object] = []

    @web.middleware
    async def recorder(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        seen.append(request.get(REASON_KEY))
        return response

    app = build_auth_app(make_ctx())
    app.middlewares.insert(0, recorder)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        with capture_logs() as logs:
            status, payload, _, _ = await send(client, stranger_signer, nonce="secret-ish")
    assert (status, code_of(payload)) == (401, "unknown_caller")
    assert seen == ["unknown_caller"]
    assert failures(metrics, "unknown_caller") == 1
    rejected = [entry for entry in logs if entry["event"] == "auth_rejected"]
    assert len(rejected) == 1
    entry = rejected[0]
    assert entry["log_level"] == "warning"
    assert entry["reason"] == "unknown_caller"
    assert entry["status"] == 401
    assert entry["caller"] == stranger_signer.address
    text = repr(entry)
    assert BODY.decode() not in text
    assert "signature" not in text.lower()


async def test_bypass_admits_everyone_but_keeps_the_body_limit(
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    stranger_signer: LocalSigner,
    metrics: NodeMetrics,
) -> None:
    settings = Settings.model_validate(
        {"registry": {"bypassAuth": True}, "auth": {"maxBodyBytes": 100}}, strict=False
    )
    client = await auth_client_factory(
        make_context(node_signer, metrics, settings=settings, gateways=[], schedulers=[])
    )
    async with client.post("/v1/echo", data=b"{}") as resp:
        assert resp.status == 200
        payload = await resp.json()
        assert (payload["address"], payload["role"], payload["scheme"]) == ("", None, "bypass")
        assert resp.headers["X-Fxn-Node"] == node_signer.address
    status, payload, _, _ = await send(client, stranger_signer, body=b"{}")
    assert (status, payload["address"], payload["scheme"]) == (200, stranger_signer.address.lower(), "bypass")
    async with client.post("/v1/echo", data=b"x" * 101) as resp:
        assert resp.status == 413
        assert code_of(await resp.json()) == "body_too_large"
