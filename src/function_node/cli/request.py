"""``fxn request PATH [BODY]``: send one signed request to a node and print the answer.

The key is a gateway's or a scheduler's (``--key``), or the home's node key by default. The node's
address is ``--node-address``, else this home's own node address when the request goes to this home's
node, else what its ``/health`` says (trusted on first use); the request is signed v2 for it
(``--legacy`` forces the legacy form) and the answer must be signed by it. A JSON answer is printed
indented; an SSE answer (``"stream": true``) is printed as it arrives, and its closing signature line
is checked at the end. Exit 1 on an HTTP error or a signature that does not verify, 2 on bad usage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from function_node.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, expected_node_address, fail, state

if TYPE_CHECKING:
    from function_node.client import NodeAnswer
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
    node_address: Annotated[
        str | None,
        typer.Option(
            "--node-address",
            help="The node's address (from its provider registry entry): signed for, and its answer must "
            "be signed by it. Default: this home's node key for this home's node, else /health on first use.",
        ),
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
    expected = expected_node_address(cli, settings, node, node_address)
    verb = (method or ("POST" if text is not None else "GET")).upper()
    payload = b"" if text is None else text.encode()
    code = asyncio.run(_send(signer, verb, url, payload, expected=expected, legacy=legacy, stream=stream))
    if code != EXIT_OK:
        raise typer.Exit(code)


async def _send(
    signer: LocalSigner,
    method: str,
    url: str,
    body: bytes,
    *,
    expected: str | None,
    legacy: bool,
    stream: bool,
) -> int:
    import aiohttp

    from function_node.client import FxnClientSession, NodeIdentityError

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=_CONNECT_TIMEOUT)
    headers = {"Content-Type": "application/json"} if body else {}
    if stream:
        headers["Accept"] = "text/event-stream"
    async with aiohttp.ClientSession(timeout=timeout) as session:
        fxn = FxnClientSession(signer, expected, legacy=legacy, session=session)
        try:
            node = await fxn.node_address(url)
            if expected is None and node is not None:
                typer.echo(
                    f"trusting node {node} (from its /health) on first use; --node-address pins it", err=True
                )
            async with await fxn.request(method, url, data=body, headers=headers) as answer:
                return await _report(answer, signer.address)
        except NodeIdentityError as exc:
            typer.echo(f"error: {exc}", err=True)
            return EXIT_FAILURE
        except aiohttp.ClientError as exc:
            typer.echo(f"error: cannot reach the node at {url}: {exc}", err=True)
            return EXIT_FAILURE


async def _report(answer: NodeAnswer, caller: str) -> int:
    """Print the answer (streams as they arrive); its signature is checked as it is read."""
    if answer.content_type == "text/event-stream" and answer.status < 400:
        async for chunk in answer.iter_chunks():
            sys.stdout.write(chunk.decode("utf-8", "replace"))
            sys.stdout.flush()
        _say_verified(answer)
        return EXIT_OK
    raw = await answer.read()
    if answer.status >= 400:
        typer.echo(f"error: HTTP {answer.status}: {_error_message(raw)}", err=True)
        if answer.status == 401 and b'"unknown_caller"' in raw:
            typer.echo(
                f"hint: the node does not know {caller} as a gateway or scheduler. Sign with a registered "
                "gateway's or scheduler's key (--key FILE); the node's own key is neither.",
                err=True,
            )
        return EXIT_FAILURE
    typer.echo(_pretty(raw))
    _say_verified(answer)
    return EXIT_OK


def _say_verified(answer: NodeAnswer) -> None:
    if answer.verified:
        typer.echo(f"response signature: valid (node {answer.headers.get('X-Fxn-Node', '')})", err=True)
    else:
        typer.echo("warning: the node's address is unknown, so its answer was not checked", err=True)


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
