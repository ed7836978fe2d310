"""The contracts and their typed reads, against a real anvil (tests/fixtures/anvil.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from function_node.chain.client import ChainClient, ChainRevertError
from function_node.chain.contracts import NetworkReader
from function_node.devnet.deploy import (
    DEV_GATEWAY,
    DEV_PROVIDER,
    DEV_SCHEDULER,
    ProviderSpec,
    RegistryAdmin,
    deploy_network,
)
from function_node.errors import ChainError
from function_node.node.registration import lookup_registration
from function_node.signing import LocalSigner
from tests.fixtures.anvil import DEV_MODEL_ID, ChainNet
from tests.fixtures.common import DEV_KEYS

pytestmark = pytest.mark.integration

STRANGER = LocalSigner.from_hex(DEV_KEYS[4]).address.lower()


@pytest.fixture
async def reader(chain: ChainNet) -> AsyncIterator[NetworkReader]:
    client = ChainClient([chain.rpc_url])
    try:
        yield NetworkReader(client, chain.deployment.router)
    finally:
        await client.close()


async def test_router_points_at_the_registries(chain: ChainNet, reader: NetworkReader) -> None:
    d = chain.deployment
    assert await reader.gateway_registry() == d.gateway_registry
    assert await reader.provider_registry() == d.provider_registry
    assert await reader.scheduler_registry() == d.scheduler_registry


async def test_dev_accounts_are_registered(reader: NetworkReader) -> None:
    gateways = await reader.active_gateways()
    assert [(g.owner, g.id, g.paused) for g in gateways] == [
        (DEV_GATEWAY, f"gateway:{DEV_GATEWAY}".encode(), False)
    ]
    assert gateways[0].registered_at > 0
    providers = await reader.active_providers()
    assert [(p.owner, p.model_id, p.metadata) for p in providers] == [
        (DEV_PROVIDER, DEV_MODEL_ID, '{"url": "http://127.0.0.1:1"}')
    ]
    assert await reader.active_schedulers() == [DEV_SCHEDULER]


async def test_paused_entries_leave_the_active_lists(chain: ChainNet, reader: NetworkReader) -> None:
    entry = ProviderSpec(DEV_PROVIDER, DEV_MODEL_ID).entry_id()
    chain.admin.set_gateway_paused(DEV_GATEWAY, True)
    chain.admin.set_provider_paused(entry, True)
    chain.admin.set_scheduler_paused(DEV_SCHEDULER, True)
    assert await reader.active_gateways() == []
    assert await reader.active_providers() == []
    assert await reader.active_schedulers() == []
    # Still readable one by one, flagged paused.
    assert (await reader.provider(entry)).paused
    chain.admin.set_gateway_paused(DEV_GATEWAY, False)
    chain.admin.set_scheduler_paused(DEV_SCHEDULER, False)
    assert [g.owner for g in await reader.active_gateways()] == [DEV_GATEWAY]
    assert await reader.active_schedulers() == [DEV_SCHEDULER]


async def test_own_registration_lists_model_ids_paused_included(
    chain: ChainNet, reader: NetworkReader
) -> None:
    chain.admin.register_providers([ProviderSpec(DEV_PROVIDER, 5, "second")])
    chain.admin.set_provider_paused(ProviderSpec(DEV_PROVIDER, 5).entry_id(), True)
    registration = await lookup_registration(reader, DEV_PROVIDER.upper().replace("0X", "0x"))
    assert registration.source == "chain" and registration.active
    assert registration.active_model_ids == ["2"]
    assert registration.paused_model_ids == ["5"]
    assert registration.mismatch(["2", "9"]) == (["9"], [])
    nobody = await lookup_registration(reader, STRANGER)
    assert not nobody.registered and not nobody.active


async def test_batch_registration_of_many_providers(chain: ChainNet, reader: NetworkReader) -> None:
    owners = [f"0x{i:040x}" for i in range(1, 251)]
    chain.admin.register_providers([ProviderSpec(o, i % 7, f"m{i}") for i, o in enumerate(owners)], batch=100)
    providers = await reader.active_providers()
    assert len(providers) == 251
    assert {p.owner for p in providers} == {*owners, DEV_PROVIDER}


async def test_duplicate_id_in_a_batch_is_skipped_with_log_error(chain: ChainNet) -> None:
    entry = ProviderSpec(DEV_PROVIDER, DEV_MODEL_ID).entry_id()
    with pytest.raises(
        ChainError,
        match=rf"1 of the entries were not registered; the first, {entry!r}: id is already registered",
    ):
        chain.admin.register_providers([ProviderSpec(DEV_PROVIDER, DEV_MODEL_ID)])


async def test_only_the_admin_registers_for_others(chain: ChainNet) -> None:
    stranger = RegistryAdmin(chain.rpc_url, DEV_KEYS[4], chain.deployment)
    try:
        with pytest.raises(
            ChainError,
            match=rf"transaction from {STRANGER} failed: this key \({STRANGER}\) lacks the admin role "
            r"\(DEFAULT_ADMIN_ROLE\)$",
        ):
            stranger.register_gateways([STRANGER])
        with pytest.raises(ChainError, match=r"lacks the pauser role \(PAUSER_ROLE\)$"):
            stranger.set_gateway_paused(DEV_GATEWAY, True)
        with pytest.raises(ChainError, match=r"lacks the admin role \(DEFAULT_ADMIN_ROLE\)$"):
            stranger.register_schedulers([STRANGER])
    finally:
        stranger.close()


async def test_an_owner_pauses_its_own_entry(chain: ChainNet, reader: NetworkReader) -> None:
    owner = RegistryAdmin(chain.rpc_url, DEV_KEYS[2], chain.deployment)  # DEV_PROVIDER's key
    try:
        owner.set_provider_paused(ProviderSpec(DEV_PROVIDER, DEV_MODEL_ID).entry_id(), True)
    finally:
        owner.close()
    assert await reader.active_providers() == []


async def test_router_without_scheduler_registry_reads_as_none(anvil: object, chain: ChainNet) -> None:
    admin = RegistryAdmin(chain.rpc_url, DEV_KEYS[0])
    try:
        from web3 import Web3

        router = admin.deploy(
            "Router",
            Web3.to_checksum_address(chain.deployment.gateway_registry),
            Web3.to_checksum_address(chain.deployment.provider_registry),
            "0x" + "0" * 40,
        )
    finally:
        admin.close()
    async with ChainClient([chain.rpc_url]) as client:
        reader = NetworkReader(client, router)
        assert await reader.scheduler_registry() == ""
        assert await reader.active_schedulers() == []
        # A configured scheduler registry wins over the Router's.
        override = NetworkReader(client, router, chain.deployment.scheduler_registry)
        assert await override.active_schedulers() == [DEV_SCHEDULER]


async def test_router_address_without_code_is_a_clear_error(chain: ChainNet) -> None:
    async with ChainClient([chain.rpc_url]) as client:
        reader = NetworkReader(client, STRANGER)
        with pytest.raises(ChainError, match=f"no contract answered at {STRANGER}"):
            await reader.active_gateways()


async def test_missing_function_is_a_revert_not_a_retry(chain: ChainNet) -> None:
    async with ChainClient([chain.rpc_url], retries=5, backoff=30) as client:
        # The gateway registry has no gatewayRegistry(): reverts at once (backoff=30 would hang the test).
        reader = NetworkReader(client, chain.deployment.gateway_registry)
        with pytest.raises(ChainRevertError, match=r"gatewayRegistry\(\) reverted on http://127\.0\.0\.1:"):
            await reader.gateway_registry()


def test_deploy_defaults_register_no_provider(anvil: object) -> None:
    from function_node.devnet.anvil import AnvilProcess

    assert isinstance(anvil, AnvilProcess)
    deployment = deploy_network(anvil.rpc_url)
    assert deployment.chain_id == 31337
    assert deployment.as_dict()["router"] == deployment.router


def test_dev_addresses_belong_to_the_dev_keys() -> None:
    from function_node.devnet.deploy import DEV_DEPLOYER_KEY

    derived = [LocalSigner.from_hex(k).address.lower() for k in DEV_KEYS[:3]]
    assert derived == [DEV_GATEWAY, DEV_SCHEDULER, DEV_PROVIDER]
    assert DEV_KEYS[0] == DEV_DEPLOYER_KEY


async def test_unknown_entries_and_bad_input_are_refused_with_reasons(chain: ChainNet) -> None:
    with pytest.raises(ChainError, match=r'the contract refused: "id is not registered"$'):
        chain.admin.set_gateway_paused(STRANGER, True)
    with pytest.raises(ChainError, match=r'the contract refused: "id is not registered"$'):
        chain.admin.set_provider_paused(b"no-such-id", True)
    with pytest.raises(ChainError, match=rf"the contract refused with UnknownScheduler\({STRANGER}\)$"):
        chain.admin.set_scheduler_paused(STRANGER, True)
    with pytest.raises(ChainError, match=r'the contract refused: "owner is the zero address"$'):
        chain.admin.register_gateways(["0x" + "0" * 40])
    with pytest.raises(ChainError, match=rf"the contract refused with AlreadyRegistered\({DEV_SCHEDULER}\)$"):
        chain.admin.register_schedulers([DEV_SCHEDULER])


def test_admin_without_deployment_says_so(anvil: object) -> None:
    from function_node.devnet.anvil import AnvilProcess

    assert isinstance(anvil, AnvilProcess)
    admin = RegistryAdmin(anvil.rpc_url, DEV_KEYS[0])
    try:
        with pytest.raises(ChainError, match="no deployment: call deploy_network first or pass deployment="):
            admin.register_gateways([DEV_GATEWAY])
    finally:
        admin.close()


def test_missing_tools_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from function_node.devnet.anvil import find_anvil
    from function_node.devnet.solc import SolcError, find_solcjs

    monkeypatch.setenv("FXN_ANVIL", str(tmp_path / "anvil"))
    monkeypatch.setenv("FXN_SOLCJS", str(tmp_path / "solcjs"))
    with pytest.raises(FileNotFoundError, match=f"anvil not found at {tmp_path / 'anvil'}; run `npm ci`"):
        find_anvil()
    with pytest.raises(SolcError, match=f"solcjs not found at {tmp_path / 'solcjs'}; run `npm ci`"):
        find_solcjs()
