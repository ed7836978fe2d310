"""``fxn devnet up``: run a whole local Function Network (SPEC §9)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from function_node.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail

__all__ = ["register"]


def up(
    *,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where homes, chain state, scheduler database and logs go.")
    ] = Path("~/.fxn/devnet"),
    once: Annotated[
        bool,
        typer.Option("--once", help="Run the scenario, print the summary, stop; exit 0 only if all passed."),
    ] = False,
    replicas: Annotated[int, typer.Option("--replicas", min=1, max=8, help="Node replicas (same key).")] = 1,
    redis: Annotated[
        bool, typer.Option("--redis", help="Start Redis and share it as the nonce store.")
    ] = False,
    backend: Annotated[
        str,
        typer.Option("--backend", help="A real OpenAI-compatible server instead of the development backend."),
    ] = "",
    model: Annotated[
        str, typer.Option("--model", help="The model id to serve (with --backend: the one it serves).")
    ] = "dev-model",
    matrix_size: Annotated[
        int, typer.Option("--matrix-size", min=8, max=16384, help="n of the scheduler's matrix challenge.")
    ] = 256,
    interval: Annotated[
        float, typer.Option("--interval", min=1.0, help="Seconds between scheduler rounds.")
    ] = 30.0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for each node to be ready.")
    ] = 60.0,
) -> None:
    """Start anvil, deploy the registries, a backend, node(s) and a scheduler; check it all works."""
    import signal
    import threading

    from rich.console import Console

    from function_node.devnet.orchestrator import Devnet, DevnetError, DevnetOptions
    from function_node.devnet.summary import all_passed, summary_table

    try:
        options = DevnetOptions(
            directory=directory.expanduser(),
            replicas=replicas,
            redis=redis,
            backend_url=backend.rstrip("/"),
            model=model,
            matrix_size=matrix_size,
            scheduler_interval=interval,
            ready_timeout=timeout,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # logs and CI: one line per row beats wrapped cells
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    devnet = Devnet(options)
    try:
        with console.status("starting the devnet ..."):
            rows = devnet.up()
        console.print(summary_table(rows))
        passed = all_passed(rows)
        if once:
            raise typer.Exit(EXIT_OK if passed else EXIT_FAILURE)
        console.print(
            f"devnet up in {devnet.layout.root} ({'all passed' if passed else 'SOME CHECKS FAILED'}); "
            "Ctrl-C stops every process it started"
        )
        while not stop.wait(1.0):
            dead = devnet.dead()
            if dead:
                fail(f"{dead[0]} exited; see {devnet.log_of(dead[0])}")
        console.print("stopping ...")
    except DevnetError as exc:
        fail(str(exc))
    finally:
        devnet.down()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="A whole local network for demos and tests.", no_args_is_help=True)
    group.command("up")(up)
    app.add_typer(group, name="devnet")
