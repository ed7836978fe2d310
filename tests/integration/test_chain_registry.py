"""Cached chain registries and the RPC client against a real anvil: sync, failover, outage, snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from function_node.chain.client import ChainClient
from function_node.chain.snapshot import RegistryEntry, Snapshot, SnapshotStore
from function_node.config.settings import Settings
from function_node.devnet.anvil import AnvilProcess
from function_node.devnet.deploy import DEV_GATEWAY, DEV_PROVIDER, DEV_SCHEDULER, ProviderSpec
from function_node.devnet.process import ManagedProcess, free_port
from function_node.errors import ChainError, RegistryError
from function_node.metrics import NodeMetrics
from function_node.registry.directory import CallerRole
from function_node.registry.factory import RegistrySet, open_registries
from tests.fixtures.anvil import ChainNet

pytestmark = pytest.mark.integration


ANVIL_CHAIN_ID = 31337
INTRUDER = "0x" + "9" * 40  # a gateway that only a stale or foreign snapshot knows


def settings_for(chain: ChainNet, *rpc: str, chain_id: int = 0, **registry: object) -> Settings:
    doc: dict[str, object] = {
        "chainId": chain_id,
        "rpcProvider": list(rpc) or [chain.rpc_url],
        "registry": {
            "routerSmartContractAddress": chain.deployment.router,
            "gateway": {"pollInterval": "1h", "maxStaleness": "1h"},
            "provider": {"pollInterval": "1h", "maxStaleness": "1h"},
            "scheduler": {"pollInterval": "1h", "maxStaleness": "1h"},
            **registry,
        },
    }
    return Settings.model_validate(doc)


def fetch_errors(metrics: NodeMetrics, name: str) -> float:
    return metrics.registry.get_sample_value("fxn_registry_fetch_errors_total", {"registry": name}) or 0.0


@pytest.fixture
def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def silent_server(tmp_path: Path) -> Iterator[str]:
    """A TCP server that accepts and never answers: the per-call timeout has to fire."""
    port = free_port()
    code = (
        "import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        f"s.bind(('127.0.0.1',{port}));s.listen(16);c=[]\n"
        "while True: c.append(s.accept())"
    )
    import sys

    with ManagedProcess("silent", [sys.executable, "-c", code], tmp_path / "silent.log", port=port):
        yield f"http://127.0.0.1:{port}"


async def test_factory_loads_the_chain_registries(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    regs = await open_registries(
        settings_for(chain), fxn_home, metrics, node_address=DEV_PROVIDER.upper()[2:]
    )
    try:
        await regs.start()
        d = regs.directory
        assert d.role_of(DEV_GATEWAY) is CallerRole.GATEWAY
        assert d.role_of(DEV_SCHEDULER) is CallerRole.SCHEDULER
        assert d.role_of("0x" + "1" * 40) is None
        assert d.ready()
        assert {s.name: (s.source, s.entries) for s in d.statuses()} == {
            "gateway": ("chain", 1),
            "scheduler": ("chain", 1),
            "provider": ("chain", 1),
        }
        assert metrics.registry.get_sample_value("fxn_registry_entries", {"registry": "provider"}) == 1
        for name in ("gateway", "provider", "scheduler"):
            assert (fxn_home / "registry-cache" / f"{name}.json").exists()
    finally:
        await regs.close()


async def test_static_lists_sit_beside_the_chain(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    extra = "0x" + "e" * 40
    settings = settings_for(chain, static={"gateways": [extra], "schedulers": []})
    regs = await open_registries(settings, fxn_home, metrics)
    try:
        await regs.start()
        assert regs.directory.role_of(extra) is CallerRole.GATEWAY
        assert regs.directory.role_of(DEV_GATEWAY) is CallerRole.GATEWAY
        assert [s.name for s in regs.directory.statuses()] == [
            "gateway-static",
            "gateway",
            "scheduler",
            "provider",
        ]
    finally:
        await regs.close()


async def test_own_registration_is_logged_with_mismatch_warnings(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    regs = await open_registries(
        settings_for(chain), fxn_home, metrics, node_address=DEV_PROVIDER, model_ids=["2", "3"]
    )
    try:
        with capture_logs() as logs:
            await regs.start()
    finally:
        await regs.close()
    assert regs.registration is not None and regs.registration.active_model_ids == ["2"]
    active = [e for e in logs if e["event"] == "this node is an active provider"]
    assert active and active[0]["model_ids"] == ["2"]
    missing = [e for e in logs if e["event"].startswith("backend.yaml serves fxnId")]
    assert missing and missing[0]["fxn_ids"] == ["3"] and missing[0]["log_level"] == "warning"


async def test_unregistered_node_gets_a_warning(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    regs = await open_registries(settings_for(chain), fxn_home, metrics, node_address=DEV_GATEWAY)
    try:
        with capture_logs() as logs:
            await regs.start()
    finally:
        await regs.close()
    assert any(e["event"].startswith("this node's address is not an active provider") for e in logs)


async def test_pause_is_seen_on_the_next_refresh(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    regs = await open_registries(settings_for(chain), fxn_home, metrics)
    try:
        await regs.start()
        gateway = regs.chain_registry("gateway")
        assert gateway is not None and gateway.contains(DEV_GATEWAY)
        chain.admin.set_gateway_paused(DEV_GATEWAY, True)
        assert await gateway.refresh()
        assert not gateway.contains(DEV_GATEWAY)
        assert regs.directory.role_of(DEV_GATEWAY) is None
    finally:
        await regs.close()


async def test_rpc_outage_keeps_data_counts_errors_and_snapshot_survives_restart(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    settings = settings_for(chain)
    regs = await open_registries(settings, fxn_home, metrics)
    try:
        await regs.start()
        chain.anvil.stop()
        gateway = regs.chain_registry("gateway")
        assert gateway is not None
        assert not await gateway.refresh()
        assert fetch_errors(metrics, "gateway") == 1
        assert regs.directory.role_of(DEV_GATEWAY) is CallerRole.GATEWAY
        assert "failed on every RPC URL" in gateway.status().error
    finally:
        await regs.close()

    # A node started while the RPC is still down: snapshots make its callers known.
    restarted_metrics = NodeMetrics()
    again = await open_registries(settings, fxn_home, restarted_metrics)
    try:
        await again.start()
        assert again.directory.role_of(DEV_GATEWAY) is CallerRole.GATEWAY
        assert again.directory.role_of(DEV_SCHEDULER) is CallerRole.SCHEDULER
        assert again.directory.ready()
        # A fresh snapshot serves at once; the refresh that failed in the background is counted.
        restarted_gateway = again.chain_registry("gateway")
        assert restarted_gateway is not None and not await restarted_gateway.refresh()
        assert fetch_errors(restarted_metrics, "gateway") >= 1
    finally:
        await again.close()


def save_gateway_snapshot(home: Path, chain: ChainNet, chain_id: int, fetched_at: float) -> None:
    source = f"router={chain.deployment.router}"
    SnapshotStore(home).save(Snapshot("gateway", source, chain_id, fetched_at, (RegistryEntry(INTRUDER),)))


async def test_a_snapshot_stamped_a_year_ahead_does_not_hold_back_the_chain(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    # A home restored from a machine whose clock ran a year fast: its fresh-looking snapshot lists a
    # gateway the chain does not. The chain's answer must replace it at once, not be dropped as "older".
    import time

    save_gateway_snapshot(fxn_home, chain, ANVIL_CHAIN_ID, time.time() + 365 * 86400)
    regs = await open_registries(settings_for(chain, chain_id=ANVIL_CHAIN_ID), fxn_home, metrics)
    try:
        await regs.start()
        assert regs.directory.role_of(DEV_GATEWAY) is CallerRole.GATEWAY
        assert regs.directory.role_of(INTRUDER) is None
        gateway = regs.chain_registry("gateway")
        assert gateway is not None
        last = gateway.status().last_success
        assert last is not None and last <= time.time()
    finally:
        await regs.close()


@pytest.mark.parametrize("config_chain_id", [ANVIL_CHAIN_ID, 0])
async def test_a_snapshot_of_another_chain_is_never_served(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics, config_chain_id: int
) -> None:
    # Same Router address, another chain (anvil deploys to the same addresses on every chain).
    import time

    save_gateway_snapshot(fxn_home, chain, 1, time.time() - 10)
    settings = settings_for(chain, chain_id=config_chain_id)
    if config_chain_id:  # pinned: ignored at load, even with the RPC down
        chain.anvil.stop()
    regs = await open_registries(settings, fxn_home, metrics)
    try:
        with capture_logs() as logs:
            await regs.start()
        events = {e["event"]: e for e in logs if e.get("registry") == "gateway"}
        if config_chain_id:
            assert events["registry_snapshot_ignored"]["reason"] == (
                f"it came from chain id 1, config.yaml chainId is {ANVIL_CHAIN_ID}"
            )
            for caller in (INTRUDER, DEV_GATEWAY):  # nothing is known: fail closed
                with pytest.raises(RegistryError, match=r"gateway \(not loaded\)"):
                    regs.directory.role_of(caller)
        else:  # unpinned: dropped by the first RPC answer, before anything else is read
            assert events["registry_data_dropped"]["reason"] == (
                f"the data came from chain id 1, the rpcProvider serves {ANVIL_CHAIN_ID}"
            )
            assert regs.directory.role_of(INTRUDER) is None
            assert regs.directory.role_of(DEV_GATEWAY) is CallerRole.GATEWAY
    finally:
        await regs.close()


async def test_an_rpc_of_another_chain_than_chain_id_is_refused(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    regs = await open_registries(settings_for(chain, chain_id=1), fxn_home, metrics)
    try:
        await regs.start()
        gateway = regs.chain_registry("gateway")
        assert gateway is not None and not gateway.status().loaded
        assert gateway.status().error == (
            f"the rpcProvider serves chain id {ANVIL_CHAIN_ID}, but config.yaml says chainId: 1; point "
            "rpcProvider at that chain or correct chainId"
        )
        assert fetch_errors(metrics, "gateway") == 1
        assert not (fxn_home / "registry-cache" / "gateway.json").exists()
    finally:
        await regs.close()


async def test_no_snapshot_and_no_rpc_fails_closed(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    settings = settings_for(chain)
    chain.anvil.stop()
    regs = await open_registries(settings, fxn_home, metrics)
    try:
        with capture_logs() as logs:
            await regs.start()
        assert not regs.directory.ready()
        with pytest.raises(RegistryError, match=r"registry unavailable: .*gateway \(not loaded\)"):
            regs.directory.role_of(DEV_GATEWAY)
    finally:
        await regs.close()
    assert not any(e["event"] == "this node is an active provider" for e in logs)


async def test_second_rpc_url_is_used_when_the_first_is_dead(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics, dead_url: str
) -> None:
    regs: RegistrySet = await open_registries(settings_for(chain, dead_url, chain.rpc_url), fxn_home, metrics)
    try:
        await regs.start()
        assert regs.directory.role_of(DEV_GATEWAY) is CallerRole.GATEWAY
        assert regs.client is not None and regs.client.current_url == chain.rpc_url
        assert fetch_errors(metrics, "gateway") == 0
    finally:
        await regs.close()


async def test_client_failover_and_the_error_naming_every_url(chain: ChainNet, dead_url: str) -> None:
    async with ChainClient([dead_url, chain.rpc_url], retries=0) as client:
        assert await client.chain_id() == 31337
        assert client.current_url == chain.rpc_url
        assert await client.block_number() > 0  # the dead URL is skipped now
    other_dead = f"http://127.0.0.1:{free_port()}"
    async with ChainClient([dead_url, other_dead], retries=1, backoff=0.01) as client:
        with pytest.raises(ChainError) as info:
            await client.chain_id()
    message = str(info.value)
    assert message.startswith("eth_chainId failed on every RPC URL after 2 round(s): ")
    assert dead_url in message and other_dead in message


async def test_client_per_call_timeout(silent_server: str, chain: ChainNet) -> None:
    async with ChainClient([silent_server], timeout=1.0, retries=0) as client:
        with pytest.raises(ChainError, match=f"{silent_server}: timed out"):
            await client.block_number()
    async with ChainClient([silent_server, chain.rpc_url], timeout=1.0, retries=0) as client:
        assert await client.chain_id() == 31337


async def test_chain_registry_recovers_when_rpc_comes_back(
    tmp_path: Path, fxn_home: Path, metrics: NodeMetrics
) -> None:
    """anvil with a state file: stopped (outage) and restarted on the same port with the same chain."""
    from function_node.devnet.deploy import deploy_network

    port = free_port()
    state = tmp_path / "state.json"
    first = AnvilProcess(tmp_path / "anvil1.log", port=port, state_file=state)
    first.start()
    try:
        deployment = deploy_network(first.rpc_url, providers=[ProviderSpec(DEV_PROVIDER, 2)])
    finally:
        first.stop()
    settings = Settings.model_validate(
        {"rpcProvider": first.rpc_url, "registry": {"routerSmartContractAddress": deployment.router}}
    )
    regs = await open_registries(settings, fxn_home, metrics)
    try:
        await regs.start()  # RPC down, nothing cached: not loaded
        assert not regs.directory.ready()
        with AnvilProcess(tmp_path / "anvil2.log", port=port, state_file=state):
            for registry in regs.chain:
                assert await registry.refresh()
            assert regs.directory.ready()
            assert regs.directory.role_of(DEV_GATEWAY) is CallerRole.GATEWAY
    finally:
        await regs.close()


async def test_websocket_rpc_url(chain: ChainNet) -> None:
    async with ChainClient([chain.rpc_url.replace("http://", "ws://")]) as client:
        assert await client.chain_id() == 31337
        assert await client.block_number() > 0


async def test_scheduler_contract_without_router(
    chain: ChainNet, fxn_home: Path, metrics: NodeMetrics
) -> None:
    settings = Settings.model_validate(
        {
            "rpcProvider": chain.rpc_url,
            "registry": {"scheduler": {"contract": chain.deployment.scheduler_registry}},
            "schedulerAddress": [],
        }
    )
    regs = await open_registries(settings, fxn_home, metrics)
    try:
        await regs.start()
        assert [s.name for s in regs.directory.statuses()] == ["scheduler"]
        assert regs.directory.role_of(DEV_SCHEDULER) is CallerRole.SCHEDULER
        assert regs.directory.role_of(DEV_GATEWAY) is None  # no gateway registry configured at all
    finally:
        await regs.close()


async def test_no_chain_configured_means_static_only(fxn_home: Path, metrics: NodeMetrics) -> None:
    settings = Settings.model_validate({"registry": {"static": {"gateways": [DEV_GATEWAY]}}})
    regs = await open_registries(settings, fxn_home, metrics)
    try:
        await regs.start()
        assert regs.chain == [] and regs.client is None
        assert regs.directory.role_of(DEV_GATEWAY) is CallerRole.GATEWAY
    finally:
        await regs.close()
