"""``fxn status``: this node's address, its on-chain provider registration, and the running node's state.

The registration is read from chain (``getProviderIdsByOwner`` + ``getProvider``); registry sync state
and backend health come from the running node's ``GET /ready`` JSON. Exit code 0 when the node
answers ready and the chain answered; 1 when something is down or not ready; 2 for bad configuration.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from function_node.cli._common import EXIT_FAILURE, EXIT_OK, state

if TYPE_CHECKING:
    from rich.console import Console

    from function_node.config.settings import Settings

__all__ = ["collect_status", "register"]

_READY_TIMEOUT_S: Final = 5.0
_CHAIN_TIMEOUT_S: Final = 10.0
_WILDCARD_HOSTS: Final = ("0.0.0.0", "::", "")


def register(app: typer.Typer) -> None:
    app.command("status", help="Node address, on-chain registration, registry sync and backend health.")(
        status
    )


def status(
    ctx: typer.Context,
    node: Annotated[
        str | None, typer.Option("--node", help="URL of the running node (default: from node.listenPort).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    import asyncio

    cli = state(ctx)
    settings = cli.settings()
    from function_node.config.home import key_path
    from function_node.keys import key_file_address

    address = key_file_address(key_path(cli.home, settings)).lower()
    model_ids = _configured_model_ids(cli.home)
    report = asyncio.run(collect_status(settings, address, node or _node_url(settings), model_ids))
    _add_backend_urls(report, cli.home)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        from rich.console import Console

        _print(Console(), report)
    raise typer.Exit(EXIT_OK if report["ok"] else EXIT_FAILURE)


def _node_url(settings: Settings) -> str:
    host = settings.node.listen_address
    host = "127.0.0.1" if host in _WILDCARD_HOSTS else host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.node.listen_port}"


def _add_backend_urls(report: dict[str, Any], home: Any) -> None:
    """The node names its backends ``<model>/<index>`` (its answer is public); the operator sees the URLs,
    redacted, from this home's backend.yaml."""
    from function_node.config.loader import load_backends
    from function_node.errors import ConfigError
    from function_node.redact import redact_url

    try:
        urls = {
            f"{m.name}/{i}": redact_url(b.base_url)
            for m in load_backends(home).models
            for i, b in enumerate(m.backends)
        }
    except (ConfigError, OSError):
        urls = {}
    for backend in report["node"].get("backends", []):
        backend["url"] = urls.get(str(backend.get("backend")), "")


def _configured_model_ids(home: Any) -> list[str] | None:
    """backend.yaml's fxnIds; None when the file is missing or broken (status still reports the rest)."""
    from function_node.config.loader import load_backends
    from function_node.errors import ConfigError

    try:
        return [m.fxn_id for m in load_backends(home).models if m.fxn_id]
    except (ConfigError, OSError):
        return None


async def collect_status(
    settings: Settings, address: str, node_url: str, model_ids: list[str] | None
) -> dict[str, Any]:
    """The whole report as plain data (what ``--json`` prints)."""
    import asyncio

    chain, ready = await asyncio.gather(
        _registration(settings, address, model_ids), _ready(node_url), return_exceptions=False
    )
    ok = bool(ready.get("reachable")) and bool(ready.get("ready")) and not chain.get("error")
    return {"address": address, "chain": chain, "node": ready, "ok": ok}


