"""Every answer the node gives once a request's signature verified is signed by the node (SPEC §5), through
the real stack (``create_app``: observe, auth, proxy) in front of the fake backend: each status, a stream
the backend breaks, a backend that tries to speak for the node, and the refusals that cannot be signed.

The expected message is written out here field by field, not built with the node's own helper, so a
change of the message's shape fails these tests.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from function_node.client import FxnSigner
from function_node.devnet.process import free_port
from function_node.signing import LocalSigner, recover_address
from tests.fixtures.backend import (
    DIE_MIDSTREAM,
    HANG_BEFORE_HEADERS,
    MIDSTREAM_EVENTS,
    SLOW_STREAM,
    STATUS_422,
    STATUS_422_BODY,
    STATUS_500,
    FakeBackend,
)
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import ProxyClient, backend_config, model_doc
from tests.fixtures.signed import SignedTestClient

CHAT: Final = {"model": "dev", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4}
NODE: Final = LocalSigner.from_hex(DEV_KEYS[2]).address  # proxy_client's node key
GATEWAY: Final = LocalSigner.from_hex(DEV_KEYS[0]).address  # proxy_client's only caller
STREAM_LINE_PREFIX: Final = b": fxn-signature 0x"
STREAM_LINE_LEN: Final = len(STREAM_LINE_PREFIX) + 130 + 2


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_message(request_body: bytes, nonce: str, status: int, response_body: bytes) -> str:
    """SPEC §5's ``fxn-response-v1`` message, joined here from its fields."""
    return (
        f"fxn-response-v1\n{NODE.lower()}\n{GATEWAY.lower()}\n{sha(request_body)}\n{nonce}\n{status}\n"
        f"{sha(response_body)}"
    )


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    request_body: bytes
    nonce: str

    def error_code(self) -> str:
        return str(orjson.loads(self.body)["error"]["code"])


async def send(client: SignedTestClient, method: str, path: str, body: bytes = b"") -> Answer:
    """One request signed (v2) by the gateway; the whole answer."""
    resp = await client.request(method, path, data=body)
    raw = await resp.read()
    assert client.last is not None
    return Answer(resp.status, resp.headers, raw, client.last.body, client.last.nonce)


def assert_plain_signed(answer: Answer) -> None:
    """``X-Fxn-Node`` is the node (once) and ``X-Fxn-Response-Signature`` recovers to it over the exact
    message of this answer to this request."""
    assert answer.headers.getall("X-Fxn-Node") == [NODE]
    [signature] = answer.headers.getall("X-Fxn-Response-Signature")
    assert signature.startswith("0x") and len(signature) == 132
    message = expected_message(answer.request_body, answer.nonce, answer.status, answer.body)
    assert recover_address(message, signature) == NODE.lower()


def split_stream(raw: bytes) -> tuple[bytes, str]:
    """The bytes a stream's signature line signs, and the line's signature."""
    assert raw.endswith(b"\n\n")
    body, line = raw[:-STREAM_LINE_LEN], raw[-STREAM_LINE_LEN:]
    assert line.startswith(STREAM_LINE_PREFIX), line
    return body, line[len(STREAM_LINE_PREFIX) - 2 : -2].decode()


def assert_stream_signed(answer: Answer) -> bytes:
    """The stream ends with the node's line over every byte before it (status 200); returns those bytes."""
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/event-stream"
    assert answer.headers.getall("X-Fxn-Node") == [NODE]
    assert "X-Fxn-Response-Signature" not in answer.headers
    body, signature = split_stream(answer.body)
    assert recover_address(expected_message(answer.request_body, answer.nonce, 200, body), signature) == (
        NODE.lower()
    )
    return body


def fault_models(url: str) -> list[dict[str, Any]]:
    docs = [
        model_doc(name, [url]) for name in ("dev", HANG_BEFORE_HEADERS, DIE_MIDSTREAM, STATUS_500, STATUS_422)
    ]
    for doc in docs:
        doc["timeouts"] = {"connect": "2s", "firstByte": "0.5s", "total": "30s"}
    return docs


