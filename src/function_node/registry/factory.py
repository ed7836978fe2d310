"""Build the caller directory the node runs with, from config (and, where configured, the chain)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from function_node.config.settings import Settings
from function_node.metrics import NodeMetrics
from function_node.registry.base import Registry
from function_node.registry.directory import CallerDirectory
from function_node.registry.static import StaticRegistry

__all__ = ["RegistrySet", "open_registries"]


@dataclass(slots=True)
class RegistrySet:
    """The directory plus whatever keeps it fresh; the node's lifespan starts and closes it."""

    directory: CallerDirectory
    _closers: list[object] = field(default_factory=list)

    async def start(self) -> None:
        """Load what must be loaded before serving and start background refreshes."""

    async def close(self) -> None:
        """Stop background refreshes."""


async def open_registries(settings: Settings, home: Path, metrics: NodeMetrics) -> RegistrySet:
    gateways: list[Registry] = []
    schedulers: list[Registry] = []
    if settings.registry.static.gateways:
        gateways.append(StaticRegistry("gateway-static", settings.registry.static.gateways))
    static_schedulers = [*settings.scheduler_address, *settings.registry.static.schedulers]
    if static_schedulers:
        schedulers.append(StaticRegistry("scheduler-static", static_schedulers))
    for registry in (*gateways, *schedulers):
        status = registry.status()
        metrics.registry_entries.labels(status.name).set(status.entries)
    return RegistrySet(directory=CallerDirectory(gateways=gateways, schedulers=schedulers))
