"""The development backend: deterministic, OpenAI-shaped answers and SSE streams; bad input refused."""

from __future__ import annotations

import base64
import math
import struct

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from function_node.devnet.dev_backend import EMBEDDING_DIM, create_dev_backend_app, embedding, reply_tokens

Client = TestClient[web.Request, web.Application]


def test_reply_tokens_are_deterministic_and_sized() -> None:
    assert reply_tokens("abc", 50) == reply_tokens("abc", 50)
    assert reply_tokens("abc", 5) != reply_tokens("abd", 5)
    assert len(reply_tokens("abc", 100)) == 100  # beyond one digest's worth of words
    assert not reply_tokens("abc", 3)[0].startswith(" ")
    assert all(t.startswith(" ") for t in reply_tokens("abc", 3)[1:])


def test_embedding_is_a_unit_vector() -> None:
    vector = embedding("hello")
    assert len(vector) == EMBEDDING_DIM
    assert math.isclose(sum(v * v for v in vector), 1.0)
    assert vector == embedding("hello")
    assert vector != embedding("hello!")


async def test_chat_stream_events(aiohttp_client: object) -> None:
    client: Client = await aiohttp_client(create_dev_backend_app(models=("a", "b")))  # type: ignore[operator]
    body = {"model": "a", "messages": [{"role": "user", "content": "q"}], "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(body))
    assert resp.headers["Content-Type"] == "text/event-stream"
    events = [e.removeprefix("data: ") for e in (await resp.text()).split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(
        c["choices"][0]["delta"].get("content", "") for c in chunks[1:-1] if c["choices"]
    ) == "".join(reply_tokens("q", 3))
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    models = await (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["a", "b"]


async def test_embeddings_base64(aiohttp_client: object) -> None:
    client: Client = await aiohttp_client(create_dev_backend_app())  # type: ignore[operator]
    resp = await client.post("/v1/embeddings", data=orjson.dumps({"input": "x", "encoding_format": "base64"}))
    raw = base64.b64decode((await resp.json())["data"][0]["embedding"])
    decoded = struct.unpack(f"<{EMBEDDING_DIM}f", raw)
    assert all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(decoded, embedding("x"), strict=True)
    )


async def test_bad_requests_are_400(aiohttp_client: object) -> None:
    client: Client = await aiohttp_client(create_dev_backend_app())  # type: ignore[operator]
    for path, body in (
        ("/v1/chat/completions", b"{nope"),
        ("/v1/chat/completions", b'{"messages": []}'),
        ("/v1/completions", b'{"prompt": 5}'),
        ("/v1/embeddings", b'{"input": 5}'),
        ("/v1/embeddings", b"[]"),
    ):
        resp = await client.post(path, data=body)
        assert resp.status == 400, (path, body)
        assert (await resp.json())["error"]["code"] == "invalid_request"
