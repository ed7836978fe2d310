"""A registry read from the chain, cached in memory, refreshed in the background (SPEC §8).

The request path only ever calls :meth:`CachedRegistry.contains`, a set lookup on a frozenset of
lower-case owners that is swapped whole on each successful refresh (no lock, no await). A failed
refresh keeps the last good data, is logged and counted; once the data is older than
``max_staleness`` the status says ``stale`` and the caller directory fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from math import inf
from typing import Final

from function_node.chain.snapshot import RegistryEntry, Snapshot, SnapshotStore
from function_node.errors import FxnError
from function_node.logs import get_logger
from function_node.metrics import NodeMetrics
from function_node.registry.base import RegistryStatus

__all__ = ["CachedRegistry", "Fetch"]

Fetch = Callable[[], Awaitable[Sequence[RegistryEntry]]]
DEFAULT_FETCH_TIMEOUT_S: Final = 60.0
# After a failed refresh the next try comes sooner than pollInterval (a node that started during an
# outage should not wait a whole interval), doubling from this up to pollInterval.
RETRY_MIN_S: Final = 1.0


class CachedRegistry:
    """Implements :class:`function_node.registry.base.Registry` over a fetch function.

    ``source`` names where the data comes from (e.g. ``router=0x…``); a snapshot from another source is
    never loaded. ``clock`` is injectable so tests can move time instead of sleeping.
    """

    def __init__(
        self,
        name: str,
        fetch: Fetch,
        *,
        source: str,
        poll_interval: float,
        max_staleness: float,
        metrics: NodeMetrics,
        snapshots: SnapshotStore | None = None,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.source = source
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        self.fetch_timeout = fetch_timeout
        self._fetch = fetch
        self._metrics = metrics
        self._snapshots = snapshots
        self._clock = clock
        self._log = get_logger("fxn.registry").bind(registry=name)
        self._owners: frozenset[str] = frozenset()
        self._entries: tuple[RegistryEntry, ...] = ()
        self._last_success: float | None = None
        self._error = ""
        self._task: asyncio.Task[None] | None = None
        self._status: RegistryStatus | None = None
        self._stale_at = inf

    # The request path -------------------------------------------------------------------------------
    def contains(self, address: str) -> bool:
        return address in self._owners

    def status(self) -> RegistryStatus:
        # On the request path (CallerDirectory.role_of): reuse the last answer until something changes
        # or the data turns stale, instead of building a new dataclass per request.
        cached = self._status
        if cached is not None and (cached.stale or self._clock() <= self._stale_at):
            return cached
        loaded = self._last_success is not None
        self._stale_at = (self._last_success + self.max_staleness) if self._last_success is not None else inf
        self._status = RegistryStatus(
            name=self.name,
            source="chain",
            loaded=loaded,
            stale=loaded and self._clock() > self._stale_at,
            entries=len(self._owners),
            last_success=self._last_success,
            error=self._error,
        )
        return self._status

    # Data for status and registration checks --------------------------------------------------------
    def entries(self) -> tuple[RegistryEntry, ...]:
        return self._entries

    def entries_of(self, owner: str) -> list[RegistryEntry]:
        owner = owner.lower()
        return [e for e in self._entries if e.owner == owner]

    # Loading ----------------------------------------------------------------------------------------
    def _install(self, entries: Sequence[RegistryEntry], fetched_at: float) -> bool:
        if self._last_success is not None and fetched_at < self._last_success:
            return False  # a slow, older fetch finishing after a newer one must not roll the data back
        self._entries = tuple(entries)
        self._owners = frozenset(e.owner.lower() for e in entries)
        self._last_success = fetched_at
        self._status = None
        self._metrics.registry_entries.labels(self.name).set(len(self._owners))
        self._metrics.registry_last_success.labels(self.name).set(fetched_at)
        return True

    def load_snapshot(self) -> bool:
        """Install the saved snapshot if there is one from this source and nothing newer is loaded."""
        if self._snapshots is None:
            return False
        snapshot = self._snapshots.load(self.name, self.source)
        if snapshot is None:
            if self._snapshots.path(self.name).exists():
                self._log.warning("registry_snapshot_ignored", path=str(self._snapshots.path(self.name)))
            return False
        if self._last_success is not None and self._last_success >= snapshot.fetched_at:
            return False
        self._install(snapshot.entries, snapshot.fetched_at)
        self._log.info(
            "registry_snapshot_loaded",
            entries=len(self._owners),
            age_s=round(self._clock() - snapshot.fetched_at, 1),
            stale=self.status().stale,
        )
        return True

    async def refresh(self) -> bool:
        """Fetch once; True on success. A failure keeps the old data, logs, and counts."""
        started = self._clock()
        try:
            async with asyncio.timeout(self.fetch_timeout):
                entries = await self._fetch()
        except (FxnError, TimeoutError) as exc:
            self._error = str(exc) if not isinstance(exc, TimeoutError) else "refresh timed out"
            return self._failed()
        except Exception as exc:  # a bug in one refresh must not stop the loop; say what it was
            self._error = f"{type(exc).__name__}: {exc}"
            return self._failed()
        if self._error:
            self._error, self._status = "", None
        if not self._install(entries, started):
            return True
        self._log.debug("registry_refreshed", entries=len(self._owners))
        if self._snapshots is not None:
            snapshot = Snapshot(self.name, self.source, started, tuple(entries))
            try:
                await asyncio.to_thread(self._snapshots.save, snapshot)
            except OSError as exc:  # the cache is a convenience; serving goes on without it
                self._log.warning("registry_snapshot_not_saved", error=str(exc))
        return True

    def _failed(self) -> bool:
        self._status = None
        self._metrics.registry_fetch_errors.labels(self.name).inc()
        self._log.warning(
            "registry_refresh_failed", error=self._error, kept_entries=len(self._owners), **self._age()
        )
        return False

    def _age(self) -> dict[str, float]:
        if self._last_success is None:
            return {}
        return {"age_s": round(self._clock() - self._last_success, 1)}

    # Background refresh -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Refresh every ``poll_interval`` until cancelled; after a failure retry sooner, backing off."""
        delay = self.poll_interval if self._error == "" else min(self.poll_interval, RETRY_MIN_S)
        while True:
            await asyncio.sleep(delay)
            if await self.refresh():
                delay = self.poll_interval
            else:
                delay = min(self.poll_interval, max(RETRY_MIN_S, delay * 2))

    def start(self) -> asyncio.Task[None]:
        """Start the refresh loop (idempotent); the task is kept here so it cannot be collected."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"registry-refresh-{self.name}")
        return self._task

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
