"""``fxn scheduler run`` and ``fxn scheduler status``: the reference scheduler (SPEC §9)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from function_node.cli._common import EXIT_FAILURE, EXIT_OK, fail, state

if TYPE_CHECKING:
    from function_node.scheduler.config import SchedulerConfig
    from function_node.signing import LocalSigner

__all__ = ["register"]

_ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="scheduler.yaml (default: <home>/scheduler.yaml)."),
]


def _config(ctx: typer.Context, path: Path | None) -> SchedulerConfig:
    from function_node.scheduler.config import DEFAULT_FILE, load_scheduler_config

    return load_scheduler_config(path or state(ctx).home / DEFAULT_FILE)


def _signer(config: SchedulerConfig) -> LocalSigner:
    import getpass
    import sys

    from function_node.keys import detect_format, load_signer, read_key_json

    path = config.key_path
    password = os.environ.get("FXN_KEY_PASSWORD")
    if password is None and detect_format(read_key_json(path)) == "keystore" and sys.stdin.isatty():
        password = getpass.getpass(f"Password for {path}: ")
    return load_signer(path, password)


def run(
    ctx: typer.Context,
    config: _ConfigOption = None,
    rounds: Annotated[
        int | None,
        typer.Option("--rounds", min=1, help="Stop after this many rounds (default: run until Ctrl-C)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="One round; exit 0 if every check passed, else 1.")
    ] = False,
) -> None:
    """Probe the nodes on an interval: identity, endpoints, matrix proof, inference; store the verdicts."""
    import asyncio

    from rich.console import Console

    from function_node.logs import configure_logging
    from function_node.scheduler.service import serve
    from function_node.scheduler.table import status_table

    cfg = _config(ctx, config)
    signer = _signer(cfg)
    configure_logging("debug" if state(ctx).debug else cfg.logger.verbosity, cfg.logger.format)
    console = Console()
    console.print(f"scheduler {signer.address}: database {cfg.database_path}, interval {cfg.interval:g}s")

    def show(_: object, store: object) -> None:
        from function_node.scheduler.store import SchedulerStore

        if isinstance(store, SchedulerStore):
            console.print(status_table(store.summaries()))

    reports = asyncio.run(serve(cfg, signer, rounds=1 if once else rounds, on_round=show))
    if once or rounds is not None:
        raise typer.Exit(EXIT_OK if reports and all(r.passed for r in reports) else EXIT_FAILURE)


def status(
    ctx: typer.Context,
    config: _ConfigOption = None,
    database: Annotated[
        Path | None, typer.Option("--database", help="Read this SQLite file instead of the configured one.")
    ] = None,
) -> None:
    """Print the table of nodes from the scheduler's database: last seen, RTT, TOPS, verdicts, failures."""
    from rich.console import Console

    from function_node.scheduler.store import SchedulerStore
    from function_node.scheduler.table import status_table

    path = database or _config(ctx, config).database_path
    if not path.is_file():
        fail(f"no scheduler database at {path}; run `fxn scheduler run` first or pass --database", code=1)
    with SchedulerStore(path) as store:
        summaries = store.summaries()
    if not summaries:
        fail(f"{path} holds no rounds yet; run `fxn scheduler run`", code=1)
    Console().print(status_table(summaries))
    raise typer.Exit(EXIT_OK if all(s.passed for s in summaries) else EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="The reference scheduler: probe nodes and verify their answers.", no_args_is_help=True
    )
    group.command("run")(run)
    group.command("status")(status)
    app.add_typer(group, name="scheduler")
