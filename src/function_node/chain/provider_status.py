"""What the chain says about every provider id an address owns, and whether each published URL answers.

``fxn provider status`` and ``fxn status`` both print this, so the two never disagree. The reads go in
JSON-RPC batches: an owner of 100 ids costs 301 ``eth_call`` requests in four round trips (an RPC that
refuses batches gets them one by one, a bounded number at a time). Each distinct URL in the metadata gets
one ``GET /health``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiohttp

from function_node.chain.client import ChainRevertError
from function_node.chain.contracts import NetworkReader, ProviderRecord
from function_node.chain.metadata import metadata_value, node_url_from_metadata
from function_node.errors import ChainError

__all__ = ["EntryStatus", "probe_urls", "read_entry_statuses"]

T = TypeVar("T")

_CONCURRENT_READS: Final = 16
_PROBE_TIMEOUT_S: Final = 3.0


@dataclass(frozen=True, slots=True)
class EntryStatus:
    """One provider id: its record, the registry's own flags, and its URL's answer (None: not probed)."""

    record: ProviderRecord
    registered: bool
    active: bool
    url: str | None
    url_reachable: bool | None = None

    @property
    def id_hex(self) -> str:
        return "0x" + self.record.id.hex()

    def as_json(self) -> dict[str, Any]:
        """The shape of ``fxn provider status --json`` (SPEC §8.1)."""
        return {
            "id": self.id_hex,
            "modelId": self.record.model_id,
            "registered": self.registered,
            "active": self.active,
            "paused": self.record.paused,
            "metadata": metadata_value(self.record.metadata),
            "url": self.url,
            "publicUrlReachable": self.url_reachable,
        }


async def _bounded(jobs: Iterable[Awaitable[T]]) -> list[T]:
    gate = asyncio.Semaphore(_CONCURRENT_READS)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def _entry(reader: NetworkReader, entry_id: bytes, at: str) -> tuple[ProviderRecord, bool, bool]:
    record, registered, active = await asyncio.gather(
        reader.provider(entry_id, at),
        reader.provider_registered(entry_id, at),
        reader.provider_active(entry_id, at),
    )
    return record, registered, active


async def read_entry_statuses(
    reader: NetworkReader, owner: str, *, probe: bool = True, at: str = ""
) -> list[EntryStatus]:
    """Every id ``owner`` holds (registry order), with its flags; ChainError if the chain cannot answer."""
    at = at or await reader.provider_registry()
    ids = await reader.provider_ids_by_owner(owner.lower(), at)
    try:
        rows = await reader.provider_entries(ids, at)
    except ChainRevertError:
        raise
    except ChainError:
        # Some RPC providers refuse JSON-RPC batches; one request per call still works everywhere.
        rows = await _bounded(_entry(reader, entry_id, at) for entry_id in ids)
    entries = [
        EntryStatus(record, registered, active, node_url_from_metadata(record.metadata))
        for record, registered, active in rows
    ]
    if not probe:
        return entries
    answers = await probe_urls({e.url for e in entries if e.url})
    return [
        EntryStatus(e.record, e.registered, e.active, e.url, answers.get(e.url) if e.url else None)
        for e in entries
    ]


async def probe_urls(urls: Iterable[str], limit_s: float = _PROBE_TIMEOUT_S) -> dict[str, bool]:
    """URL -> whether ``GET <url>/health`` answered 200 within ``limit_s``."""
    wanted = sorted(set(urls))
    if not wanted:
        return {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit_s)) as session:

        async def one(url: str) -> bool:
            try:
                async with session.get(url + "/health", allow_redirects=False) as resp:
                    return resp.status == 200
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
                return False

        results = await _bounded(one(u) for u in wanted)
    return dict(zip(wanted, results, strict=True))