@pytest.fixture
async def client(fake_backend: FakeBackend, proxy_client: ProxyClient) -> SignedTestClient:
    return await proxy_client(backend_config(*fault_models(fake_backend.url)))


# -- every status ---------------------------------------------------------------------------------


async def test_200_chat_answer_is_signed(client: SignedTestClient) -> None:
    answer = await send(client, "POST", "/v1/chat/completions", orjson.dumps(CHAT))
    assert answer.status == 200
    assert orjson.loads(answer.body)["object"] == "chat.completion"
    assert_plain_signed(answer)


async def test_200_models_list_answered_by_the_node_itself_is_signed(client: SignedTestClient) -> None:
    answer = await send(client, "GET", "/v1/models")
    assert answer.status == 200
    assert answer.request_body == b""
    listed = [m["id"] for m in orjson.loads(answer.body)["data"]]
    assert listed == ["dev", HANG_BEFORE_HEADERS, DIE_MIDSTREAM, STATUS_500, STATUS_422]
    assert_plain_signed(answer)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/chat/completions", b"{not json", 400, "invalid_json"),
        ("POST", "/v1/chat/completions", b'{"model": "nope"}', 404, "model_not_found"),
        ("POST", "/v1/chat/completions", b'{"model": "nope", "stream": true}', 404, "model_not_found"),
        ("GET", "/v1/no-such-route", b"", 404, "not_found"),
        ("GET", "/v1/chat/completions", b"", 405, "method_not_allowed"),
    ],
    ids=["400-invalid-json", "404-unknown-model", "404-unknown-model-streamed", "404-unknown-path", "405"],
)
async def test_error_answers_are_signed(
    client: SignedTestClient, method: str, path: str, body: bytes, status: int, code: str
) -> None:
    answer = await send(client, method, path, body)
    assert (answer.status, answer.error_code()) == (status, code)
    # A streamed request answered with a JSON error gets the header form (SPEC §5).
    assert answer.headers["Content-Type"].startswith("application/json")
    assert_plain_signed(answer)
    if status == 405:
        assert answer.headers["Allow"] == "POST"


async def test_401_replayed_nonce_is_signed(client: SignedTestClient) -> None:
    body = orjson.dumps(CHAT)
    headers = client.signer.headers("POST", "/v1/chat/completions", body, NODE)
    first = await client.post("/v1/chat/completions", data=body, headers=headers)
    assert first.status == 200
    await first.read()
    resp = await client.post("/v1/chat/completions", data=body, headers=headers)
    answer = Answer(resp.status, resp.headers, await resp.read(), body, headers["X-Nonce"])
    assert (answer.status, answer.error_code()) == (401, "replayed_nonce")
    assert orjson.loads(answer.body)["error"]["message"] == "this X-Nonce was already used by this caller"
    assert_plain_signed(answer)


async def test_backend_statuses_relayed_as_they_are_are_signed(client: SignedTestClient) -> None:
    answer = await send(client, "POST", "/v1/chat/completions", orjson.dumps({**CHAT, "model": STATUS_500}))
    assert (answer.status, answer.error_code()) == (500, "fake_500")
    assert_plain_signed(answer)
    answer = await send(client, "POST", "/v1/chat/completions", orjson.dumps({**CHAT, "model": STATUS_422}))
    assert (answer.status, answer.body) == (422, STATUS_422_BODY)
    assert_plain_signed(answer)


async def test_429_model_at_capacity_is_signed(fake_backend: FakeBackend, proxy_client: ProxyClient) -> None:
    doc = model_doc(SLOW_STREAM, [])
    doc["backends"] = [{"url": fake_backend.url, "maxConcurrency": 1}]
    client = await proxy_client(backend_config(doc))
    body = orjson.dumps({**CHAT, "model": SLOW_STREAM, "stream": True, "max_tokens": 20})
    held = await client.post("/v1/chat/completions", data=body)
    assert held.status == 200
    answer = await send(client, "POST", "/v1/chat/completions", body)
    assert (answer.status, answer.error_code()) == (429, "model_at_capacity")
    assert answer.headers["Retry-After"] == "1"
    assert_plain_signed(answer)
    await held.read()


