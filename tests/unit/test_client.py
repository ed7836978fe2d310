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
from function_node.client import (
    FxnAuth,
    FxnClientSession,
    FxnSigner,
    NodeIdentityError,
    verify_response_signature,
)
from function_node.client._discovery import address_from_health
from function_node.metrics import NodeMetrics
from function_node.node.context import CONTEXT
from function_node.protocol import response_message, v2_message
from function_node.signing import LocalSigner, body_sha256, recover_address
from tests.fixtures.auth import ClientFactory, build_auth_app, make_context

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "request-signing.json").read_text())["cases"]
Client = TestClient[web.Request, web.Application]
# OPENAI_HTTPX: openai 3.x annotates http_client as an httpx2 client, but it accepts (and checks for)
# the httpx clients that SPEC §9 names; the type: ignore comments below are for that annotation only.


def test_public_api_is_exactly_this() -> None:
    assert sorted(client_pkg.__all__) == [
        "FxnAuth",
        "FxnClientSession",
        "FxnSigner",
        "NodeAnswer",
        "NodeIdentityError",
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
    caller = "0x" + "ab" * 20
    for sig in (signature, None):
        result = verify_response_signature(
            node,
            caller_address=caller,
            request_body=b"req",
            nonce=nonce,
            status=200,
            body=b"resp",
            signature=sig,
        )
        assert result in (True, False)


def _verify(node: str, caller: str, body: bytes, signature: str | None, status: int = 200) -> bool:
    return verify_response_signature(
        node,
        caller_address=caller,
        request_body=b"req",
        nonce="n",
        status=status,
        body=body,
        signature=signature,
    )


def test_verify_response_signature_accepts_the_nodes_signature_only(
    node_signer: LocalSigner, gateway_signer: LocalSigner
) -> None:
    node, caller = node_signer.address, gateway_signer.address
    message = response_message(node, caller, body_sha256(b"req"), "n", 200, body_sha256(b"resp"))
    signature = node_signer.sign(message)
    assert _verify(node, caller, b"resp", signature)
    assert _verify(node.lower(), caller.lower(), b"resp", "0x" + signature)
    assert not _verify(node, caller, b"resp!", signature)
    assert not _verify(node, caller, b"resp", signature, status=201)
    assert not _verify(gateway_signer.address, caller, b"resp", signature)
    assert not _verify(node, node, b"resp", signature)
    assert not _verify(node, caller, b"resp", "00" * 64 + "1b")


def test_verify_response_signature_of_a_stream(node_signer: LocalSigner, gateway_signer: LocalSigner) -> None:
    node, caller = node_signer.address, gateway_signer.address
    events = b'data: {"a":1}\n\ndata: [DONE]\n\n'
    signature = "0x" + node_signer.sign(
        response_message(node, caller, body_sha256(b"req"), "n", 200, body_sha256(events))
    )
    stream = events + b": fxn-signature " + signature.encode() + b"\n\n"
    assert _verify(node, caller, stream, None)
    assert not _verify(node, caller, events, None)  # no signature line
    assert not _verify(node, caller, stream.replace(b'"a":1', b'"a":2'), None)
    assert not _verify(node, caller, stream + b"data: x\n\n", None)  # bytes after the line
    assert not _verify(gateway_signer.address, caller, stream, None)


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


async def test_fxnauth_refuses_to_send_when_health_claims_another_address(
    node: Client, gateway_signer: LocalSigner, stranger_signer: LocalSigner
) -> None:
    async with httpx.AsyncClient(auth=FxnAuth(gateway_signer, stranger_signer.address)) as http:
        with pytest.raises(NodeIdentityError, match="nothing was sent"):
            await http.post(base_url(node) + "/v1/echo", content=b"{}")
    # Only /health was asked: the echo handler never saw a request.
    assert node.app[CONTEXT].nonces is not None


async def test_fxnauth_with_a_wrong_address_and_no_health_check_gets_the_unsigned_refusal(
    node: Client, gateway_signer: LocalSigner, stranger_signer: LocalSigner
) -> None:
    # Signed v2 for another node: this node refuses before it knows who asks, so the refusal is
    # unsigned (no X-Fxn-Node) and reaches the caller as the error it is.
    auth = FxnAuth(gateway_signer, stranger_signer.address, discover=False)
    async with httpx.AsyncClient(auth=auth) as http:
        resp = await http.post(base_url(node) + "/v1/echo", content=b"{}")
    assert (resp.status_code, resp.json()["error"]["code"]) == (401, "bad_signature")
    assert "X-Fxn-Node" not in resp.headers


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
        answer = await fxn.request("POST", base_url(node) + "/v1/echo", json={"a": 1})
        async with answer:
            payload = await answer.json()
            raw = await answer.read()
        assert (answer.status, payload["scheme"], payload["body"]) == (200, "v2", '{"a":1}')
        assert answer.verified
        nonce = answer.response.request_info.headers["X-Nonce"]
        signature = answer.headers["X-Fxn-Response-Signature"]
        assert verify_response_signature(
            node_signer.address,
            caller_address=gateway_signer.address,
            request_body=b'{"a":1}',
            nonce=nonce,
            status=200,
            body=raw,
            signature=signature,
        )
        assert await fxn.node_address(base_url(node)) == node_signer.address.lower()


async def test_fxn_client_session_checks_a_streamed_answer(node: Client, gateway_signer: LocalSigner) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    async with (
        FxnClientSession(gateway_signer) as fxn,
        await fxn.request("POST", base_url(node) + "/v1/chat/completions", json=body) as answer,
    ):
        chunks = [chunk async for chunk in answer.iter_chunks()]
    raw = b"".join(chunks)
    assert b"data: [DONE]\n\n: fxn-signature 0x" in raw and raw.endswith(b"\n\n")


async def test_fxn_client_session_refuses_a_node_that_is_not_the_expected_one(
    node: Client, gateway_signer: LocalSigner, stranger_signer: LocalSigner
) -> None:
    async with FxnClientSession(gateway_signer, stranger_signer.address) as fxn:
        with pytest.raises(NodeIdentityError, match="nothing was sent"):
            await fxn.request("POST", base_url(node) + "/v1/echo", json={"a": 1})
    async with FxnClientSession(gateway_signer, stranger_signer.address, discover=False) as fxn:
        reply = await fxn.exchange("POST", base_url(node) + "/v1/echo", {"a": 1})
        assert (reply.status, reply.signer_problem) == (401, None)  # an unsigned refusal, let through
    async with FxnClientSession(gateway_signer, stranger_signer.address, discover=False, strict=True) as fxn:
        reply = await fxn.exchange("POST", base_url(node) + "/v1/echo", {"a": 1})
        assert reply.status == 401
        assert (
            reply.signer_problem
            == f"the answer names node '(none)', expected {stranger_signer.address.lower()}"
        )


async def test_fxn_client_session_legacy(node: Client, gateway_signer: LocalSigner) -> None:
    async with FxnClientSession(gateway_signer, legacy=True) as fxn:
        answer = await fxn.request("GET", base_url(node) + "/v1/echo")
        async with answer:
            assert (answer.status, (await answer.json())["scheme"]) == (200, "legacy")


def test_answers_of_the_status_routes_are_not_expected_to_be_signed() -> None:
    from function_node.protocol import answer_is_signed

    for path in ("/health", "/ready", "/metrics", "/node-7/health", "/ready/"):
        assert not answer_is_signed(path)
    for path in ("/v1/models", "/challenge", "/prefix/v1/chat/completions", "/v1/health-ish", "/"):
        assert answer_is_signed(path)


async def test_fxnauth_reads_health_through_a_node_without_expecting_a_signature(
    node: Client, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    async with httpx.AsyncClient(auth=FxnAuth(gateway_signer, node_signer.address)) as http:
        resp = await http.get(base_url(node) + "/health")
    assert resp.status_code == 200 and resp.json()["address"] == node_signer.address
