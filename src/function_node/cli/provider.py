"""``fxn provider register | update | pause | unpause | status``: the node's entries in the ProviderRegistry.

Thin: parse the options, call :mod:`function_node.chain.provider_lifecycle`, print. The node key is the one
``fxn start`` uses, with the same password sources; it is decrypted only when a transaction is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import typer

from function_node.cli._common import EXIT_USAGE, CliState, fail, state

if TYPE_CHECKING:
    from rich.console import Console

    from function_node.chain.provider_lifecycle import Operator, SendOptions, Step
    from function_node.chain.transactions import Mined
    from function_node.config.settings import Settings

__all__ = ["register", "render_entries"]

T = TypeVar("T")
_DEFAULT_TIMEOUT: Final = "2m"

_Id = Annotated[
    str | None,
    typer.Option("--id", metavar="HEX", help="A provider id, 0x-hex (default: every id the key owns)."),
]
_Metadata = Annotated[
    str | None,
    typer.Option(
        "--metadata",
        metavar="JSON",
        help='Metadata JSON object (default: {"url": node.publicUrl, "version"}).',
    ),
]
_Url = Annotated[
    str | None, typer.Option("--url", metavar="URL", help="Publish this URL instead of node.publicUrl.")
]
_DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Run every check and print the transaction; send nothing.")
]
_Confirmations = Annotated[
    int,
    typer.Option(
        "--confirmations", metavar="N", min=1, max=1000, help="Blocks that must hold the transaction."
    ),
]
_Timeout = Annotated[
    str,
    typer.Option(
        "--timeout", metavar="DURATION", help="How long to wait for the confirmations (e.g. 90s, 5m)."
    ),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The node's entries in the ProviderRegistry on chain.", no_args_is_help=True)
    group.command("register", help="Register a provider id for a model id (idempotent).")(register_cmd)
    group.command("update", help="Publish new metadata for the node's provider ids.")(update_cmd)
    group.command("pause", help="Pause the node's provider ids (gateways stop routing to them).")(
        _pause_command(True)
    )
    group.command("unpause", help="Unpause the node's provider ids.")(_pause_command(False))
    group.command("status", help="Every provider id the node's key owns, as the chain sees it.")(status_cmd)
    app.add_typer(group, name="provider")


def _options(dry_run: bool, confirmations: int, timeout: str) -> SendOptions:
    from function_node.chain.provider_lifecycle import SendOptions
    from function_node.config.durations import parse_duration

    text = timeout.strip()
    try:
        seconds = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError:
        fail(f"--timeout {timeout!r} is not a duration; write e.g. 90s or 5m", EXIT_USAGE)
    if seconds <= 0:
        fail("--timeout must be longer than 0s", EXIT_USAGE)
    return SendOptions(dry_run=dry_run, confirmations=confirmations, timeout=seconds)


def _owner(cli: CliState, settings: Settings) -> str:
    from function_node.config.home import key_path
    from function_node.keys import key_file_address

    return key_file_address(key_path(cli.home, settings)).lower()


def _operator(cli: CliState, settings: Settings, options: SendOptions) -> Operator:
    """The node's key acting through the console (the key is decrypted only when a step sends)."""
    from function_node.chain.provider_lifecycle import Operator

    return Operator(
        settings, _owner(cli, settings), lambda: cli.signer(settings), options, ConsoleReporter(_console())
    )


def _run(job: Coroutine[Any, Any, T]) -> T:
    """Run the command's coroutine; bad input and a wrong chain are exit 2, the rest as every command."""
    import asyncio

    from function_node.errors import ChainIdMismatchError, UsageError

    try:
        return asyncio.run(job)
    except (UsageError, ChainIdMismatchError) as exc:
        fail(str(exc), EXIT_USAGE)


def _entry_id(text: str | None) -> bytes | None:
    from function_node.chain.provider_lifecycle import parse_id
    from function_node.errors import UsageError

    try:
        return None if text is None else parse_id(text)
    except UsageError as exc:
        fail(str(exc), EXIT_USAGE)


def _metadata(settings: Settings, metadata: str | None, url: str | None) -> str:
    from function_node.chain.metadata import metadata_from_options
    from function_node.errors import UsageError

    try:
        return metadata_from_options(metadata, url, settings.node.public_url)
    except UsageError as exc:
        fail(str(exc), EXIT_USAGE)


def register_cmd(
    ctx: typer.Context,
    *,
    model_id: Annotated[
        str, typer.Option("--model-id", metavar="N", help="The network's model id (backend.yaml fxnId).")
    ],
    entry_id: Annotated[
        str | None,
        typer.Option("--id", metavar="HEX", help="The provider id, 0x-hex (default: the node's address)."),
    ] = None,
    metadata: _Metadata = None,
    url: _Url = None,
    dry_run: _DryRun = False,
    confirmations: _Confirmations = 1,
    timeout: _Timeout = _DEFAULT_TIMEOUT,
) -> None:
    from function_node.chain.provider_lifecycle import parse_model_id, register_provider
    from function_node.errors import UsageError

    cli = state(ctx)
    settings = cli.settings()
    try:
        model = parse_model_id(model_id)
    except UsageError as exc:
        fail(str(exc), EXIT_USAGE)
    ident, text = _entry_id(entry_id), _metadata(settings, metadata, url)
    operator = _operator(cli, settings, _options(dry_run, confirmations, timeout))
    _run(register_provider(operator, model_id=model, metadata=text, entry_id=ident))


