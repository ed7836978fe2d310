"""``fxn start``: check the configuration exactly as ``fxn config check`` does, then run the node.

A home without a key file is refused (exit 2, "run `fxn init`"): under systemd or Docker a mistyped
``--home`` or an unmounted volume would otherwise start a new, unregistered identity. ``--init``
creates what is missing first, and says so.
"""

from __future__ import annotations

from typing import Annotated

import typer

from function_node.cli._common import CliState, state

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
    init: Annotated[
        bool,
        typer.Option(
            "--init", help="Create the home first (config files, a new key) where they are missing."
        ),
    ] = False,
) -> None:
    from function_node.config.preflight import check_start
    from function_node.keys import load_node_signer
    from function_node.logs import configure_logging, get_logger
    from function_node.node.server import run_node

    cli = state(ctx)
    if init:
        _init_missing(cli)
    checked = check_start(cli.home, workers=workers, port=port)  # ConfigError: exit 2, every problem
    settings = checked.settings
    configure_logging(settings.logger.verbosity, settings.logger.format)
    if settings.admits_no_gateway:
        get_logger("fxn.node").warning(settings.NO_GATEWAY_WARNING)
    signer = load_node_signer(cli.home, settings)
    raise typer.Exit(run_node(settings, checked.backends, signer, cli.home))


def _init_missing(cli: CliState) -> None:
    from function_node.cli.accounts import new_key_password
    from function_node.config.home import init_home, key_path

    settings = cli.settings_or_defaults()
    password = None if key_path(cli.home, settings).exists() else new_key_password(cli, settings)
    created = init_home(cli.home, password=password)
    for path in created:
        typer.echo(f"created {path}")
    if created:
        typer.echo(
            f"the node starts with the example backend.yaml; edit {cli.home / 'backend.yaml'} for yours"
        )
