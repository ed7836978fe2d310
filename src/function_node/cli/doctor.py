"""``fxn doctor``: check everything a node needs; exit 1 if anything failed."""

from __future__ import annotations

from typing import Annotated

import typer

from function_node.cli._common import state

__all__ = ["register"]

_MARKS = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def doctor(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per network probe.")] = 5.0,
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", help="Skip a check by name (repeatable), e.g. --skip matrix."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as a JSON object.")] = False,
) -> None:
    """Key file, config, nonce store, clock, RPC and registries, own registration, backends (and the
    models they serve), GPU, a local matrix proof."""
    import asyncio

    from rich.console import Console
    from rich.markup import escape

    from function_node.doctor import ALL_CHECKS, DoctorContext, exit_code, run_checks

    skipped = set(skip or [])
    unknown = skipped - {name for name, _ in ALL_CHECKS}
    if unknown:
        from function_node.cli._common import EXIT_USAGE, fail

        fail(
            f"--skip {sorted(unknown)[0]}: no such check; use one of {', '.join(n for n, _ in ALL_CHECKS)}",
            EXIT_USAGE,
        )
    home = state(ctx).home
    context = DoctorContext(home=home, timeout=timeout)
    checks = [(name, check) for name, check in ALL_CHECKS if name not in skipped]
    findings = asyncio.run(run_checks(context, checks))
    if as_json:
        import json

        report = {
            "home": str(home),
            "ok": exit_code(findings) == 0,
            "findings": [
                {"check": f.check, "status": f.status.value, "message": f.message, "hint": f.hint}
                for f in findings
            ],
        }
        typer.echo(json.dumps(report, indent=2))
        raise typer.Exit(exit_code(findings))
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"fxn doctor: {home}")
    for f in findings:
        console.print(f"{_MARKS[f.status.value]} {f.check:<12} {escape(f.message)}")
        if f.hint:
            console.print(f"     {'':<12} [dim]fix: {escape(f.hint)}[/]")
    failed = sum(1 for f in findings if f.status.value == "fail")
    warned = sum(1 for f in findings if f.status.value == "warn")
    console.print(f"{len(findings)} findings: {failed} failed, {warned} warnings")
    raise typer.Exit(exit_code(findings))


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
