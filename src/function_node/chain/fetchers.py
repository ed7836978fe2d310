"""Fetch functions that turn contract reads into the cached registries' entries (paused excluded)."""

from __future__ import annotations

from function_node.chain.cached import Fetch
from function_node.chain.contracts import NetworkReader
from function_node.chain.snapshot import RegistryEntry

__all__ = ["fetch_gateways", "fetch_providers", "fetch_schedulers"]


def fetch_gateways(reader: NetworkReader) -> Fetch:
    async def fetch() -> list[RegistryEntry]:
        # The live contract may list paused entries with paused=true; never admit them.
        return [
            RegistryEntry(owner=g.owner, id="0x" + g.id.hex(), metadata=g.metadata)
            for g in await reader.active_gateways()
            if not g.paused
        ]

    return fetch


def fetch_providers(reader: NetworkReader) -> Fetch:
    async def fetch() -> list[RegistryEntry]:
        return [
            RegistryEntry(owner=p.owner, id="0x" + p.id.hex(), model_id=p.model_id, metadata=p.metadata)
            for p in await reader.active_providers()
            if not p.paused
        ]

    return fetch


def fetch_schedulers(reader: NetworkReader) -> Fetch:
    async def fetch() -> list[RegistryEntry]:
        return [RegistryEntry(owner=a) for a in await reader.active_schedulers()]

    return fetch
