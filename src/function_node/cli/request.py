"""``fxn request PATH [BODY]``: send one signed request to a node and print the answer.

The key is a gateway's or a scheduler's (``--key``), or the home's node key by default. The request
is signed v2 when the node's ``/health`` says its address (``--legacy`` forces the legacy form).
A JSON answer is printed indented and its ``X-Fxn-Response-Signature`` is checked; an SSE answer
(``"stream": true``) is printed line by line as it arrives. Exit 1 on an HTTP error or a signature
that does not verify, 2 on bad usage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from function_node.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail, state

if TYPE_CHECKING:
    import aiohttp

    from function_node.signing import LocalSigner

__all__ = ["register"]

_CONNECT_TIMEOUT: Final = 10.0
_ERROR_TEXT_LIMIT: Final = 500


def register(app: typer.Typer) -> None:
    app.command(
        "request",
        help="Send a signed request to a node and print the answer (streams SSE when the body says so).",
    )(request)


def request(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Path on the node, e.g. /v1/models or /v1/chat/completions.")],
    body: Annotated[
        str | None, typer.Argument(help="JSON body; '-' reads it from stdin. Default: no body (GET).")
    ] = None,
    *,
    node: Annotated[
        str | None,
        typer.Option("--node", help="Node URL (default: http://<node.listenAddress>:<node.listenPort>)."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Key file to sign with (keystore or plaintext; default: the node key)."),
    ] = None,
    method: Annotated[
        str | None, typer.Option("--method", "-X", help="HTTP method (default: POST with a body, else GET).")
    ] = None,
    legacy: Annotated[
        bool, typer.Option("--legacy", help="Sign the legacy message instead of the v2 (audience-bound) one.")
    ] = False,
) -> None:
    import asyncio

    import orjson

    cli = state(ctx)
    if not path.startswith("/"):
        fail(f"PATH must start with '/', e.g. /v1/models (got {path!r})", EXIT_USAGE)
    text = sys.stdin.read() if body == "-" else body
    stream = False
    if text is not None:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            fail(
                f'BODY is not valid JSON ({exc}); quote it for the shell, e.g. \'{{"model": "m"}}\'',
                EXIT_USAGE,
            )
        stream = isinstance(parsed, dict) and parsed.get("stream") is True
    settings = cli.settings_or_defaults()
    url = (node or cli.node_url(settings)).rstrip("/") + path
    if not url.startswith(("http://", "https://")):
        fail(f"--node must be an http:// or https:// URL (got {node!r})", EXIT_USAGE)
    signer = cli.caller_signer(settings, key)
    verb = (method or ("POST" if text is not None else "GET")).upper()
    payload = b"" if text is None else text.encode()
    code = asyncio.run(_send(signer, verb, url, payload, legacy=legacy, stream=stream))
    if code != EXIT_OK:
        raise typer.Exit(code)


async def _send(
    signer: LocalSigner, method: str, url: str, body: bytes, *, legacy: bool, stream: bool
) -> int:
    import aiohttp

    from function_node.client import FxnClientSession

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=_CONNECT_TIMEOUT)
    headers = {"Content-Type": "application/json"} if body else {}
    if stream:
        headers["Accept"] = "text/event-stream"
    async with aiohttp.ClientSession(timeout=timeout) as session:
        fxn = FxnClientSession(signer, legacy=legacy, session=session)
        try:
            expected_node = await fxn.node_address(url)
            response = await fxn.request(method, url, data=body, headers=headers)
        except aiohttp.ClientError as exc:
            typer.echo(f"error: cannot reach the node at {url}: {exc}", err=True)
            return EXIT_FAILURE
        async with response:
            return await _report(response, body, expected_node)


async def _report(response: aiohttp.ClientResponse, request_body: bytes, expected_node: str | None) -> int:
    if response.status >= 400:
        raw = await response.read()
        typer.echo(f"error: HTTP {response.status}: {_error_message(raw)}", err=True)
        return EXIT_FAILURE
    node = response.headers.get("X-Fxn-Node", "")
    if response.content_type == "text/event-stream":
        async for line in response.content:
            sys.stdout.write(line.decode("utf-8", "replace"))
            sys.stdout.flush()
        typer.echo(
            f"streamed answer from node {node or '(unnamed)'}; streams carry no response signature", err=True
        )
        return EXIT_OK
    raw = await response.read()
    typer.echo(_pretty(raw))
    return _check_signature(response, request_body, raw, expected_node)


def _check_signature(
    response: aiohttp.ClientResponse, request_body: bytes, raw: bytes, expected_node: str | None
) -> int:
    from function_node.client import verify_response_signature

    node = response.headers.get("X-Fxn-Node", "")
    signature = response.headers.get("X-Fxn-Response-Signature")
    if expected_node is not None and node.lower() != expected_node:
        typer.echo(f"error: the answer names node {node!r} but /health said {expected_node}", err=True)
        return EXIT_FAILURE
    if signature is None:
        typer.echo("warning: the answer carries no X-Fxn-Response-Signature", err=True)
        return EXIT_OK
    nonce = response.request_info.headers.get("X-Nonce", "")
    if not verify_response_signature(node, request_body, nonce, raw, signature):
        typer.echo(f"error: X-Fxn-Response-Signature does not verify for node {node!r}", err=True)
        return EXIT_FAILURE
    source = "its /health" if expected_node is not None else "X-Fxn-Node"
    typer.echo(f"response signature: valid (node {node}, address from {source})", err=True)
    return EXIT_OK


def _pretty(raw: bytes) -> str:
    import orjson

    try:
        return orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def _error_message(raw: bytes) -> str:
    """The OpenAI error body's message, else the start of the body."""
    import orjson

    try:
        payload: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:_ERROR_TEXT_LIMIT].decode("utf-8", "replace").strip() or "(empty body)"
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code = error.get("code")
        return f"{error['message']} ({code})" if code else str(error["message"])
    if isinstance(error, str):
        return error
    return raw[:_ERROR_TEXT_LIMIT].decode("utf-8", "replace")
