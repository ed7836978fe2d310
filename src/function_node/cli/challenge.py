"""``fxn challenge TYPE [PAYLOAD]``: challenge a node as a scheduler and verify what it answers.

The node's address is ``--node-address`` (its provider registry entry), else this home's own node
address for this home's node, else what its ``/health`` says (trusted on first use). Every answer must
be signed by that address. MATRIX_MULTIPLICATION with ``{"size": n}`` runs both rounds: the seed is the
scheduler's (from the payload or drawn here), ``--rows`` rows are drawn after the root arrives, and the
proofs are checked by recomputing those rows with that address's keys (the proof is bound to the
prover). IDENTITY's own signature is checked against that address too. Other types print the answer.
Exit 0 when verified, 1 when the node failed, refused or is not the expected one, 2 on bad usage.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from function_node.cli._common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    expected_node_address,
    fail,
    orjson_text,
    state,
)

if TYPE_CHECKING:
    from function_node.challenges.matmul.driver import ProofReport
    from function_node.protocol import NodeReply

__all__ = ["register"]

_DEFAULT_PAYLOADS: Final[dict[str, Any]] = {"IDENTITY": {}, "MATRIX_MULTIPLICATION": {"size": 1024}}
_TIMEOUT_S: Final = 600.0


def register(app: typer.Typer) -> None:
    app.command("challenge", help="Send a signed challenge as a scheduler and verify the answer.")(challenge)


def challenge(
    ctx: typer.Context,
    type_: Annotated[
        str, typer.Argument(metavar="TYPE", help="IDENTITY, MATRIX_MULTIPLICATION, ENDPOINT_REACHABLE, ...")
    ],
    payload: Annotated[
        str | None, typer.Argument(help='JSON payload, e.g. \'{"size": 2048}\'; "-" reads stdin.')
    ] = None,
    *,
    node: Annotated[str | None, typer.Option("--node", help="Node URL (default: this home's node).")] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="Scheduler key file (default: the home's node key).")
    ] = None,
    node_address: Annotated[
        str | None,
        typer.Option(
            "--node-address",
            help="The node's address (from its provider registry entry); every answer must be signed by "
            "it. Default: this home's node key for this home's node, else /health on first use.",
        ),
    ] = None,
    rows: Annotated[int, typer.Option("--rows", min=1, max=64, help="Rows to check in a matrix proof.")] = 32,
) -> None:
    import asyncio

    import orjson

    cli = state(ctx)
    kind = type_.strip().upper()
    text = sys.stdin.read() if payload == "-" else payload
    try:
        body_payload = orjson.loads(text) if text is not None else _DEFAULT_PAYLOADS.get(kind, {})
    except orjson.JSONDecodeError as exc:
        fail(
            f"PAYLOAD is not valid JSON ({exc}); quote it for the shell, e.g. '{{\"size\": 1024}}'",
            EXIT_USAGE,
        )
    settings = cli.settings_or_defaults()
    base = (node or cli.node_url(settings)).rstrip("/")
    if not base.startswith(("http://", "https://")):
        fail(f"--node must be an http:// or https:// URL (got {node!r})", EXIT_USAGE)
    if kind == "MATRIX_MULTIPLICATION" and isinstance(body_payload, dict) and "size" in body_payload:
        _check_matrix_payload(body_payload)
    signer = cli.caller_signer(settings, key)
    expected = expected_node_address(cli, settings, node, node_address)
    code = asyncio.run(_run(signer, base, kind, body_payload, rows=rows, expected=expected))
    if code != EXIT_OK:
        raise typer.Exit(code)


async def _run(signer: Any, base: str, kind: str, payload: Any, *, rows: int, expected: str | None) -> int:
    import aiohttp

    from function_node.client import FxnClientSession, NodeIdentityError

    url = base + "/challenge"
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        fxn = FxnClientSession(signer, expected, strict=True, session=session)

        async def send(body: dict[str, Any]) -> NodeReply:
            return await fxn.exchange("POST", url, body)

        try:
            prover = await fxn.node_address(url)
            if prover is None:
                typer.echo(f"error: {base}/health names no address, so no answer can be checked", err=True)
                return EXIT_FAILURE
            if expected is None:
                typer.echo(
                    f"trusting node {prover} (from its /health) on first use; --node-address pins it",
                    err=True,
                )
            if kind == "MATRIX_MULTIPLICATION" and isinstance(payload, dict) and "size" in payload:
                return await _matrix(send, payload, rows, prover)
            if kind == "IDENTITY" and isinstance(payload, dict) and "nonce" not in payload:
                payload = {**payload, "nonce": secrets.token_hex(16)}  # proves the answer is fresh
            reply = await send({"type": kind, "payload": payload})
            if reply.signer_problem is not None:
                typer.echo(f"FAILED (wrong_signer): {reply.signer_problem}", err=True)
                return EXIT_FAILURE
            if reply.status != 200:
                return _refused(reply)
            typer.echo(orjson_text(reply.body))
            if kind == "IDENTITY":
                return _check_identity(prover, reply.body, payload)
            if kind == "MATRIX_MULTIPLICATION":
                return _check_explicit(payload, reply.body)
            return EXIT_OK
        except NodeIdentityError as exc:
            typer.echo(f"error: {exc}", err=True)
            return EXIT_FAILURE
        except aiohttp.ClientError as exc:
            typer.echo(f"error: cannot reach the node at {url}: {exc}", err=True)
            return EXIT_FAILURE


def _refused(reply: NodeReply) -> int:
    answer = reply.body
    message = answer.get("error", {}).get("message") if isinstance(answer, dict) else str(answer)[:500]
    typer.echo(f"error: HTTP {reply.status}: {message}", err=True)
    return EXIT_FAILURE


def _check_matrix_payload(payload: dict[str, Any]) -> None:
    """Refuse (exit 2) a verifiable-form payload that is not one, before anything is sent."""
    from function_node.challenges.matmul.generate import parse_seed

    size = payload.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        fail("PAYLOAD size must be a positive integer", EXIT_USAGE)
    if "seed" in payload:
        try:
            parse_seed(payload["seed"])
        except ValueError as exc:
            fail(f"PAYLOAD {exc}", EXIT_USAGE)


async def _matrix(send: Any, payload: dict[str, Any], rows: int, prover: str) -> int:
    from function_node.challenges.matmul.driver import run_matrix_proof

    report = await run_matrix_proof(
        send,
        payload["size"],
        prover=prover,
        rows=rows,
        backend=str(payload.get("backend", "auto")),
        seed=payload.get("seed"),
    )
    _print_report(report)
    return EXIT_OK if report.ok else EXIT_FAILURE


def _print_report(report: ProofReport) -> None:
    from rich.console import Console
    from rich.table import Table

    answer = report.commitment
    table = Table(title=f"MATRIX_MULTIPLICATION n={report.size}", show_header=False)
    table.add_row(
        "verdict", "[green]VERIFIED[/green]" if report.ok else f"[red]FAILED[/red] ({report.reason})"
    )
    table.add_row("prover (expected)", report.prover)
    table.add_row("seed", report.seed)
    table.add_row("merkle root", str(answer.get("merkleRoot", "-")))
    table.add_row("rows checked", ", ".join(map(str, report.rows)) or "-")
    table.add_row(
        "backend / device", f"{answer.get('backend', '-')} / {answer.get('deviceInfo', {}).get('name', '-')}"
    )
    table.add_row("node GEMM ms", _ms(answer.get("computationTimeMs")))
    table.add_row("node total ms", _ms(answer.get("totalTimeMs")))
    table.add_row("round trip ms (measured here)", f"{report.round_trip_s * 1000:.1f}")
    table.add_row("implied throughput", f"{report.implied_tops * 1000:.2f} GOPS (≥ the node's real speed)")
    table.add_row("verify ms (here)", f"{report.verify_s * 1000:.1f}")
    console = Console()
    console.print(table)
    for failure in report.failures:
        console.print(f"[red]✗[/red] {failure}", markup=True, highlight=False)


def _ms(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def _check_identity(prover: str, answer: Any, payload: Any) -> int:
    from function_node.scheduler.checks import verify_identity

    nonce = str(payload.get("nonce", "")) if isinstance(payload, dict) else ""
    result = verify_identity(answer, nonce=nonce, expected_address=prover)
    if not result.ok:
        typer.echo(f"FAILED ({result.reason}): {result.detail}", err=True)
        return EXIT_FAILURE
    typer.echo(f"VERIFIED: IDENTITY signed by {answer['address']}")
    return EXIT_OK


def _check_explicit(payload: Any, answer: Any) -> int:
    import numpy as np

    a = payload.get("A", payload.get("matrixA")) if isinstance(payload, dict) else None
    b = payload.get("B", payload.get("matrixB")) if isinstance(payload, dict) else None
    if a is None or b is None or not isinstance(answer, dict) or "C" not in answer:
        return EXIT_OK
    if np.array_equal(np.array(a, dtype=np.float64) @ np.array(b, dtype=np.float64), np.array(answer["C"])):
        typer.echo("VERIFIED: C = A·B")
        return EXIT_OK
    typer.echo("FAILED: C differs from A·B computed here", err=True)
    return EXIT_FAILURE
