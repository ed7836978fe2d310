"""Fetch functions that turn contract reads into the cached registries' entries (paused excluded).

Each takes a reader, or the node's :class:`ChainLink`, which builds its reader (importing web3) at the
first fetch rather than at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from function_node.chain.cached import Fetch
from function_node.chain.link import ChainLink
from function_node.chain.snapshot import RegistryEntry

if TYPE_CHECKING:
    from function_node.chain.contracts import NetworkReader

__all__ = ["fetch_gateways", "fetch_providers", "fetch_schedulers"]


async def _reader(source: NetworkReader | ChainLink) -> NetworkReader:
    return await source.reader() if isinstance(source, ChainLink) else source


def fetch_gateways(source: NetworkReader | ChainLink) -> Fetch:
    async def fetch() -> list[RegistryEntry]:
        reader = await _reader(source)
        # The live contract may list paused entries with paused=true; never admit them.
        return [
            RegistryEntry(owner=g.owner, id="0x" + g.id.hex(), metadata=g.metadata)
            for g in await reader.active_gateways()
            if not g.paused
        ]

    return fetch


def fetch_providers(source: NetworkReader | ChainLink) -> Fetch:
    async def fetch() -> list[RegistryEntry]:
        reader = await _reader(source)
        return [
            RegistryEntry(owner=p.owner, id="0x" + p.id.hex(), model_id=p.model_id, metadata=p.metadata)
            for p in await reader.active_providers()
            if not p.paused
        ]

    return fetch


def fetch_schedulers(source: NetworkReader | ChainLink) -> Fetch:
    async def fetch() -> list[RegistryEntry]:
        reader = await _reader(source)
        return [RegistryEntry(owner=a) for a in await reader.active_schedulers()]

    return fetch
