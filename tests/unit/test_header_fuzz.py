"""Property: whatever header bytes a caller sends, the real node (``create_app``, every middleware) never
answers 500, and every error it answers itself has the OpenAI shape (issue 10).

The node runs on its own thread's event loop; hypothesis drives raw HTTP/1.1 requests at it over a socket,
so header values can hold any byte (an HTTP client library would refuse to send most of them).
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import structlog
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from function_node.client import FxnSigner
from function_node.config.settings import Settings
from function_node.devnet.process import free_port
from function_node.logs import configure_logging
from function_node.metrics import NodeMetrics
from function_node.node.app import create_app
from function_node.signing import LocalSigner
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import backend_config, model_doc

GATEWAY = LocalSigner.from_hex(DEV_KEYS[0])
NODE = LocalSigner.from_hex(DEV_KEYS[2])
BODY = b'{"model":"dev","messages":[{"role":"user","content":"hi"}]}'
AUTH_HEADERS = ("X-Address", "X-Timestamp", "X-Nonce", "X-Signature", "X-Fxn-Auth")


@pytest.fixture(scope="module")
def node_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The whole node, with one model whose backend is down (a fuzzed request that passes auth gets 502)."""
    document = {"registry": {"static": {"gateways": [GATEWAY.address], "schedulers": [GATEWAY.address]}}}
    dead = f"http://127.0.0.1:{free_port()}"
    config = backend_config(model_doc("dev", [dead]))
    home = Path(tmp_path_factory.mktemp("fuzz-home"))
    app = create_app(
        Settings.model_validate(document), config, NODE, home, metrics=NodeMetrics(CollectorRegistry())
    )
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handler_cancellation=True)
    # The production JSON renderer, into a buffer: a header byte that cannot be encoded must not break the
    # log line (it used to turn a refusal into a 500).
    log_stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("info", "json", stream=log_stream)
    try:
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield port
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
    for line in log_stream.getvalue().splitlines():
        orjson.loads(line)  # every line is one JSON document


def exchange(port: int, request: bytes) -> tuple[int, bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


header_value = st.one_of(
    st.binary(max_size=160).filter(lambda b: b"\r" not in b and b"\n" not in b),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=160).map(str.encode),
    st.sampled_from([b"", b" ", b"0x", b"2", b"\xff" * 40, b"0x" + b"0" * 40, b"9" * 5000]),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/v1/chat/completions", "/challenge", "/v1/models", "/health", "/v1/nothing"]),
    method=st.sampled_from(["POST", "GET"]),
    overrides=st.dictionaries(st.sampled_from(AUTH_HEADERS), header_value, max_size=5),
    drop=st.sets(st.sampled_from(AUTH_HEADERS), max_size=4),
)
def test_no_header_value_makes_the_node_answer_500(
    node_port: int, path: str, method: str, overrides: dict[str, bytes], drop: set[str]
) -> None:
    signed = FxnSigner(GATEWAY).headers(method, path, BODY, NODE.address)
    headers: dict[str, bytes] = {k: v.encode() for k, v in signed.items() if k not in drop}
    headers.update(overrides)
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: node", b"Connection: close"]
    lines += [b"Content-Type: application/json", f"Content-Length: {len(BODY)}".encode()]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    status, head, body = exchange(node_port, b"\r\n".join(lines) + b"\r\n\r\n" + BODY)
    assert status != 500, body
    if b"application/json" in head.lower() and status >= 400:
        error = orjson.loads(body)["error"]
        assert set(error) == {"message", "type", "code"}
        assert isinstance(error["message"], str) and isinstance(error["code"], str)
