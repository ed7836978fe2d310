"""``fxn request``: against the echo app (real auth middleware) served from a background thread.

The command runs its own event loop (asyncio.run), so the node it talks to runs on another
thread's loop here; the test itself is synchronous.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from function_node.devnet.process import free_port
from function_node.keys import write_keystore, write_plaintext
from function_node.metrics import NodeMetrics
from function_node.signing import LocalSigner
from tests.fixtures.auth import build_auth_app, make_context
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.foundation import TEST_PASSWORD, FxnCli

GATEWAY = LocalSigner.from_hex(DEV_KEYS[0])
NODE = LocalSigner.from_hex(DEV_KEYS[2])
STRANGER = LocalSigner.from_hex(DEV_KEYS[4])


@dataclass
class ThreadedNode:
    url: str
    port: int


def serve_in_thread(app: web.Application) -> Iterator[ThreadedNode]:
    """Serve ``app`` on another thread's loop; its request log lines are captured, not printed into the
    command's output."""
    with capture_logs():
        yield from _serve_in_thread(app)


def _serve_in_thread(app: web.Application) -> Iterator[ThreadedNode]:
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield ThreadedNode(url=f"http://127.0.0.1:{port}", port=port)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def echo_app(*middlewares: Middleware) -> web.Application:
    ctx = make_context(NODE, NodeMetrics(CollectorRegistry()), gateways=[GATEWAY.address], schedulers=[])
    app = build_auth_app(ctx)
    for middleware in middlewares:
        app.middlewares.insert(0, middleware)
    return app


@pytest.fixture
def node() -> Iterator[ThreadedNode]:
    yield from serve_in_thread(echo_app())


