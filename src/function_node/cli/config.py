"""``fxn init`` (create the home directory) and ``fxn config check`` (validate both YAML files)."""

from __future__ import annotations

from typing import Annotated

import typer

from function_node.cli._common import EXIT_USAGE, state

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("init", help="Create the home directory: commented config.yaml, backend.yaml and a new key.")(
        init
    )
    group = typer.Typer(help="Check the configuration files.", no_args_is_help=True)
    group.command("check", help="Validate config.yaml and backend.yaml; print every problem with its line.")(
        check
    )
    app.add_typer(group, name="config")


def init(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing files, keeping timestamped backups.")
    ] = False,
    plaintext: Annotated[
        bool, typer.Option("--plaintext", help="Write the key in the legacy unencrypted format.")
    ] = False,
) -> None:
    from function_node.cli.accounts import new_key_password
    from function_node.config.home import init_home, key_path

    cli = state(ctx)
    settings = cli.settings_or_defaults()
    key = key_path(cli.home, settings)
    password: str | None = None
    if not plaintext and (force or not key.exists()):
        password = new_key_password(cli, settings)
    written = init_home(cli.home, password=password, force=force)
    for path in written:
        typer.echo(f"created {path}")
    kept = [p for p in (cli.home / "config.yaml", cli.home / "backend.yaml", key) if p not in written]
    for path in kept:
        typer.echo(f"kept {path} (already there; --force replaces it and keeps a backup)")
    if key in written:
        from function_node.keys import key_file_address

        typer.echo(f"node address: {key_file_address(key)}")
    typer.echo("next: edit backend.yaml, then run `fxn config check`")


def check(ctx: typer.Context) -> None:
    from function_node.config.home import backends_path, config_path
    from function_node.config.loader import load_backends, load_settings
    from function_node.errors import ConfigError, ConfigProblem

    cli = state(ctx)
    problems: list[ConfigProblem] = []
    summary: list[str] = []
    try:
        load_settings(cli.home)
        summary.append(str(config_path(cli.home)))
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        backends = load_backends(cli.home)
        count = sum(len(m.backends) for m in backends.models)
        summary.append(f"{backends_path(cli.home)} ({len(backends.models)} models, {count} backends)")
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        for problem in problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{len(problems)} problem(s) found", err=True)
        raise typer.Exit(EXIT_USAGE)
    typer.echo(f"config OK: {', '.join(summary)}")