async def _registration(settings: Settings, address: str, model_ids: list[str] | None) -> dict[str, Any]:
    router = settings.registry.router_smart_contract_address
    if not router or not settings.rpc_provider:
        return {"configured": False}
    from function_node.chain.client import ChainClient
    from function_node.chain.contracts import NetworkReader
    from function_node.chain.provider_status import read_entry_statuses
    from function_node.errors import ChainError
    from function_node.node.registration import Registration
    from function_node.redact import redact_url

    out: dict[str, Any] = {
        "configured": True,
        "router": router,
        "rpc": [redact_url(u) for u in settings.rpc_provider],
    }
    async with ChainClient(settings.rpc_provider, timeout=_CHAIN_TIMEOUT_S, retries=0) as client:
        try:
            # The same reads and shape as `fxn provider status`.
            statuses = await read_entry_statuses(NetworkReader(client, router), address)
        except ChainError as exc:
            out["error"] = str(exc)
            return out
    registration = Registration(address.lower(), tuple(s.record for s in statuses), "chain")
    out.update(
        registered=registration.registered,
        active=registration.active,
        activeModelIds=registration.active_model_ids,
        pausedModelIds=registration.paused_model_ids,
        entries=[s.as_json() for s in statuses],
    )
    if model_ids is not None:
        missing, unconfigured = registration.mismatch(model_ids)
        out.update(configuredFxnIds=model_ids, notRegistered=missing, notConfigured=unconfigured)
    return out


async def _ready(node_url: str) -> dict[str, Any]:
    import aiohttp

    url = node_url.rstrip("/") + "/ready"
    try:
        timeout = aiohttp.ClientTimeout(total=_READY_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"url": node_url, "reachable": False, "error": f"{type(exc).__name__}: {exc}".strip()}
    if not isinstance(body, dict):
        return {"url": node_url, "reachable": True, "ready": False, "error": "GET /ready did not answer JSON"}
    return {"url": node_url, "reachable": True, "status": resp.status, **body}


def _age(ts: object) -> str:
    if not isinstance(ts, int | float):
        return "never"
    seconds = max(0.0, time.time() - float(ts))
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def _yes(value: object) -> str:
    return "yes" if value else "no"


def _print(console: Console, report: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]Node address[/bold]  {report['address']}")
    chain = report["chain"]
    if not chain.get("configured"):
        console.print(
            "[bold]On chain[/bold]      not configured (registry.routerSmartContractAddress is empty)"
        )
    elif chain.get("error"):
        console.print(f"[bold]On chain[/bold]      [red]unreachable[/red]: {escape(str(chain['error']))}")
    else:
        state_text = "[green]active provider[/green]" if chain["active"] else "[yellow]not active[/yellow]"
        console.print(f"[bold]On chain[/bold]      {state_text} (router {chain['router']})")
        console.print(f"  model ids     {', '.join(chain['activeModelIds']) or '-'}")
        if chain["pausedModelIds"]:
            console.print(f"  paused        {', '.join(chain['pausedModelIds'])}")
        if chain.get("notRegistered"):
            console.print(
                f"  [yellow]backend.yaml fxnIds not registered:[/yellow] {', '.join(chain['notRegistered'])}"
            )
        if chain.get("notConfigured"):
            console.print(
                f"  [yellow]registered, not in backend.yaml:[/yellow] {', '.join(chain['notConfigured'])}"
            )
        if chain["entries"]:
            from function_node.cli.provider import render_entries

            render_entries(console, chain["entries"])
    node = report["node"]
    if not node.get("reachable"):
        reason = escape(str(node.get("error", "")))
        console.print(f"[bold]Node[/bold]          [red]not reachable[/red] at {node['url']}: {reason}")
        return
    ready_text = "[green]ready[/green]" if node.get("ready") else "[red]not ready[/red]"
    console.print(f"[bold]Node[/bold]          {ready_text} at {node['url']}")
    registries = Table(title="Registries")
    for column in ("registry", "source", "loaded", "stale", "entries", "last success", "error"):
        registries.add_column(column)
    for r in node.get("registries", []):
        registries.add_row(
            str(r.get("name")),
            str(r.get("source")),
            _yes(r.get("loaded")),
            _yes(r.get("stale")),
            str(r.get("entries")),
            _age(r.get("last_success")),
            escape(str(r.get("error") or "")),
        )
    console.print(registries)
    backends = Table(title="Backends")
    for column in ("backend", "url", "healthy", "in flight"):
        backends.add_column(column)
    for b in node.get("backends", []):
        backends.add_row(
            str(b.get("backend")), str(b.get("url")), _yes(b.get("healthy")), str(b.get("inFlight", ""))
        )
    console.print(backends)
