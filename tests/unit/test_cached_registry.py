"""CachedRegistry logic in-process: lookups, failed refreshes, staleness, snapshots, the refresh loop.

The fetch function here is a scripted coroutine (the chain side is tested against anvil in
tests/integration/test_chain_registry.py); the clock is injected so staleness needs no sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from function_node.chain.cached import CachedRegistry
from function_node.chain.snapshot import RegistryEntry, Snapshot, SnapshotStore
from function_node.errors import ChainError, RegistryError
from function_node.metrics import NodeMetrics
from function_node.registry.base import Registry
from function_node.registry.directory import CallerDirectory, CallerRole
from function_node.registry.static import StaticRegistry

A = "0x" + "a" * 40
B = "0x" + "b" * 40
C = "0x" + "c" * 40


class Clock:
    """A wall clock and a monotonic one. ``now += s`` is time passing (both move); ``set_wall`` steps
    the wall clock alone, as NTP or an operator does."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self._wall = now
        self._mono = 500.0

    @property
    def now(self) -> float:
        return self._wall

    @now.setter
    def now(self, value: float) -> None:
        self._mono += value - self._wall
        self._wall = value

    def set_wall(self, value: float) -> None:
        self._wall = value

    def __call__(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono


class ScriptedFetch:
    """Answers with the next item of ``script``: a list of entries, or an exception to raise."""

    def __init__(self, *script: Sequence[RegistryEntry] | Exception) -> None:
        self.script = list(script)
        self.calls = 0
        self._called = asyncio.Condition()

    async def wait_calls(self, n: int) -> None:
        async with self._called:
            await self._called.wait_for(lambda: self.calls >= n)

    async def __call__(self) -> Sequence[RegistryEntry]:
        async with self._called:
            self.calls += 1
            self._called.notify_all()
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item


def make(
    fetch: ScriptedFetch,
    metrics: NodeMetrics,
    clock: Clock,
    store: SnapshotStore | None = None,
    *,
    source: str = "router=0x1",
    poll: float = 60.0,
    staleness: float = 3600.0,
    chain: ChainIds | None = None,
    expected_chain_id: int = 0,
) -> CachedRegistry:
    return CachedRegistry(
        "gateway",
        fetch,
        source=source,
        poll_interval=poll,
        max_staleness=staleness,
        metrics=metrics,
        snapshots=store,
        chain_id=chain,
        expected_chain_id=expected_chain_id,
        clock=clock,
        monotonic=clock.monotonic,
    )


class ChainIds:
    """The chain id an RPC reports: ``value`` can change, as when rpcProvider is pointed elsewhere."""

    def __init__(self, value: int) -> None:
        self.value = value

    async def __call__(self) -> int:
        return self.value


def sample(metrics: NodeMetrics, name: str, registry: str = "gateway") -> float | None:
    return metrics.registry.get_sample_value(name, {"registry": registry})


async def test_implements_the_registry_protocol(metrics: NodeMetrics) -> None:
    assert isinstance(make(ScriptedFetch([]), metrics, Clock()), Registry)


async def test_not_loaded_before_the_first_refresh(metrics: NodeMetrics) -> None:
    registry = make(ScriptedFetch([RegistryEntry(A)]), metrics, Clock())
    status = registry.status()
    assert (status.loaded, status.stale, status.entries, status.usable) == (False, False, 0, False)
    assert not registry.contains(A)


async def test_refresh_loads_owners_lowercased_and_sets_metrics(metrics: NodeMetrics) -> None:
    clock = Clock()
    registry = make(
        ScriptedFetch([RegistryEntry(A.upper().replace("0X", "0x")), RegistryEntry(B)]), metrics, clock
    )
    assert await registry.refresh()
    assert registry.contains(A) and registry.contains(B) and not registry.contains(C)
    status = registry.status()
    assert (status.loaded, status.stale, status.entries, status.last_success) == (True, False, 2, clock.now)
    assert sample(metrics, "fxn_registry_entries") == 2
    assert sample(metrics, "fxn_registry_last_success_timestamp_seconds") == clock.now


async def test_two_entries_of_one_owner_count_once(metrics: NodeMetrics) -> None:
    registry = make(
        ScriptedFetch([RegistryEntry(A, id="0x01"), RegistryEntry(A, id="0x02")]), metrics, Clock()
    )
    await registry.refresh()
    assert registry.status().entries == 1
    assert [e.id for e in registry.entries_of(A)] == ["0x01", "0x02"]


async def test_failed_refresh_keeps_last_good_data_logs_and_counts(metrics: NodeMetrics) -> None:
    clock = Clock()
    registry = make(ScriptedFetch([RegistryEntry(A)], ChainError("rpc down at http://x")), metrics, clock)
    assert await registry.refresh()
    clock.now += 10
    with capture_logs() as logs:
        assert not await registry.refresh()
    assert registry.contains(A)
    status = registry.status()
    assert status.loaded and not status.stale and status.error == "rpc down at http://x"
    assert status.last_success == clock.now - 10
    assert sample(metrics, "fxn_registry_fetch_errors_total") == 1
    failed = [e for e in logs if e["event"] == "registry_refresh_failed"]
    assert failed and failed[0]["log_level"] == "warning" and failed[0]["kept_entries"] == 1


async def test_unexpected_exception_in_fetch_is_counted_not_raised(metrics: NodeMetrics) -> None:
    registry = make(ScriptedFetch(KeyError("boom")), metrics, Clock())
    assert not await registry.refresh()
    assert registry.status().error == "KeyError: 'boom'"
    assert sample(metrics, "fxn_registry_fetch_errors_total") == 1


async def test_success_after_failure_clears_the_error(metrics: NodeMetrics) -> None:
    registry = make(ScriptedFetch(ChainError("down"), [RegistryEntry(B)]), metrics, Clock())
    assert not await registry.refresh()
    assert await registry.refresh()
    assert registry.status().error == "" and registry.contains(B)


async def test_stale_after_max_staleness_and_directory_fails_closed(metrics: NodeMetrics) -> None:
    clock = Clock()
    registry = make(ScriptedFetch([RegistryEntry(A)], ChainError("down")), metrics, clock, staleness=100)
    await registry.refresh()
    directory = CallerDirectory(gateways=[registry])
    assert directory.role_of(A) is CallerRole.GATEWAY
    clock.now += 100
    assert not registry.status().stale  # exactly at the limit: still trusted
    clock.now += 1
    await registry.refresh()
    assert registry.status().stale and not registry.status().usable
    with pytest.raises(RegistryError, match=r"registry unavailable: gateway \(stale\)"):
        directory.role_of(A)


async def test_static_list_still_admits_its_callers_when_chain_is_stale(metrics: NodeMetrics) -> None:
    clock = Clock()
    registry = make(ScriptedFetch([RegistryEntry(A)]), metrics, clock, staleness=1)
    await registry.refresh()
    clock.now += 5
    directory = CallerDirectory(gateways=[StaticRegistry("gateway-static", [C]), registry])
    assert directory.role_of(C) is CallerRole.GATEWAY
    with pytest.raises(RegistryError):
        directory.role_of(B)


async def test_refresh_writes_a_snapshot_that_a_new_instance_loads(
    metrics: NodeMetrics, tmp_path: Path
) -> None:
    clock = Clock()
    store = SnapshotStore(tmp_path)
    first = make(
        ScriptedFetch([RegistryEntry(A, id="0x01", model_id=7, metadata="m")]), metrics, clock, store
    )
    await first.refresh()
    saved = json.loads((tmp_path / "registry-cache" / "gateway.json").read_text())
    assert saved["source"] == "router=0x1" and saved["fetchedAt"] == clock.now
    clock.now += 50
    second = make(ScriptedFetch(ChainError("down")), metrics, clock, store)
    with capture_logs() as logs:
        assert second.load_snapshot()
    assert second.contains(A)
    assert second.entries() == (RegistryEntry(A, id="0x01", model_id=7, metadata="m"),)
    assert second.status().last_success == clock.now - 50  # the snapshot's age counts
    assert [e["age_s"] for e in logs if e["event"] == "registry_snapshot_loaded"] == [50.0]


async def test_old_snapshot_loads_as_stale(metrics: NodeMetrics, tmp_path: Path) -> None:
    clock = Clock()
    store = SnapshotStore(tmp_path)
    store.save(Snapshot("gateway", "router=0x1", 0, clock.now - 7200, (RegistryEntry(A),)))
    registry = make(ScriptedFetch([]), metrics, clock, store, staleness=3600)
    assert registry.load_snapshot()
    assert registry.status().loaded and registry.status().stale


async def test_snapshot_from_another_network_is_ignored(metrics: NodeMetrics, tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save(Snapshot("gateway", "router=0xother", 0, 1.0, (RegistryEntry(A),)))
    registry = make(ScriptedFetch([]), metrics, Clock(), store)
    with capture_logs() as logs:
        assert not registry.load_snapshot()
    assert not registry.contains(A) and not registry.status().loaded
    assert any(e["event"] == "registry_snapshot_ignored" for e in logs)


async def test_corrupt_snapshot_is_ignored(metrics: NodeMetrics, tmp_path: Path) -> None:
    (tmp_path / "registry-cache").mkdir()
    (tmp_path / "registry-cache" / "gateway.json").write_text('{"format": 1, "source": "router=0x1", "entr')
    registry = make(ScriptedFetch([]), metrics, Clock(), SnapshotStore(tmp_path))
    assert not registry.load_snapshot()
    assert not registry.status().loaded


async def test_missing_snapshot_loads_nothing_quietly(metrics: NodeMetrics, tmp_path: Path) -> None:
    registry = make(ScriptedFetch([]), metrics, Clock(), SnapshotStore(tmp_path))
    with capture_logs() as logs:
        assert not registry.load_snapshot()
    assert logs == []


async def test_snapshot_save_leaves_no_temporary_files(metrics: NodeMetrics, tmp_path: Path) -> None:
    registry = make(ScriptedFetch([RegistryEntry(A)]), metrics, Clock(), SnapshotStore(tmp_path))
    await registry.refresh()
    await registry.refresh()
    assert sorted(p.name for p in (tmp_path / "registry-cache").iterdir()) == ["gateway.json"]


async def test_snapshot_older_than_loaded_data_is_not_installed(metrics: NodeMetrics, tmp_path: Path) -> None:
    clock = Clock()
    store = SnapshotStore(tmp_path)
    store.save(Snapshot("gateway", "router=0x1", 0, clock.now - 10, (RegistryEntry(B),)))
    registry = make(ScriptedFetch([RegistryEntry(A)]), metrics, clock, None)
    await registry.refresh()
    registry._snapshots = store
    assert not registry.load_snapshot()
    assert registry.contains(A) and not registry.contains(B)


async def test_a_slow_older_fetch_does_not_roll_data_back(metrics: NodeMetrics) -> None:
    clock = Clock()
    release = asyncio.Event()

    class Slow:
        calls = 0

        async def __call__(self) -> list[RegistryEntry]:
            self.calls += 1
            if self.calls == 1:
                await release.wait()
                return [RegistryEntry(A)]
            return [RegistryEntry(B)]

    registry = CachedRegistry(
        "gateway",
        Slow(),
        source="s",
        poll_interval=60,
        max_staleness=60,
        metrics=metrics,
        clock=clock,
        monotonic=clock.monotonic,
    )
    slow = asyncio.create_task(registry.refresh())
    await asyncio.sleep(0)
    clock.now += 1
    assert await registry.refresh()
    release.set()
    assert await slow
    assert registry.contains(B) and not registry.contains(A)


async def test_background_loop_refreshes_and_close_stops_it(metrics: NodeMetrics) -> None:
    fetch = ScriptedFetch([RegistryEntry(A)])
    registry = make(fetch, metrics, Clock(), poll=0.01)
    task = registry.start()
    assert registry.start() is task
    await fetch.wait_calls(3)
    await registry.close()
    assert task.cancelled()
    calls = fetch.calls
    await asyncio.sleep(0.05)
    assert fetch.calls == calls and registry.contains(A)


async def test_after_a_failure_the_loop_retries_before_poll_interval(
    metrics: NodeMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("function_node.chain.cached.RETRY_MIN_S", 0.01)
    fetch = ScriptedFetch(ChainError("down"), [RegistryEntry(A)])
    registry = make(fetch, metrics, Clock(), poll=3600)
    assert not await registry.refresh()
    registry.start()
    try:
        await fetch.wait_calls(2)
        await asyncio.sleep(0)  # let refresh() install what the second fetch returned
    finally:
        await registry.close()
    assert fetch.calls == 2 and registry.contains(A)


async def test_status_turns_fresh_again_after_a_refresh_and_tracks_errors(metrics: NodeMetrics) -> None:
    clock = Clock()
    fetch = ScriptedFetch([RegistryEntry(A)], ChainError("down"), [RegistryEntry(A), RegistryEntry(B)])
    registry = make(fetch, metrics, clock, staleness=10)
    await registry.refresh()
    first = registry.status()
    assert registry.status() is first  # unchanged state: the same answer, no new object
    clock.now += 11
    assert registry.status().stale
    await registry.refresh()
    assert registry.status().stale and registry.status().error == "down"
    await registry.refresh()
    status = registry.status()
    assert (status.stale, status.error, status.entries, status.last_success) == (False, "", 2, clock.now)


# --- time and network identity (SPEC §8): a future stamp, a clock stepped back, another chain ------


YEAR = 365 * 86400.0


async def test_a_snapshot_stamped_in_the_future_counts_as_fetched_now(
    metrics: NodeMetrics, tmp_path: Path
) -> None:
    clock = Clock()
    store = SnapshotStore(tmp_path)
    store.save(Snapshot("gateway", "router=0x1", 0, clock.now + YEAR, (RegistryEntry(B),)))
    registry = make(
        ScriptedFetch(ChainError("down"), [RegistryEntry(A)]), metrics, clock, store, staleness=60
    )
    with capture_logs() as logs:
        assert registry.load_snapshot()
    assert [(e["event"], e["ahead_s"]) for e in logs if "future" in e["event"]] == [
        ("registry_snapshot_from_the_future", YEAR)
    ]
    assert registry.status().last_success == clock.now  # clamped, not a year ahead
    assert not await registry.refresh()
    clock.now += 61
    assert registry.status().stale  # it ages like any snapshot: trusted for maxStaleness, not a year
    # The next fetch is not "older" than the future stamp: it replaces the snapshot's data.
    assert await registry.refresh()
    assert registry.contains(A) and not registry.contains(B)
    assert not registry.status().stale


async def test_a_wall_clock_stepped_back_neither_drops_fetches_nor_delays_staleness(
    metrics: NodeMetrics,
) -> None:
    clock = Clock()
    registry = make(
        ScriptedFetch([RegistryEntry(A)], [RegistryEntry(B)], ChainError("down")),
        metrics,
        clock,
        staleness=60,
    )
    assert await registry.refresh()
    clock.set_wall(clock.now - YEAR)  # the operator fixes a clock that ran a year ahead
    clock.now += 1
    assert await registry.refresh()
    assert registry.contains(B) and not registry.contains(A)
    assert not await registry.refresh()
    clock.now += 61
    assert registry.status().stale
    clock.set_wall(clock.now - YEAR)  # stepping the wall clock back again does not make the data fresh
    assert registry.status().stale


async def test_refresh_records_the_chain_id_in_the_snapshot(metrics: NodeMetrics, tmp_path: Path) -> None:
    registry = make(
        ScriptedFetch([RegistryEntry(A)]), metrics, Clock(), SnapshotStore(tmp_path), chain=ChainIds(8453)
    )
    assert await registry.refresh()
    saved = json.loads((tmp_path / "registry-cache" / "gateway.json").read_text())
    assert (saved["format"], saved["source"], saved["chainId"]) == (2, "router=0x1", 8453)


@pytest.mark.parametrize(
    ("saved", "reason"),
    [
        (
            Snapshot("gateway", "router=0x2", 1, 999_000.0, (RegistryEntry(A),)),
            "it was read through router=0x2, this node reads router=0x1",
        ),
        (
            Snapshot("gateway", "router=0x1", 8453, 999_000.0, (RegistryEntry(A),)),
            "it came from chain id 8453, config.yaml chainId is 1",
        ),
        (
            Snapshot("gateway", "router=0x1", 0, 999_000.0, (RegistryEntry(A),)),
            "it came from chain id 0, config.yaml chainId is 1",
        ),
    ],
)
async def test_a_snapshot_of_another_contract_or_chain_is_ignored(
    metrics: NodeMetrics, tmp_path: Path, saved: Snapshot, reason: str
) -> None:
    store = SnapshotStore(tmp_path)
    store.save(saved)
    registry = make(ScriptedFetch(ChainError("down")), metrics, Clock(), store, expected_chain_id=1)
    with capture_logs() as logs:
        assert not registry.load_snapshot()
    assert [e["reason"] for e in logs if e["event"] == "registry_snapshot_ignored"] == [reason]
    assert not registry.status().loaded and not registry.contains(A)


async def test_a_format_1_snapshot_without_a_chain_id_is_ignored(
    metrics: NodeMetrics, tmp_path: Path
) -> None:
    (tmp_path / "registry-cache").mkdir()
    (tmp_path / "registry-cache" / "gateway.json").write_text(
        json.dumps(
            {"format": 1, "name": "gateway", "source": "router=0x1", "fetchedAt": 999_999.0, "entries": []}
        )
    )
    registry = make(ScriptedFetch([]), metrics, Clock(), SnapshotStore(tmp_path))
    with capture_logs() as logs:
        assert not registry.load_snapshot()
    assert [e["reason"] for e in logs if e["event"] == "registry_snapshot_ignored"] == [
        "unreadable or old format"
    ]


async def test_an_rpc_of_another_chain_drops_a_snapshot_of_the_first(
    metrics: NodeMetrics, tmp_path: Path
) -> None:
    # No chainId in config: the snapshot is matched on its contract, then its chain id is checked
    # against the first RPC that answers; data of the wrong chain is not served a moment longer.
    store = SnapshotStore(tmp_path)
    store.save(Snapshot("gateway", "router=0x1", 1, 999_990.0, (RegistryEntry(A),)))
    rpc = ChainIds(8453)
    registry = make(ScriptedFetch(ChainError("registry call reverted")), metrics, Clock(), store, chain=rpc)
    assert registry.load_snapshot() and registry.contains(A)
    with capture_logs() as logs:
        assert not await registry.refresh()
    assert [e["reason"] for e in logs if e["event"] == "registry_data_dropped"] == [
        "the data came from chain id 1, the rpcProvider serves 8453"
    ]
    assert not registry.contains(A) and not registry.status().loaded
    assert sample(metrics, "fxn_registry_entries") == 0


async def test_an_rpc_serving_a_chain_other_than_chain_id_fails_the_refresh(metrics: NodeMetrics) -> None:
    fetch = ScriptedFetch([RegistryEntry(A)])
    registry = make(fetch, metrics, Clock(), chain=ChainIds(8453), expected_chain_id=1)
    assert not await registry.refresh()
    assert registry.status().error == (
        "the rpcProvider serves chain id 8453, but config.yaml says chainId: 1; point rpcProvider at that "
        "chain or correct chainId"
    )
    assert fetch.calls == 0 and not registry.contains(A)
    assert sample(metrics, "fxn_registry_fetch_errors_total") == 1
