"""``fxn config check``: exactly the validation ``fxn start`` runs (config/preflight.py), printed."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from function_node.cli._common import EXIT_USAGE, state

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Check the configuration files.", no_args_is_help=True)
    group.command(
        "check",
        help="Validate config.yaml, backend.yaml and the key file exactly as `fxn start` does; "
        "print every problem with its line.",
    )(check)
    app.add_typer(group, name="config")


def check(
    ctx: typer.Context,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=256, help="Check as for `fxn start --workers N`."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as a JSON object.")] = False,
) -> None:
    from function_node.config.home import backends_path, config_path
    from function_node.config.preflight import check_start
    from function_node.errors import ConfigError

    cli = state(ctx)
    try:
        checked = check_start(cli.home, workers=workers)
    except ConfigError as exc:
        if as_json:
            problems = [
                {"file": p.file, "line": p.line, "message": p.message, "fix": p.fix} for p in exc.problems
            ]
            typer.echo(json.dumps({"ok": False, "home": str(cli.home), "problems": problems}, indent=2))
        else:
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            typer.echo(f"{len(exc.problems)} problem(s) found", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    models = checked.backends.models
    backends = sum(len(m.backends) for m in models)
    if as_json:
        report = {
            "ok": True,
            "home": str(cli.home),
            "files": [str(config_path(cli.home)), str(backends_path(cli.home)), str(checked.key_file)],
            "models": len(models),
            "backends": backends,
            "problems": [],
        }
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(
            f"config OK: {config_path(cli.home)}, {backends_path(cli.home)} ({len(models)} models, "
            f"{backends} backends), key {checked.key_file}"
        )