def update_cmd(
    ctx: typer.Context,
    *,
    entry_id: _Id = None,
    metadata: _Metadata = None,
    url: _Url = None,
    dry_run: _DryRun = False,
    confirmations: _Confirmations = 1,
    timeout: _Timeout = _DEFAULT_TIMEOUT,
) -> None:
    from function_node.chain.provider_lifecycle import update_providers

    cli = state(ctx)
    settings = cli.settings()
    ident, text = _entry_id(entry_id), _metadata(settings, metadata, url)
    operator = _operator(cli, settings, _options(dry_run, confirmations, timeout))
    _run(update_providers(operator, metadata=text, entry_id=ident))


def _pause_command(pause: bool) -> Callable[..., None]:
    """``pause`` or ``unpause``: the same options, the opposite state."""

    def command(
        ctx: typer.Context,
        *,
        entry_id: _Id = None,
        dry_run: _DryRun = False,
        confirmations: _Confirmations = 1,
        timeout: _Timeout = _DEFAULT_TIMEOUT,
    ) -> None:
        from function_node.chain.provider_lifecycle import set_paused

        cli = state(ctx)
        settings = cli.settings()
        ident, options = _entry_id(entry_id), _options(dry_run, confirmations, timeout)
        _run(set_paused(_operator(cli, settings, options), pause=pause, entry_id=ident))

    return command


def status_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of the ids.")] = False,
) -> None:
    from function_node.chain.provider_lifecycle import provider_status

    cli = state(ctx)
    settings = cli.settings()
    owner = _owner(cli, settings)
    registry, statuses = _run(provider_status(settings, owner))
    entries = [e.as_json() for e in statuses]
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    console = _console()
    console.print(f"ProviderRegistry {registry}; ids owned by {owner}:")
    if not entries:
        console.print("none; register one with `fxn provider register --model-id N`")
        return
    render_entries(console, entries)


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # logs and pipes: one line per id beats wrapped cells
    return console


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def render_entries(console: Console, entries: list[dict[str, Any]]) -> None:
    """The table ``fxn provider status`` and ``fxn status`` print, from the ``--json`` objects."""
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for column in ("id", "model id", "registered", "active", "paused", "url", "url answers", "metadata"):
        table.add_column(column, overflow="fold")
    for e in entries:
        metadata = e["metadata"]
        table.add_row(
            str(e["id"]),
            str(e["modelId"]),
            _yes(e["registered"]),
            _yes(e["active"]),
            _yes(e["paused"]),
            escape(str(e["url"] or "-")),
            _yes(e["publicUrlReachable"]),
            escape(metadata if isinstance(metadata, str) else json.dumps(metadata)),
        )
    console.print(table)


class ConsoleReporter:
    """Each step in a line, the transaction hash, a spinner while waiting, then the block and events."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def planned(self, step: Step, dry_run: bool) -> None:
        call = step.call
        if call is None:
            self.console.print(f"{step.summary}; nothing sent")
            return
        if not dry_run:
            self.console.print(f"{step.summary} ...")
            return
        from function_node.chain.transactions import GAS_MARGIN_PERCENT, ether

        self.console.print(f"{step.summary}: dry run, nothing sent")
        args = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in call.args)
        gwei = 10**9
        for label, value in (
            ("contract", f"{call.contract} {call.to.lower()} (chain {call.chain_id})"),
            ("function", call.function),
            ("arguments", args),
            ("calldata", call.calldata),
            ("from", f"{call.sender.lower()} (nonce {call.transaction['nonce']})"),
            ("gas", f"estimate {call.gas_estimate:,}; limit {call.gas_limit:,} (+{GAS_MARGIN_PERCENT}%)"),
            (
                "fees",
                f"EIP-1559: max {call.max_fee_per_gas / gwei:g} gwei per gas, priority "
                f"{call.max_priority_fee_per_gas / gwei:g} gwei; at most {ether(call.max_cost)} "
                f"(balance {ether(call.balance)})",
            ),
        ):
            self.console.print(f"  {label:<10} {value}", markup=False)

    def waiting(self, tx_hash: str, confirmations: int) -> AbstractContextManager[object]:
        self.console.print(f"transaction {tx_hash} sent")
        plural = "s" if confirmations > 1 else ""
        return self.console.status(f"waiting for {confirmations} confirmation{plural} ...")

    def mined(self, step: Step, mined: Mined, events: list[str]) -> None:
        from function_node.chain.transactions import ether

        cost = ether(mined.gas_used * mined.effective_gas_price)
        self.console.print(
            f"done: in block {mined.block} after {mined.waited_s:.2f} s; gas used {mined.gas_used:,} "
            f"({cost}); events: {', '.join(events) or 'none'}"
        )
