"""Build the caller directory the node runs with, from config and, where configured, the chain.

Static lists (``registry.static``, ``schedulerAddress``) are always there. With
``registry.routerSmartContractAddress`` set, chain-backed gateway, provider and scheduler registries
are added beside them (the scheduler registry is ``registry.scheduler.contract`` or the Router's
``schedulerRegistry()``; the live Router has none, which reads as an empty list).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from function_node.config.settings import Settings
from function_node.errors import ChainError
from function_node.logs import get_logger
from function_node.metrics import NodeMetrics
from function_node.registry.base import Registry
from function_node.registry.directory import CallerDirectory
from function_node.registry.static import StaticRegistry

if TYPE_CHECKING:
    from function_node.chain.cached import CachedRegistry, Fetch
    from function_node.chain.client import ChainClient
    from function_node.chain.link import ChainLink
    from function_node.node.registration import Registration

__all__ = ["FIRST_REFRESH_TIMEOUT_S", "RegistrySet", "open_registries"]

# How long start() waits for the first chain refresh before serving from snapshots (or not at all).
FIRST_REFRESH_TIMEOUT_S: Final = 5.0


@dataclass(slots=True)
class RegistrySet:
    """The directory plus whatever keeps it fresh; the node's lifespan starts and closes it."""

    directory: CallerDirectory
    chain: list[CachedRegistry] = field(default_factory=list)
    link: ChainLink | None = None
    node_address: str = ""
    model_ids: tuple[str, ...] = ()
    first_refresh_timeout: float = FIRST_REFRESH_TIMEOUT_S
    registration: Registration | None = None
    _tasks: set[asyncio.Task[object]] = field(default_factory=set)

    @property
    def client(self) -> ChainClient | None:
        """The RPC client, once the first refresh or the registration lookup has built it."""
        return self.link.client if self.link is not None else None

    def chain_registry(self, name: str) -> CachedRegistry | None:
        return next((r for r in self.chain if r.name == name), None)

    async def start(self) -> None:
        """Load snapshots, refresh once within a short bound, then keep refreshing in the background.

        A registry whose snapshot is still fresh serves from it at once: its first refresh runs in the
        background instead of delaying readiness (the snapshot's age still counts toward staleness).
        So does the lookup of the node's own registration when the provider registry serves from its
        snapshot; then nothing before readiness needs web3 (see :mod:`function_node.chain.link`).
        """
        log = get_logger("fxn.registry")
        for registry in self.chain:
            registry.load_snapshot()
        blocking: set[asyncio.Task[object]] = set()
        for registry in self.chain:
            task = self._spawn(registry.refresh(), f"registry-first-{registry.name}")
            if not registry.status().usable:
                blocking.add(task)
        registration = self._spawn(self._report_registration(), "registry-own-registration")
        providers = self.chain_registry("provider")
        if providers is None or not providers.status().usable:
            blocking.add(registration)
        pending: set[asyncio.Task[object]] = set()
        if blocking:
            _, pending = await asyncio.wait(blocking, timeout=self.first_refresh_timeout)
        if pending:
            log.warning("registry first refresh still running", bound_s=self.first_refresh_timeout)
        for registry in self.chain:
            registry.start()
        for status in self.directory.statuses():
            log.info(
                "registry",
                name=status.name,
                source=status.source,
                loaded=status.loaded,
                stale=status.stale,
                entries=status.entries,
                error=status.error or None,
            )

    def _spawn(self, coro: Coroutine[Any, Any, object], name: str) -> asyncio.Task[object]:
        """A task kept in ``_tasks`` until it finishes, so it is never collected mid-flight."""
        task: asyncio.Task[object] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _report_registration(self) -> None:
        providers = self.chain_registry("provider")
        if not self.node_address or providers is None or self.link is None:
            return
        try:
            # One bound for building the client (web3's import, in a worker thread) and the lookup; once
            # the client is built, importing the registration module below costs nothing more.
            async with asyncio.timeout(self.first_refresh_timeout):
                reader = await self.link.reader()
                from function_node.node.registration import lookup_registration

                self.registration = await lookup_registration(reader, self.node_address)
        except (ChainError, TimeoutError) as exc:
            if not providers.status().loaded:
                get_logger("fxn.registration").warning(
                    "own provider registration unknown: the chain is unreachable and nothing is cached",
                    error=str(exc) or "timed out",
                )
                return
            from function_node.node.registration import registration_from_entries

            self.registration = registration_from_entries(self.node_address, providers.entries())
        from function_node.node.registration import log_registration

        log_registration(self.registration, self.model_ids)

    async def close(self) -> None:
        """Stop background refreshes and release the RPC client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for registry in self.chain:
            await registry.close()
        if self.link is not None:
            await self.link.close()


async def open_registries(
    settings: Settings,
    home: Path,
    metrics: NodeMetrics,
    *,
    node_address: str = "",
    model_ids: Collection[str] = (),
) -> RegistrySet:
    """The registries ``settings`` asks for; nothing is fetched until :meth:`RegistrySet.start`."""
    gateways: list[Registry] = []
    schedulers: list[Registry] = []
    providers: list[Registry] = []
    if settings.registry.static.gateways:
        gateways.append(StaticRegistry("gateway-static", settings.registry.static.gateways))
    static_schedulers = [*settings.scheduler_address, *settings.registry.static.schedulers]
    if static_schedulers:
        schedulers.append(StaticRegistry("scheduler-static", static_schedulers))
    for registry in (*gateways, *schedulers):
        status = registry.status()
        metrics.registry_entries.labels(status.name).set(status.entries)

    out = RegistrySet(
        directory=CallerDirectory(gateways=gateways, schedulers=schedulers, providers=providers),
        node_address=node_address.lower(),
        model_ids=tuple(model_ids),
    )
    router = settings.registry.router_smart_contract_address
    scheduler_contract = settings.registry.scheduler.contract
    if not settings.rpc_provider or not (router or scheduler_contract):
        return out

    from function_node.chain.cached import CachedRegistry
    from function_node.chain.fetchers import fetch_gateways, fetch_providers, fetch_schedulers
    from function_node.chain.link import ChainLink
    from function_node.chain.snapshot import SnapshotStore

    out.link = link = ChainLink(settings.rpc_provider, router, scheduler_contract)
    store = SnapshotStore(home)
    reg = settings.registry

    def cached(name: str, fetch: Fetch, poll: float, stale: float, src: str) -> CachedRegistry:
        registry = CachedRegistry(
            name,
            fetch,
            source=src,
            poll_interval=poll,
            max_staleness=stale,
            metrics=metrics,
            snapshots=store,
            chain_id=link.chain_id,
            expected_chain_id=settings.chain_id,
        )
        out.chain.append(registry)
        return registry

    if router:
        source = f"router={router}"
        gateways.append(
            cached(
                "gateway",
                fetch_gateways(link),
                reg.gateway.poll_interval,
                reg.gateway.max_staleness,
                source,
            )
        )
        providers.append(
            cached(
                "provider",
                fetch_providers(link),
                reg.provider.poll_interval,
                reg.provider.max_staleness,
                source,
            )
        )
    scheduler_source = f"scheduler={scheduler_contract}" if scheduler_contract else f"router={router}"
    schedulers.append(
        cached(
            "scheduler",
            fetch_schedulers(link),
            reg.scheduler.poll_interval,
            reg.scheduler.max_staleness,
            scheduler_source,
        )
    )
    return out
