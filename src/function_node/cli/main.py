"""The ``fxn`` entry point: global options, the command groups, and error-to-exit-code mapping."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Final

import typer

from function_node.cli._common import EXIT_FAILURE, EXIT_USAGE, CliState, default_home

__all__ = ["app", "run"]

app = typer.Typer(
    name="fxn",
    help="Function Node: serve your model backends to the Function Network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Each module defines ``register(app)`` and keeps heavy imports inside its command functions.
# The order is the order of `fxn --help`: set up, run, inspect, test, the companions.
_COMMAND_MODULES: Final = (
    "config",  # init, config check
    "accounts",
    "start",
    "status",
    "doctor",
    "request",
    "challenge",
    "bench",
    "scheduler",
    "devnet",
)


@app.callback()
def _main(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option("--home", help="Home directory (default: $FXN_HOME or ~/.fxn).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    ctx.obj = CliState(home=(home or default_home()).expanduser(), debug=debug)


for _name in _COMMAND_MODULES:
    importlib.import_module(f"function_node.cli.{_name}").register(app)


def run() -> None:
    """Console-script entry: one sentence per error, exit 2 for configuration, 1 for runtime failures."""
    from function_node.errors import ConfigError, FxnError

    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except ConfigError as exc:
        if debug:
            raise
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        sys.exit(EXIT_USAGE)
    except FxnError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: no traceback without --debug
        if debug:
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        sys.exit(EXIT_FAILURE)