async def test_502_then_503_are_signed(proxy_client: ProxyClient) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = await proxy_client(backend_config(model_doc("dev", [dead], healthCheck={"enabled": False})))
    answer = await send(client, "POST", "/v1/chat/completions", orjson.dumps(CHAT))
    assert (answer.status, answer.error_code()) == (502, "backend_unreachable")
    assert_plain_signed(answer)
    answer = await send(client, "POST", "/v1/chat/completions", orjson.dumps(CHAT))
    assert (answer.status, answer.error_code()) == (503, "no_healthy_backend")
    assert_plain_signed(answer)


@pytest.mark.parametrize("stream", [False, True])
async def test_504_backend_timeout_is_signed(client: SignedTestClient, stream: bool) -> None:
    body = orjson.dumps({**CHAT, "model": HANG_BEFORE_HEADERS, "stream": stream})
    answer = await send(client, "POST", "/v1/chat/completions", body)
    assert (answer.status, answer.error_code()) == (504, "backend_timeout")
    assert_plain_signed(answer)


# -- streams ----------------------------------------------------------------------------------------


async def test_a_complete_stream_ends_with_done_then_the_signature_line(client: SignedTestClient) -> None:
    answer = await send(client, "POST", "/v1/chat/completions", orjson.dumps({**CHAT, "stream": True}))
    body = assert_stream_signed(answer)
    assert body.endswith(b"data: [DONE]\n\n")


async def test_a_stream_the_backend_breaks_ends_with_the_error_event_then_a_valid_line(
    client: SignedTestClient,
) -> None:
    body = orjson.dumps({**CHAT, "model": DIE_MIDSTREAM, "stream": True})
    answer = await send(client, "POST", "/v1/chat/completions", body)
    signed = assert_stream_signed(answer)  # status 200 in the message, though the stream failed
    events = signed.decode().split("\n\n")
    assert events[-1] == ""
    assert events[:MIDSTREAM_EVENTS] == [f'data: {{"n": {i}}}' for i in range(MIDSTREAM_EVENTS)]
    assert len(events) == MIDSTREAM_EVENTS + 2
    error = orjson.loads(events[MIDSTREAM_EVENTS].removeprefix("data: "))["error"]
    assert (error["code"], error["type"]) == ("backend_stream_interrupted", "upstream_error")
    assert b"[DONE]" not in signed
    # The signature covers the error event too: without it the line does not verify.
    _, signature = split_stream(answer.body)
    without_error = signed[: signed.index(b'data: {"error"')]
    message = expected_message(answer.request_body, answer.nonce, 200, without_error)
    assert recover_address(message, signature) != NODE.lower()


# -- a backend cannot speak for the node --------------------------------------------------------------

STRANGER: Final = LocalSigner.from_hex(DEV_KEYS[4])
BACKEND_FXN_HEADERS: Final = {
    "X-Fxn-Node": STRANGER.address,
    "X-Fxn-Response-Signature": "0x" + STRANGER.sign("forged"),
    "X-Fxn-Auth": "2",
    "x-fxn-anything": "from the backend",
    "X-Backend-Own": "kept",
}
BACKEND_CHAT: Final = b'{"object":"chat.completion","choices":[]}'
BACKEND_EVENTS: Final = (b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n', b"data: [DONE]\n\n")


async def _backend_chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        return web.Response(body=BACKEND_CHAT, content_type="application/json", headers=BACKEND_FXN_HEADERS)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **BACKEND_FXN_HEADERS})
    await resp.prepare(request)
    for event in BACKEND_EVENTS:
        await resp.write(event)
    await resp.write_eof()
    return resp


