"""A registry read from the chain, cached in memory, refreshed in the background (SPEC §8).

The request path only ever calls :meth:`CachedRegistry.contains`, a set lookup on a frozenset of
lower-case owners that is swapped whole on each successful refresh (no lock, no await). A failed
refresh keeps the last good data, is logged and counted; once the data is older than
``max_staleness`` the status says ``stale`` and the caller directory fails closed.

Age is measured on the monotonic clock, which cannot run backwards: the wall clock only stamps what is
exported and saved. A snapshot stamped in the future (a restored VM, a copied home, a clock that was
wrong when it was written) counts as fetched now, never as fresh until that future date; and the data
records the chain id it came from, so a snapshot or an RPC of another chain is never trusted (SPEC §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from math import inf
from typing import Final

from function_node.chain.snapshot import RegistryEntry, Snapshot, SnapshotStore
from function_node.errors import ChainError, FxnError
from function_node.logs import get_logger
from function_node.metrics import NodeMetrics
from function_node.registry.base import RegistryStatus

__all__ = ["CachedRegistry", "ChainIdReader", "Fetch"]

Fetch = Callable[[], Awaitable[Sequence[RegistryEntry]]]
ChainIdReader = Callable[[], Awaitable[int]]
DEFAULT_FETCH_TIMEOUT_S: Final = 60.0
# After a failed refresh the next try comes sooner than pollInterval (a node that started during an
# outage should not wait a whole interval), doubling from this up to pollInterval.
RETRY_MIN_S: Final = 1.0


class CachedRegistry:
    """Implements :class:`function_node.registry.base.Registry` over a fetch function.

    ``source`` names the configured contract the data is read through (e.g. ``router=0x…``);
    ``chain_id`` reads the chain id the RPC serves, once per refresh; with ``expected_chain_id`` set
    (config.yaml ``chainId``) any other chain is a failed refresh. A snapshot from another source or
    chain is never loaded. ``clock`` (wall) and ``monotonic`` are injectable so tests move time
    instead of sleeping.
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
        chain_id: ChainIdReader | None = None,
        expected_chain_id: int = 0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.source = source
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        self.fetch_timeout = fetch_timeout
        self._fetch = fetch
        self._metrics = metrics
        self._snapshots = snapshots
        self._read_chain_id = chain_id
        self.expected_chain_id = expected_chain_id
        self._clock = clock
        self._monotonic = monotonic
        self._log = get_logger("fxn.registry").bind(registry=name)
        self._owners: frozenset[str] = frozenset()
        self._entries: tuple[RegistryEntry, ...] = ()
        self._last_success: float | None = None  # wall clock, clamped: what status and metrics show
        self._fresh_since: float | None = None  # monotonic time the installed data was fetched at
        self._data_chain_id = 0
        self._error = ""
        self._task: asyncio.Task[None] | None = None
        self._status: RegistryStatus | None = None
        self._stale_at = inf  # monotonic

    # The request path -------------------------------------------------------------------------------
    def contains(self, address: str) -> bool:
        return address in self._owners

    def status(self) -> RegistryStatus:
        # On the request path (CallerDirectory.role_of): reuse the last answer until something changes
        # or the data turns stale, instead of building a new dataclass per request.
        cached = self._status
        now = self._monotonic()
        if cached is not None and (cached.stale or now <= self._stale_at):
            return cached
        fresh_since = self._fresh_since
        self._stale_at = inf if fresh_since is None else fresh_since + self.max_staleness
        self._status = RegistryStatus(
            name=self.name,
            source="chain",
            loaded=fresh_since is not None,
            stale=now > self._stale_at,
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
    def _install(
        self, entries: Sequence[RegistryEntry], fetched_at: float, fresh_since: float, chain_id: int
    ) -> bool:
        if self._fresh_since is not None and fresh_since < self._fresh_since:
            return False  # a slow, older fetch finishing after a newer one must not roll the data back
        self._entries = tuple(entries)
        self._owners = frozenset(e.owner.lower() for e in entries)
        self._last_success = fetched_at
        self._fresh_since = fresh_since
        self._data_chain_id = chain_id
        self._status = None
        self._metrics.registry_entries.labels(self.name).set(len(self._owners))
        self._metrics.registry_last_success.labels(self.name).set(fetched_at)
        return True

    def _drop(self, reason: str) -> None:
        """Forget the installed data (it is of another chain): the registry fails closed until a refresh."""
        self._log.warning("registry_data_dropped", reason=reason, dropped_entries=len(self._owners))
        self._entries, self._owners = (), frozenset()
        self._last_success = self._fresh_since = None
        self._data_chain_id = 0
        self._status = None
        self._metrics.registry_entries.labels(self.name).set(0)

    def _foreign(self, snapshot: Snapshot) -> str:
        """Why ``snapshot`` is not this registry's data, or "" if it is."""
        if snapshot.source.lower() != self.source.lower():
            return f"it was read through {snapshot.source}, this node reads {self.source}"
        if self.expected_chain_id and snapshot.chain_id != self.expected_chain_id:
            return (
                f"it came from chain id {snapshot.chain_id}, config.yaml chainId is {self.expected_chain_id}"
            )
        return ""

    def load_snapshot(self) -> bool:
        """Install the saved snapshot if it is this registry's and nothing is loaded yet."""
        if self._snapshots is None or self._fresh_since is not None:
            return False
        path = self._snapshots.path(self.name)
        snapshot = self._snapshots.load(self.name)
        if snapshot is None:
            if path.exists():
                self._log.warning(
                    "registry_snapshot_ignored", path=str(path), reason="unreadable or old format"
                )
            return False
        reason = self._foreign(snapshot)
        if reason:
            self._log.warning("registry_snapshot_ignored", path=str(path), reason=reason)
            return False
        now = self._clock()
        if snapshot.fetched_at > now:
            self._log.warning(
                "registry_snapshot_from_the_future",
                path=str(path),
                ahead_s=round(snapshot.fetched_at - now, 1),
                note="counted as fetched now",
            )
        fetched_at = min(snapshot.fetched_at, now)
        self._install(snapshot.entries, fetched_at, self._monotonic() - (now - fetched_at), snapshot.chain_id)
        self._log.info(
            "registry_snapshot_loaded",
            entries=len(self._owners),
            chain_id=snapshot.chain_id or None,
            age_s=round(now - fetched_at, 1),
            stale=self.status().stale,
        )
        return True

    async def _chain_id(self) -> int:
        """The RPC's chain id (0 without a reader); a chain other than the data's drops the data."""
        if self._read_chain_id is None:
            return 0
        chain_id = await self._read_chain_id()
        if self.expected_chain_id and chain_id != self.expected_chain_id:
            raise ChainError(
                f"the rpcProvider serves chain id {chain_id}, but config.yaml says chainId: "
                f"{self.expected_chain_id}; point rpcProvider at that chain or correct chainId"
            )
        if self._data_chain_id and chain_id != self._data_chain_id:
            self._drop(
                f"the data came from chain id {self._data_chain_id}, the rpcProvider serves {chain_id}"
            )
        return chain_id

    async def refresh(self) -> bool:
        """Fetch once; True on success. A failure keeps the old data, logs, and counts."""
        started, started_mono = self._clock(), self._monotonic()
        try:
            async with asyncio.timeout(self.fetch_timeout):
                chain_id = await self._chain_id()
                entries = await self._fetch()
        except (FxnError, TimeoutError) as exc:
            self._error = str(exc) if not isinstance(exc, TimeoutError) else "refresh timed out"
            return self._failed()
        except Exception as exc:  # a bug in one refresh must not stop the loop; say what it was
            self._error = f"{type(exc).__name__}: {exc}"
            return self._failed()
        if self._error:
            self._error, self._status = "", None
        if not self._install(entries, started, started_mono, chain_id):
            return True
        self._log.debug("registry_refreshed", entries=len(self._owners))
        if self._snapshots is not None:
            snapshot = Snapshot(self.name, self.source, chain_id, started, tuple(entries))
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
        if self._fresh_since is None:
            return {}
        return {"age_s": round(self._monotonic() - self._fresh_since, 1)}

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
