"""The ``fxn`` entry point: global options, the command groups, and error-to-exit-code mapping."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from typer.core import TyperGroup

from function_node.cli._common import EXIT_FAILURE, EXIT_USAGE, CliState, default_home

__all__ = ["app", "hoist_global_options", "run"]

# Command name -> the index of the module that registered it (see the loop below).
_HELP_RANK: dict[str, int] = {}


class _OperatorOrder(TyperGroup):
    """Lists commands in the order of _COMMAND_MODULES; typer alone lists plain commands before groups."""

    def list_commands(self, ctx: Any) -> list[str]:  # Any: typer's vendored click is private
        return sorted(super().list_commands(ctx), key=lambda name: _HELP_RANK.get(name, len(_HELP_RANK)))


app = typer.Typer(
    name="fxn",
    cls=_OperatorOrder,
    help="Function Node: serve your model backends to the Function Network.\n\n"
    "--home and --debug may also be given after the command (fxn start --home DIR).",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Each module defines ``register(app)`` and keeps heavy imports inside its command functions.
# The order is the order of `fxn --help`: set up, run, inspect, test, the companions.
_COMMAND_MODULES: Final = (
    "init",
    "config",  # config check
    "accounts",
    "start",
    "status",
    "provider",  # the on-chain lifecycle: register, update, pause, unpause, status
    "doctor",
    "usage",
    "request",
    "challenge",
    "bench",
    "scheduler",
    "devnet",
)
# Options of the root command that may also follow the command; the value says whether they take one.
_GLOBAL_OPTIONS: Final = {"--home": True, "--debug": False}


def _version(value: bool) -> None:
    if value:
        from function_node import __version__

        typer.echo(f"fxn {__version__}")
        raise typer.Exit


@app.callback()
def _main(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option("--home", help="Home directory (default: $FXN_HOME or ~/.fxn).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    _show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    ctx.obj = CliState(home=(home or default_home()).expanduser(), debug=debug)


def _registered_names() -> list[str]:
    commands = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    return commands + [g.name or "" for g in app.registered_groups]


for _rank, _name in enumerate(_COMMAND_MODULES):
    importlib.import_module(f"function_node.cli.{_name}").register(app)
    for _command in _registered_names():
        _HELP_RANK.setdefault(_command, _rank)


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """``args`` with ``--home DIR`` / ``--debug`` moved before the command, wherever they were given.

    click only knows a group's options before the subcommand's name; operators write ``fxn start
    --home DIR`` as often as ``fxn --home DIR start`` (SPEC §2). Nothing after ``--`` is moved; a
    ``--home`` with no value after it is a ValueError (click would take the command for its value).
    """
    hoisted: list[str] = []
    rest: list[str] = []
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest.extend(items[i:])
            break
        takes_value = _GLOBAL_OPTIONS.get(name)
        if takes_value is None:
            rest.append(arg)
        elif not takes_value or "=" in arg:
            hoisted.append(arg)
        elif i + 1 < len(items):
            hoisted.extend(items[i : i + 2])
            i += 1
        else:
            raise ValueError(f"{name} needs a value, e.g. {name} ~/.fxn")
        i += 1
    return hoisted + rest


def run() -> None:
    """Console-script entry: one sentence per error, exit 2 for configuration, 1 for runtime failures."""
    from function_node.errors import ConfigError, FxnError

    try:
        args = hoist_global_options(sys.argv[1:])
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    debug = "--debug" in args[: args.index("--") if "--" in args else len(args)]
    try:
        app(args=args, prog_name="fxn")
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
