"""``fxn challenge TYPE [PAYLOAD]``: challenge a node as a scheduler and verify what it answers.

MATRIX_MULTIPLICATION with ``{"size": n}`` runs both rounds: the seed is the scheduler's (from the
payload or drawn here), ``--rows`` rows are drawn after the root arrives, and the proofs are checked
by recomputing those rows. IDENTITY's signature is checked against the address it claims (and the
node's /health address). Other types print the answer. Exit 0 when verified, 1 when the node failed
or refused, 2 on bad usage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from function_node.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail, state

if TYPE_CHECKING:
    from function_node.challenges.matmul.scheduler import ProofReport
    from function_node.client import FxnClientSession

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
    rows: Annotated[int, typer.Option("--rows", min=1, max=64, help="Rows to check in a matrix proof.")] = 16,
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
    signer = cli.caller_signer(settings, key)
    code = asyncio.run(_run(signer, base, kind, body_payload, rows))
    if code != EXIT_OK:
        raise typer.Exit(code)


async def _run(signer: Any, base: str, kind: str, payload: Any, rows: int) -> int:
    import aiohttp
    import orjson

    from function_node.client import FxnClientSession

    url = base + "/challenge"
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        fxn = FxnClientSession(signer, session=session)

        async def send(body: dict[str, Any]) -> tuple[int, Any]:
            async with await fxn.request("POST", url, json=body) as resp:
                raw = await resp.read()
            try:
                return resp.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return resp.status, raw.decode(errors="replace")

        try:
            if kind == "MATRIX_MULTIPLICATION" and isinstance(payload, dict) and "size" in payload:
                return await _matrix(send, payload, rows)
            status, answer = await send({"type": kind, "payload": payload})
            if status != 200:
                return _refused(status, answer)
            typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
            if kind == "IDENTITY":
                return await _check_identity(fxn, url, answer)
            if kind == "MATRIX_MULTIPLICATION":
                return _check_explicit(payload, answer)
            return EXIT_OK
        except aiohttp.ClientError as exc:
            typer.echo(f"error: cannot reach the node at {url}: {exc}", err=True)
            return EXIT_FAILURE


def _refused(status: int, answer: Any) -> int:
    message = answer.get("error", {}).get("message") if isinstance(answer, dict) else str(answer)[:500]
    typer.echo(f"error: HTTP {status}: {message}", err=True)
    return EXIT_FAILURE


async def _matrix(send: Any, payload: dict[str, Any], rows: int) -> int:
    from function_node.challenges.matmul.scheduler import run_matrix_proof

    size = payload.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        fail("PAYLOAD size must be a positive integer", EXIT_USAGE)
    seed = payload.get("seed")
    try:
        report = await run_matrix_proof(
            send, size, rows=rows, backend=str(payload.get("backend", "auto")), seed=seed
        )
    except ValueError as exc:
        fail(f"PAYLOAD {exc}", EXIT_USAGE)
    _print_report(report)
    return EXIT_OK if report.ok else EXIT_FAILURE


def _print_report(report: ProofReport) -> None:
    from rich.console import Console
    from rich.table import Table

    answer = report.commitment
    table = Table(title=f"MATRIX_MULTIPLICATION n={report.size}", show_header=False)
    table.add_row("verdict", "[green]VERIFIED[/green]" if report.ok else "[red]FAILED[/red]")
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


async def _check_identity(fxn: FxnClientSession, url: str, answer: Any) -> int:
    from function_node.challenges.identity import identity_message
    from function_node.errors import SigningError
    from function_node.signing import normalize_address, recover_address

    try:
        message = identity_message(answer["address"], answer["ipAddress"], answer["nonce"])
        signer = recover_address(message, answer["signature"])
        claimed = normalize_address(answer["address"])
    except (KeyError, TypeError, SigningError) as exc:
        typer.echo(f"FAILED: the IDENTITY answer is malformed ({exc})", err=True)
        return EXIT_FAILURE
    if signer != claimed:
        typer.echo(f"FAILED: the signature recovers to {signer}, not {claimed}", err=True)
        return EXIT_FAILURE
    expected = await fxn.node_address(url)
    if expected is not None and normalize_address(expected) != claimed:
        typer.echo(f"FAILED: /health says the node is {expected}, IDENTITY says {claimed}", err=True)
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
