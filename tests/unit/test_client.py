"""The client library: signing vectors, FxnAuth (httpx and the openai SDK), FxnClientSession, verification."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

import function_node.client as client_pkg
from function_node.client import FxnAuth, FxnClientSession, FxnSigner, verify_response_signature
from function_node.client._discovery import address_from_health
from function_node.metrics import NodeMetrics
from function_node.signing import LocalSigner, recover_address, v2_message
from tests.fixtures.auth import ClientFactory, build_auth_app, make_context

VECTORS = json.loads(Path("/work/shared/vectors/request-signing.json").read_text())["cases"]
Client = TestClient[web.Request, web.Application]
# OPENAI_HTTPX: openai 3.x annotates http_client as an httpx2 client, but it accepts (and checks for)
# the httpx clients that SPEC §9 names; the type: ignore comments below are for that annotation only.


def test_public_api_is_exactly_this() -> None:
    assert sorted(client_pkg.__all__) == [
        "FxnAuth",
        "FxnClientSession",
        "FxnSigner",
        "verify_response_signature",
    ]


@pytest.mark.parametrize("case", VECTORS, ids=lambda c: c["nonce"])
def test_legacy_headers_match_the_vectors(case: dict[str, str]) -> None:
    signer = FxnSigner(case["private_key"])
    headers = signer.headers(
        "POST",
        "/v1/chat/completions",
        case["body_utf8"].encode(),
        timestamp=int(case["timestamp"]),
        nonce=case["nonce"],
    )
    assert headers == {
        "X-Address": case["address"],
        "X-Timestamp": case["timestamp"],
        "X-Nonce": case["nonce"],
        "X-Signature": "0x" + case["signature"],
    }


def test_v2_headers_sign_the_audience_method_and_path_without_query(
    gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    headers = FxnSigner(gateway_signer).headers(
        "post", "/v1/chat/completions?x=1", b"{}", node_signer.address, timestamp=5, nonce="n"
    )
    assert headers["X-Fxn-Auth"] == "2"
    message = v2_message(
        node_signer.address,
        "POST",
        "/v1/chat/completions",
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "5",
        "n",
    )
    assert recover_address(message, headers["X-Signature"]) == gateway_signer.address.lower()


def test_default_nonce_is_random_hex_and_timestamp_is_now(gateway_signer: LocalSigner) -> None:
    signer = FxnSigner(gateway_signer)
    first, second = signer.headers("GET", "/v1/models", b""), signer.headers("GET", "/v1/models", b"")
    assert first["X-Nonce"] != second["X-Nonce"]
    assert len(first["X-Nonce"]) == 32
    int(first["X-Nonce"], 16)
    assert abs(int(first["X-Timestamp"]) - time.time()) < 60  # "now", not a speed check


def test_signer_from_hex_and_never_shows_the_key(gateway_signer: LocalSigner) -> None:
    from tests.fixtures.common import DEV_KEYS

    signer = FxnSigner(DEV_KEYS[0])
    assert signer.address == gateway_signer.address
    assert DEV_KEYS[0][2:] not in repr(signer)


def test_address_from_health() -> None:
    good = b'{"status": "ok", "address": "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "version": "1"}'
    assert address_from_health(200, good) == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    assert address_from_health(503, good) is None
    assert address_from_health(200, b"not json") is None
    assert address_from_health(200, b"[1, 2]") is None
    assert address_from_health(200, b'{"address": "0x12"}') is None


@given(
    node=st.text(max_size=50),
    nonce=st.text(max_size=20),
    signature=st.one_of(st.text(max_size=140), st.binary(min_size=65, max_size=65).map(bytes.hex)),
)
def test_verify_response_signature_never_raises(node: str, nonce: str, signature: str) -> None:
    assert verify_response_signature(node, b"req", nonce, b"resp", signature) in (True, False)


def test_verify_response_signature_accepts_the_nodes_signature_only(
    node_signer: LocalSigner, gateway_signer: LocalSigner
) -> None:
    from function_node.signing import body_sha256, response_message

    message = response_message(body_sha256(b"req"), "n", body_sha256(b"resp"))
    signature = node_signer.sign(message)
    assert verify_response_signature(node_signer.address, b"req", "n", b"resp", signature)
    assert verify_response_signature(node_signer.address.lower(), b"req", "n", b"resp", "0x" + signature)
    assert not verify_response_signature(node_signer.address, b"req", "n", b"resp!", signature)
    assert not verify_response_signature(gateway_signer.address, b"req", "n", b"resp", signature)
    assert not verify_response_signature(node_signer.address, b"req", "n", b"resp", "00" * 64 + "1b")


# --- against the in-process node (real middleware) -------------------------------------------------


@pytest.fixture
async def node(
    auth_client_factory: ClientFactory,
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    metrics: NodeMetrics,
) -> Client:
    ctx = make_context(node_signer, metrics, gateways=[gateway_signer.address], schedulers=[])
    return await auth_client_factory(ctx)


def base_url(node: Client) -> str:
    return str(node.make_url("")).rstrip("/")


async def test_fxnauth_discovers_the_node_once_and_signs_v2(
    node: Client, gateway_signer: LocalSigner
) -> None:
    auth = FxnAuth(gateway_signer)
    async with httpx.AsyncClient(auth=auth, base_url=base_url(node)) as http:
        first = await http.post("/v1/echo", content=b'{"a":1}')
        second = await http.post("/v1/echo?q=1", content=b'{"a":2}')
    assert (first.status_code, first.json()["scheme"]) == (200, "v2")
    assert [r.request.url.path for r in first.history] == ["/health"]
    assert (second.status_code, second.json()["scheme"], second.history) == (200, "v2", [])


async def test_fxnauth_without_discovery_signs_legacy(node: Client, gateway_signer: LocalSigner) -> None:
    async with httpx.AsyncClient(auth=FxnAuth(gateway_signer, discover=False)) as http:
        resp = await http.post(base_url(node) + "/v1/echo", content=b"{}")
    assert (resp.status_code, resp.json()["scheme"], resp.history) == (200, "legacy", [])


async def test_fxnauth_with_a_wrong_node_address_is_refused(
    node: Client, gateway_signer: LocalSigner, stranger_signer: LocalSigner
) -> None:
    async with httpx.AsyncClient(auth=FxnAuth(gateway_signer, stranger_signer.address)) as http:
        resp = await http.post(base_url(node) + "/v1/echo", content=b"{}")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "bad_signature"


async def test_fxnauth_falls_back_to_legacy_when_health_has_no_address(
    node_signer: LocalSigner,
    gateway_signer: LocalSigner,
    metrics: NodeMetrics,
) -> None:
    ctx = make_context(node_signer, metrics, gateways=[gateway_signer.address], schedulers=[])
    bare = build_auth_app(ctx, health=False)  # discovery gets a 404
    async with (
        TestClient(TestServer(bare, host="127.0.0.1")) as node,
        httpx.AsyncClient(auth=FxnAuth(gateway_signer)) as http,
    ):
        url = base_url(node) + "/v1/echo"
        first = await http.post(url, content=b"{}")
        second = await http.post(url, content=b"{}")
    assert (first.status_code, first.json()["scheme"], len(first.history)) == (200, "legacy", 1)
    assert (second.status_code, len(second.history)) == (200, 0)


async def test_openai_sdk_async_through_fxnauth(node: Client, gateway_signer: LocalSigner) -> None:
    async with httpx.AsyncClient(auth=FxnAuth(gateway_signer)) as http:
        sdk = openai.AsyncOpenAI(base_url=base_url(node) + "/v1", api_key="-", http_client=http)  # type: ignore[arg-type]  # see OPENAI_HTTPX
        answer = await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "echo: hi"
        stream = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "one two"}], stream=True
        )
        words = [chunk.choices[0].delta.content async for chunk in stream]
        assert "".join(w or "" for w in words) == "echo: one two "


async def test_openai_sdk_sync_through_fxnauth(node: Client, gateway_signer: LocalSigner) -> None:
    url = base_url(node) + "/v1"

    def call() -> str | None:
        with httpx.Client(auth=FxnAuth(gateway_signer)) as http:
            sdk = openai.OpenAI(base_url=url, api_key="-", http_client=http)  # type: ignore[arg-type]  # see OPENAI_HTTPX
            answer = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "sync"}])
            return answer.choices[0].message.content

    # The sync client blocks, so it runs in a thread while this loop serves the node.
    assert await asyncio.to_thread(call) == "echo: sync"


async def test_openai_sdk_error_when_not_registered(node: Client, stranger_signer: LocalSigner) -> None:
    async with httpx.AsyncClient(auth=FxnAuth(stranger_signer)) as http:
        sdk = openai.AsyncOpenAI(
            base_url=base_url(node) + "/v1",
            api_key="-",
            http_client=http,  # type: ignore[arg-type]  # see OPENAI_HTTPX
            max_retries=0,
        )
        with pytest.raises(openai.AuthenticationError) as info:
            await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "unknown_caller"


async def test_fxn_client_session_signs_and_answers_verify(
    node: Client, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    async with FxnClientSession(gateway_signer) as fxn:
        resp = await fxn.request("POST", base_url(node) + "/v1/echo", json={"a": 1})
        async with resp:
            payload = await resp.json()
            raw = await resp.read()
        assert (resp.status, payload["scheme"], payload["body"]) == (200, "v2", '{"a":1}')
        nonce = resp.request_info.headers["X-Nonce"]
        signature = resp.headers["X-Fxn-Response-Signature"]
        assert verify_response_signature(node_signer.address, b'{"a":1}', nonce, raw, signature)
        assert await fxn.node_address(base_url(node)) == node_signer.address.lower()


async def test_fxn_client_session_legacy(node: Client, gateway_signer: LocalSigner) -> None:
    async with FxnClientSession(gateway_signer, legacy=True) as fxn:
        resp = await fxn.request("GET", base_url(node) + "/v1/echo")
        async with resp:
            assert (resp.status, (await resp.json())["scheme"]) == (200, "legacy")
