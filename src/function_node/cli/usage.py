"""``fxn usage``: the usage ledger (SPEC §11), totals per caller and model, as a table, JSON or CSV."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from function_node.cli._common import EXIT_USAGE, fail, state

if TYPE_CHECKING:
    from function_node.usage.ledger import LedgerRow

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command(
        "usage",
        help="Requests, errors and tokens per caller and model, from the node's usage ledger.",
    )(usage)


def usage(
    ctx: typer.Context,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help='From when: a duration back from now ("24h", "7d"), a UTC date or time ("2026-11-01", '
            '"2026-11-01T12:00Z"), or "all". The hour that holds it counts whole.',
        ),
    ] = "24h",
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Group by caller, model or hour (repeat, or comma-separate, for finer groups); "
            "default: caller and model.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of objects.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV with a header line.")] = False,
) -> None:
    import json
    import time

    from function_node.usage.report import parse_groups, parse_since, read_usage, rows_csv

    if as_json and as_csv:
        fail("--json and --csv cannot be combined; choose one", EXIT_USAGE)
    try:
        start = parse_since(since, time.time())
        groups = parse_groups(by or [])
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    cli = state(ctx)
    rows = read_usage(cli.home, start, groups)
    if as_json:
        typer.echo(json.dumps([row.as_dict() for row in rows], indent=2))
    elif as_csv:
        typer.echo(rows_csv(rows, groups), nl=False)
    else:
        _print_table(rows, groups, since)


def _print_table(rows: list[LedgerRow], groups: tuple[str, ...], since: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(f"no usage recorded (since {since})")
        return
    table = Table(title=f"usage since {since}")
    columns = (["hour"] if "hour" in groups else []) + ["caller", "model"]
    counts = ["requests", "errors", "prompt", "completion", "cancelled", "upstream s"]
    for name in columns:
        table.add_column(name, no_wrap=True)  # an address cut in two cannot be copied
    for name in counts:
        table.add_column(name, justify="right")
    for row in rows:
        record = row.as_dict()
        errors = f"{row.errors} ({row.errors_4xx}/{row.errors_5xx})" if row.errors else "0"
        values = [str(record[c]) for c in columns] + [
            str(row.requests),
            errors,
            str(row.prompt_tokens),
            str(row.completion_tokens),
            str(row.cancelled),
            f"{row.upstream_seconds:.1f}",
        ]
        table.add_row(*values)
    console.print(table)
    console.print("errors: total (4xx/5xx); cancelled: cut by the client")