@pytest.fixture
async def fxn_header_backend() -> AsyncIterator[str]:
    """TEST ONLY: a backend that sets the node's own headers (X-Fxn-*) on every answer."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _backend_chat)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def assert_no_backend_fxn_headers(headers: CIMultiDictProxy[str]) -> None:
    fxn = sorted(name.lower() for name in headers if name.lower().startswith("x-fxn-"))
    assert fxn in (["x-fxn-node"], ["x-fxn-node", "x-fxn-response-signature"]), fxn
    assert headers["X-Backend-Own"] == "kept"  # the backend's other headers are relayed


async def test_a_backends_fxn_headers_never_reach_the_client(
    fxn_header_backend: str, proxy_client: ProxyClient
) -> None:
    client = await proxy_client(backend_config(model_doc("dev", [fxn_header_backend])))
    plain = await send(client, "POST", "/v1/chat/completions", orjson.dumps(CHAT))
    assert (plain.status, plain.body) == (200, BACKEND_CHAT)
    assert_no_backend_fxn_headers(plain.headers)
    assert_plain_signed(plain)
    streamed = await send(client, "POST", "/v1/chat/completions", orjson.dumps({**CHAT, "stream": True}))
    assert_no_backend_fxn_headers(streamed.headers)
    assert assert_stream_signed(streamed) == b"".join(BACKEND_EVENTS)


# -- refusals before the signature verified carry no signature ------------------------------------------


BODY: Final = orjson.dumps(CHAT)
CHAT_PATH: Final = "/v1/chat/completions"


def _signed(key: str, *, body: bytes = BODY, path: str = CHAT_PATH, node: str = NODE) -> dict[str, str]:
    return FxnSigner(key).headers("POST", path, body, node)


# name: (headers, made when the test runs so the timestamp is fresh; path; body; status; code)
REFUSALS: Final[dict[str, tuple[Callable[[], dict[str, str]], str, bytes, int, str]]] = {
    "missing_header": (dict, CHAT_PATH, BODY, 401, "missing_header"),
    "malformed_header": (
        lambda: {**_signed(DEV_KEYS[0]), "X-Address": "0x1234"},
        CHAT_PATH,
        BODY,
        400,
        "malformed_header",
    ),
    "unknown_caller": (lambda: _signed(DEV_KEYS[4]), CHAT_PATH, BODY, 401, "unknown_caller"),
    "forbidden_route": (
        lambda: _signed(DEV_KEYS[0], path="/challenge", body=b"{}"),
        "/challenge",
        b"{}",
        403,
        "forbidden_route",
    ),
    "bad_signature": (lambda: _signed(DEV_KEYS[0], body=b"{}"), CHAT_PATH, BODY, 401, "bad_signature"),
    "bad_signature_for_another_node": (
        lambda: _signed(DEV_KEYS[0], node=STRANGER.address),
        CHAT_PATH,
        BODY,
        401,
        "bad_signature",
    ),
    "stale_timestamp": (
        lambda: FxnSigner(DEV_KEYS[0]).headers(
            "POST", CHAT_PATH, BODY, NODE, timestamp=int(time.time()) - 3600
        ),
        CHAT_PATH,
        BODY,
        401,
        "stale_timestamp",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
async def test_refusals_before_the_signature_verified_are_unsigned(
    client: SignedTestClient, name: str
) -> None:
    headers, path, body, status, code = REFUSALS[name]
    resp = await client.post(path, data=body, headers=headers(), sign=False)
    raw = await resp.read()
    assert (resp.status, orjson.loads(raw)["error"]["code"]) == (status, code)
    assert "X-Fxn-Node" not in resp.headers
    assert "X-Fxn-Response-Signature" not in resp.headers


async def test_body_too_large_is_unsigned(fake_backend: FakeBackend, proxy_client: ProxyClient) -> None:
    client = await proxy_client(
        backend_config(model_doc("dev", [fake_backend.url])), settings={"auth": {"maxBodyBytes": 64}}
    )
    body = orjson.dumps({**CHAT, "padding": "x" * 100})
    resp = await client.post("/v1/chat/completions", data=body)
    assert (resp.status, (await resp.json())["error"]["code"]) == (413, "body_too_large")
    assert "X-Fxn-Node" not in resp.headers and "X-Fxn-Response-Signature" not in resp.headers
