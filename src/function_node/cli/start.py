"""``fxn start``: run the node (on an empty home, create it first and say so)."""

from __future__ import annotations

from typing import Annotated

import typer

from function_node.cli._common import EXIT_USAGE, CliState, fail, state

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("start", help="Run the node: serve backend.yaml's models to the network.")(start)


def start(
    ctx: typer.Context,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, max=256, help="Worker processes sharing the port (needs Redis nonces)."
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Listen port (overrides node.listenPort).")
    ] = None,
) -> None:
    from function_node.logs import configure_logging
    from function_node.node.server import run_node

    cli = state(ctx)
    _create_home_if_empty(cli)
    settings = cli.settings()
    node = settings.node.model_copy(
        update={
            "workers": workers if workers is not None else settings.node.workers,
            "listen_port": port if port is not None else settings.node.listen_port,
        }
    )
    settings = settings.model_copy(update={"node": node})
    if settings.node.workers > 1 and settings.nonce_cache.backend != "redis":
        fail(
            "--workers > 1 needs nonceCache.backend: redis in config.yaml, so that every worker refuses "
            "a replayed request",
            EXIT_USAGE,
        )
    configure_logging(settings.logger.verbosity, settings.logger.format)
    backends = cli.backends()
    signer = cli.signer(settings)
    raise typer.Exit(run_node(settings, backends, signer, cli.home))


def _create_home_if_empty(cli: CliState) -> None:
    from function_node.config.home import config_path

    if config_path(cli.home).exists():
        return
    from function_node.cli.accounts import new_key_password
    from function_node.config.home import init_home

    password = new_key_password(cli, cli.settings_or_defaults())
    for path in init_home(cli.home, password=password):
        typer.echo(f"created {path}")
    typer.echo(f"the node starts with the example backend.yaml; edit {cli.home / 'backend.yaml'} for yours")
