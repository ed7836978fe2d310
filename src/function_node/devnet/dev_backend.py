"""The DEVELOPMENT backend: a deterministic OpenAI-compatible server for demos, tests and benchmarks.

It is not a model. Its answers are derived from a hash of the prompt, so the same request always
gets the same answer, and it streams them token by token as server-sent events, exactly in the shape
the OpenAI API (and vLLM) uses: ``data: {chunk}`` events and a final ``data: [DONE]``.

Run it with ``python -m function_node.devnet.dev_backend --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import math
import struct
import time
from collections.abc import Sequence
from typing import Any, Final

import orjson
from aiohttp import web

from function_node.errors import error_body

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDING_DIM",
    "REQUEST_TOKEN_DELAY",
    "TOKEN_DELAY",
    "create_dev_backend_app",
    "embedding",
    "main",
    "reply_tokens",
]

DEFAULT_MODEL: Final = "dev-model"
EMBEDDING_DIM: Final = 64
DEFAULT_MAX_TOKENS: Final = 16
MAX_TOKENS_LIMIT: Final = 4096
TOKEN_DELAY: Final = web.AppKey("dev_token_delay", float)
# Set on a request (by a wrapping middleware, e.g. a test's fault injection) to override the app's delay.
REQUEST_TOKEN_DELAY: Final = web.RequestKey("dev_request_token_delay", float)
_VOCAB: Final = (
    "the", "node", "answers", "with", "a", "deterministic", "reply", "from", "its", "development",
    "backend", "tokens", "stream", "one", "by", "as", "events", "every", "prompt", "gets", "same",
    "words", "gateway", "scheduler", "provider", "network", "function", "signed", "request", "proof",
    "matrix", "model",
)  # fmt: skip


def reply_tokens(prompt: str, count: int) -> list[str]:
    """``count`` words chosen by SHA-256 of the prompt (and a block counter): same prompt, same words."""
    words: list[str] = []
    block = 0
    while len(words) < count:
        digest = hashlib.sha256(f"{block}:{prompt}".encode()).digest()
        words.extend(_VOCAB[b % len(_VOCAB)] for b in digest)
        block += 1
    return [w if i == 0 else " " + w for i, w in enumerate(words[:count])]


def embedding(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A unit vector of ``dim`` floats derived from SHA-256 of ``text``."""
    raw = b"".join(hashlib.sha256(f"{i}:{text}".encode()).digest() for i in range((dim * 2 + 31) // 32))
    values = [(v - 32768) / 32768 for v in struct.unpack(f">{dim}H", raw[: dim * 2])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _bad_request(message: str) -> web.Response:
    return web.Response(
        status=400, body=error_body(message, code="invalid_request"), content_type="application/json"
    )


def _json(payload: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _max_tokens(doc: dict[str, Any]) -> int:
    value = doc.get("max_completion_tokens", doc.get("max_tokens", DEFAULT_MAX_TOKENS))
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return DEFAULT_MAX_TOKENS
    return min(value, MAX_TOKENS_LIMIT)


async def _document(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _bad_request("the request body is not valid JSON")
    if not isinstance(doc, dict):
        return _bad_request("the request body must be a JSON object")
    return doc


def _asks_usage(doc: dict[str, Any]) -> bool:
    """``stream_options.include_usage``: a usage-only event (``"choices": []``) before ``[DONE]``."""
    options = doc.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _delay(request: web.Request) -> float:
    value = request.get(REQUEST_TOKEN_DELAY)
    return value if value is not None else request.app[TOKEN_DELAY]


async def _stream(request: web.Request, events: Sequence[bytes], delay: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for event in events:
        if delay > 0:
            await asyncio.sleep(delay)
        await response.write(b"data: " + event + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    doc = await _document(request)
    if isinstance(doc, web.Response):
        return doc
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages:
        return _bad_request('"messages" must be a non-empty list')
    prompt = "\n".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict))
    count = _max_tokens(doc)
    tokens = reply_tokens(prompt, count)
    model = str(doc.get("model", DEFAULT_MODEL))
    ident = "chatcmpl-" + hashlib.sha256(prompt.encode()).hexdigest()[:24]
    created = int(time.time())
    usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": count}
    usage["total_tokens"] = usage["prompt_tokens"] + count
    if doc.get("stream") is True:
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
        events = [
            orjson.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        ]
        events += [
            orjson.dumps({**base, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]})
            for t in tokens
        ]
        events.append(
            orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        )
        if _asks_usage(doc):
            events.append(orjson.dumps({**base, "choices": [], "usage": usage}))
        return await _stream(request, events, _delay(request))
    return _json(
        {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(tokens)},
                    "finish_reason": "length",
                }
            ],
            "usage": usage,
        }
    )


async def completions(request: web.Request) -> web.StreamResponse:
    doc = await _document(request)
    if isinstance(doc, web.Response):
        return doc
    prompt = doc.get("prompt")
    if isinstance(prompt, list):
        prompt = "\n".join(str(p) for p in prompt)
    if not isinstance(prompt, str):
        return _bad_request('"prompt" must be a string or a list of strings')
    count = _max_tokens(doc)
    tokens = reply_tokens(prompt, count)
    model = str(doc.get("model", DEFAULT_MODEL))
    ident = "cmpl-" + hashlib.sha256(prompt.encode()).hexdigest()[:24]
    base = {"id": ident, "object": "text_completion", "created": int(time.time()), "model": model}
    usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": count}
    usage["total_tokens"] = usage["prompt_tokens"] + count
    if doc.get("stream") is True:
        events = [
            orjson.dumps({**base, "choices": [{"index": 0, "text": t, "finish_reason": None}]})
            for t in tokens
        ]
        events.append(
            orjson.dumps({**base, "choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
        )
        if _asks_usage(doc):
            events.append(orjson.dumps({**base, "choices": [], "usage": usage}))
        return await _stream(request, events, _delay(request))
    choice = {"index": 0, "text": "".join(tokens), "finish_reason": "length", "logprobs": None}
    return _json({**base, "choices": [choice], "usage": usage})


async def embeddings(request: web.Request) -> web.StreamResponse:
    doc = await _document(request)
    if isinstance(doc, web.Response):
        return doc
    given = doc.get("input")
    inputs = given if isinstance(given, list) else [given]
    if not inputs or any(not isinstance(i, str | list) for i in inputs):
        return _bad_request('"input" must be a string or a list of strings')
    as_base64 = doc.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = embedding(item if isinstance(item, str) else orjson.dumps(item).decode())
        value: Any = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(len(str(i).split()) for i in inputs)
    return _json(
        {
            "object": "list",
            "data": data,
            "model": str(doc.get("model", DEFAULT_MODEL)),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def create_dev_backend_app(
    *, models: Sequence[str] = (DEFAULT_MODEL,), token_delay: float = 0.0
) -> web.Application:
    """The development backend's application; ``token_delay`` seconds pass before each streamed token."""
    app = web.Application()
    app[TOKEN_DELAY] = token_delay
    listing = orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fxn-dev-backend"} for m in models
            ],
        }
    )

    async def list_models(request: web.Request) -> web.Response:
        return web.Response(body=listing, content_type="application/json")

    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/health", list_models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The Function Node DEVELOPMENT backend (not a model).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", action="append", help="a model id to list (repeatable)")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds before each streamed token")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    app = create_dev_backend_app(models=tuple(args.model or (DEFAULT_MODEL,)), token_delay=args.token_delay)
    print(f"development backend (not a model) on http://{args.host}:{args.port}", flush=True)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(app, args.host, args.port))


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    main()