@pytest.fixture
def gateway_key(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.json"
    write_plaintext(path, GATEWAY)
    return path


def test_post_prints_pretty_json_and_checks_the_signature(
    fxn_cli: FxnCli, node: ThreadedNode, gateway_key: Path
) -> None:
    result = fxn_cli("request", "/v1/echo", '{"a": 1}', "--node", node.url, "--key", str(gateway_key))
    assert result.code == 0, result.stderr
    payload = orjson.loads(result.stdout)
    assert (payload["scheme"], payload["address"], payload["body"]) == (
        "v2",
        GATEWAY.address.lower(),
        '{"a": 1}',
    )
    assert '\n  "scheme": "v2"' in result.stdout  # indented
    assert result.stderr == (
        f"trusting node {NODE.address.lower()} (from its /health) on first use; --node-address pins it\n"
        f"response signature: valid (node {NODE.address})\n"
    )


def test_node_address_pins_the_node(fxn_cli: FxnCli, node: ThreadedNode, gateway_key: Path) -> None:
    args = ["request", "/v1/echo", "{}", "--node", node.url, "--key", str(gateway_key)]
    result = fxn_cli(*args, "--node-address", NODE.address)
    assert (result.code, result.stderr) == (0, f"response signature: valid (node {NODE.address})\n")
    wrong = fxn_cli(*args, "--node-address", STRANGER.address)
    assert wrong.code == 1
    assert wrong.stderr == (
        f"error: {node.url}/health says the node is {NODE.address.lower()}, but {STRANGER.address.lower()} "
        "is expected there; nothing was sent (is the URL right, or is this node relaying another one?)\n"
    )
    bad = fxn_cli(*args, "--node-address", "0x12")
    assert (bad.code, bad.stderr) == (2, "error: --node-address '0x12' is not 0x followed by 40 hex digits\n")


def test_get_without_body_and_legacy(fxn_cli: FxnCli, node: ThreadedNode, gateway_key: Path) -> None:
    result = fxn_cli("request", "/v1/echo", "--node", node.url, "--key", str(gateway_key), "--legacy")
    assert result.code == 0, result.stderr
    payload = orjson.loads(result.stdout)
    assert (payload["scheme"], payload["body"]) == ("legacy", "")
    assert "response signature: valid" in result.stderr


def test_default_node_and_key_come_from_the_home(fxn_cli: FxnCli, fxn_env: Path, node: ThreadedNode) -> None:
    # The home is this node's: its key is the node's, which is no gateway, so the node refuses it,
    # and the command says which key to use instead.
    (fxn_env / "config.yaml").write_text(f"node:\n  listenAddress: 0.0.0.0\n  listenPort: {node.port}\n")
    write_plaintext(fxn_env / "nodekey.json", NODE)
    result = fxn_cli("request", "/v1/echo", "-", stdin='{"from": "stdin"}')
    assert result.code == 1
    assert result.stderr == (
        f"error: HTTP 401: {NODE.address.lower()} is not a registered gateway or scheduler (unknown_caller)\n"
        f"hint: the node does not know {NODE.address} as a gateway or scheduler. Sign with a registered "
        "gateway's or scheduler's key (--key FILE); the node's own key is neither.\n"
    )


def test_stream_prints_sse_lines(fxn_cli: FxnCli, node: ThreadedNode, gateway_key: Path) -> None:
    body = '{"model": "m", "stream": true, "messages": [{"role": "user", "content": "a b"}]}'
    result = fxn_cli("request", "/v1/chat/completions", body, "--node", node.url, "--key", str(gateway_key))
    assert result.code == 0, result.stderr
    events = [line for line in result.stdout.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert len(events) == 4  # "echo:", "a", "b", [DONE]
    assert f"response signature: valid (node {NODE.address})" in result.stderr
    assert result.stdout.rstrip().splitlines()[-1].startswith(": fxn-signature 0x")


def test_http_error_exits_1_with_the_message(fxn_cli: FxnCli, node: ThreadedNode, tmp_path: Path) -> None:
    key = tmp_path / "stranger.json"
    write_plaintext(key, STRANGER)
    result = fxn_cli("request", "/v1/echo", "{}", "--node", node.url, "--key", str(key))
    assert result.code == 1
    assert result.stderr.splitlines()[1:] == [
        f"error: HTTP 401: {STRANGER.address.lower()} is not a registered gateway or scheduler "
        "(unknown_caller)",
        f"hint: the node does not know {STRANGER.address} as a gateway or scheduler. Sign with a registered "
        "gateway's or scheduler's key (--key FILE); the node's own key is neither.",
    ]


def test_bad_json_body_is_usage_error(fxn_cli: FxnCli, node: ThreadedNode, gateway_key: Path) -> None:
    result = fxn_cli("request", "/v1/echo", "{not json", "--node", node.url, "--key", str(gateway_key))
    assert result.code == 2
    assert result.stderr.startswith("error: BODY is not valid JSON (")


def test_relative_path_is_usage_error(fxn_cli: FxnCli, gateway_key: Path) -> None:
    result = fxn_cli("request", "v1/models", "--key", str(gateway_key))
    assert (result.code, result.stderr) == (
        2,
        "error: PATH must start with '/', e.g. /v1/models (got 'v1/models')\n",
    )


def test_missing_key_file_is_usage_error(fxn_cli: FxnCli, node: ThreadedNode, tmp_path: Path) -> None:
    result = fxn_cli("request", "/v1/echo", "--node", node.url, "--key", str(tmp_path / "none.json"))
    assert result.code == 2
    assert "none.json" in result.stderr


def test_unreachable_node_exits_1(fxn_cli: FxnCli, gateway_key: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = fxn_cli("request", "/v1/echo", "--node", url, "--key", str(gateway_key))
    assert result.code == 1
    assert result.stderr.startswith(f"error: cannot reach the node at {url}/v1/echo: ")


def test_tampered_answer_fails_the_signature_check(fxn_cli: FxnCli, gateway_key: Path) -> None:
    @web.middleware
    async def tamper(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Changes the answer after the node signed it, as a man in the middle would."""
        response = await handler(request)
        if request.path.startswith("/v1/") and isinstance(response, web.Response) and response.body:
            response.body = b'{"forged": true}'
        return response

    for served in serve_in_thread(echo_app(tamper)):
        result = fxn_cli("request", "/v1/echo", "{}", "--node", served.url, "--key", str(gateway_key))
        assert result.code == 1
        assert result.stdout == ""  # an answer that is not the node's is not printed
        assert result.stderr.splitlines()[-1] == (
            f"error: X-Fxn-Response-Signature of the answer (HTTP 200) is not {NODE.address.lower()}'s"
        )


def test_keystore_key_with_password_from_the_environment(
    fxn_cli: FxnCli, node: ThreadedNode, tmp_path: Path
) -> None:
    key = tmp_path / "gateway-keystore.json"
    write_keystore(key, GATEWAY, TEST_PASSWORD, scrypt_n=4096)
    result = fxn_cli(
        "request", "/v1/echo", "--node", node.url, "--key", str(key), env={"FXN_KEY_PASSWORD": TEST_PASSWORD}
    )
    assert result.code == 0, result.stderr
    assert orjson.loads(result.stdout)["address"] == GATEWAY.address.lower()
    wrong = fxn_cli(
        "request", "/v1/echo", "--node", node.url, "--key", str(key), env={"FXN_KEY_PASSWORD": "no"}
    )
    assert (wrong.code, wrong.stderr) == (2, f"error: wrong password for key file {key}\n")
