"""The devnet's registries behave as SPEC §8.1 says, called through the live ABI on a real anvil.

Each test sends the live functions (``register``, ``pause(bytes)``, ``updateMetadata`` …) as the key that
would send them on the network, then checks the chain: flags, lists, counters, events, revert reasons.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import MismatchedABI

from function_node.chain.compiled import load_abi
from function_node.devnet.deploy import DEV_DEPLOYER_KEY, RegistryAdmin
from function_node.errors import ChainError
from function_node.signing import LocalSigner
from tests.fixtures.anvil import DEV_MODEL_ID, ChainNet
from tests.fixtures.common import DEV_KEYS

pytestmark = pytest.mark.integration

PAUSER_ROLE = bytes(keccak(b"PAUSER_ROLE"))
ADMIN_ROLE = bytes(32)
OWNER = LocalSigner.from_hex(DEV_KEYS[3])  # funded, registered nowhere yet
OTHER = LocalSigner.from_hex(DEV_KEYS[2])  # funded, the fixture's provider
NO_STAKING = 'the contract refused: "staking is not available on the devnet; use register"'


@pytest.fixture
def owner(chain: ChainNet) -> Iterator[RegistryAdmin]:
    key = RegistryAdmin(chain.rpc_url, DEV_KEYS[3], chain.deployment)
    try:
        yield key
    finally:
        key.close()


@pytest.fixture
def other(chain: ChainNet) -> Iterator[RegistryAdmin]:
    key = RegistryAdmin(chain.rpc_url, DEV_KEYS[2], chain.deployment)
    try:
        yield key
    finally:
        key.close()


def events(
    chain: ChainNet, receipt: dict[str, Any], contract: str = "ProviderRegistry"
) -> list[tuple[str, Any]]:
    """(name, args) of every event the registry emitted in ``receipt``, in order."""
    address = getattr(
        chain.deployment, "provider_registry" if contract == "ProviderRegistry" else "gateway_registry"
    )
    w3 = Web3()
    decoder = w3.eth.contract(abi=load_abi(contract))
    out: list[tuple[str, Any]] = []
    for log in receipt["logs"]:
        if str(log["address"]).lower() != address:
            continue
        for item in (i for i in load_abi(contract) if i["type"] == "event"):
            try:
                decoded = decoder.events[item["name"]]().process_log(log)
            except MismatchedABI:  # another event of the same contract
                continue
            out.append((decoded["event"], dict(decoded["args"])))
            break
    return out


def test_register_by_the_owner_emits_the_live_events_and_sets_every_view(
    chain: ChainNet, owner: RegistryAdmin
) -> None:
    receipt = owner.send("ProviderRegistry", "register", b"own-1", 7, '{"url": "http://127.0.0.1:1"}')
    assert events(chain, receipt) == [
        (
            "ProviderRegistered",
            {"id": b"own-1", "modelId": 7, "epoch": 0, "metadata": '{"url": "http://127.0.0.1:1"}'},
        ),
        ("ProviderStatusUpdated", {"id": b"own-1", "active": True}),
    ]
    read = owner.read
    assert read("ProviderRegistry", "registered", b"own-1") is True
    assert read("ProviderRegistry", "active", b"own-1") is True
    assert read("ProviderRegistry", "registered", b"nobody") is False
    assert read("ProviderRegistry", "getProviderIdsByOwner", OWNER.address) == [b"own-1"]
    assert read("ProviderRegistry", "providerIdsByModel", 7, 0) == b"own-1"
    assert read("ProviderRegistry", "getProviderIds")[-1] == b"own-1"
    assert [p[1] for p in read("ProviderRegistry", "getProviders")][-1] == b"own-1"
    record = read("ProviderRegistry", "getProvider", b"own-1")
    assert (record[0].lower(), record[1], record[2], record[4], record[5]) == (
        OWNER.address.lower(),
        b"own-1",
        7,
        '{"url": "http://127.0.0.1:1"}',
        False,
    )
    assert read("ProviderRegistry", "getActiveProviderCountState") == 2  # the fixture's entry and this one
    assert read("ProviderRegistry", "autoWhitelist") is True


def test_pause_and_unpause_emit_events_and_refuse_the_same_state_twice(
    chain: ChainNet, owner: RegistryAdmin
) -> None:
    owner.send("ProviderRegistry", "register", b"own-2", 7, "")
    receipt = owner.send("ProviderRegistry", "pause", b"own-2")
    assert events(chain, receipt) == [
        ("ProviderPaused", {"id": b"own-2"}),
        ("ProviderStatusUpdated", {"id": b"own-2", "active": False}),
    ]
    assert owner.read("ProviderRegistry", "active", b"own-2") is False
    assert owner.read("ProviderRegistry", "getProvider", b"own-2")[5] is True
    with pytest.raises(ChainError, match=r"failed: the entry is paused already$"):
        owner.send("ProviderRegistry", "pause", b"own-2")
    receipt = owner.send("ProviderRegistry", "unpause", b"own-2")
    assert [name for name, _ in events(chain, receipt)] == ["ProviderUnpaused", "ProviderStatusUpdated"]
    with pytest.raises(ChainError, match=r"failed: the entry is not paused$"):
        owner.send("ProviderRegistry", "unpause", b"own-2")


def test_only_the_owner_or_a_pauser_may_pause(
    chain: ChainNet, owner: RegistryAdmin, other: RegistryAdmin
) -> None:
    owner.send("ProviderRegistry", "register", b"own-3", 7, "")
    stranger = OTHER.address.lower()
    with pytest.raises(ChainError, match=rf"this key \({stranger}\) lacks the pauser role \(PAUSER_ROLE\)$"):
        other.send("ProviderRegistry", "pause", b"own-3")
    assert other.read("ProviderRegistry", "hasRole", PAUSER_ROLE, OTHER.address) is False
    assert chain.admin.read("ProviderRegistry", "hasRole", PAUSER_ROLE, chain.admin.account.address) is True
    # A PAUSER_ROLE holder may pause what it does not own.
    chain.admin.send("ProviderRegistry", "grantRole", PAUSER_ROLE, OTHER.address)
    other.send("ProviderRegistry", "pause", b"own-3")
    assert owner.read("ProviderRegistry", "getProvider", b"own-3")[5] is True
    # It cannot renounce a role on another's behalf, and loses the power once it renounces.
    with pytest.raises(
        ChainError, match=r"renouncing a role needs the caller's own address as confirmation$"
    ):
        other.send("ProviderRegistry", "renounceRole", PAUSER_ROLE, OWNER.address)
    other.send("ProviderRegistry", "renounceRole", PAUSER_ROLE, OTHER.address)
    with pytest.raises(ChainError, match=r"lacks the pauser role \(PAUSER_ROLE\)$"):
        other.send("ProviderRegistry", "unpause", b"own-3")


def test_only_the_owner_or_an_admin_updates_metadata(
    chain: ChainNet, owner: RegistryAdmin, other: RegistryAdmin
) -> None:
    owner.send("ProviderRegistry", "register", b"own-4", 7, "first")
    receipt = owner.send("ProviderRegistry", "updateMetadata", b"own-4", "second")
    assert events(chain, receipt) == [("ProviderMetadataUpdated", {"id": b"own-4"})]
    stranger = OTHER.address.lower()
    with pytest.raises(
        ChainError, match=rf"this key \({stranger}\) lacks the admin role \(DEFAULT_ADMIN_ROLE\)$"
    ):
        other.send("ProviderRegistry", "updateMetadata", b"own-4", "hijacked")
    chain.admin.send("ProviderRegistry", "updateMetadata", b"own-4", "settled")
    assert owner.read("ProviderRegistry", "getProvider", b"own-4")[4] == "settled"


def test_register_refusals_name_the_reason(chain: ChainNet, owner: RegistryAdmin) -> None:
    limit = owner.read("ProviderRegistry", "MAX_METADATA_LENGTH")
    assert limit == owner.read("GatewayRegistry", "MAX_METADATA_LENGTH") == 1024
    with pytest.raises(
        ChainError, match=r'the contract refused: "metadata is longer than MAX_METADATA_LENGTH"$'
    ):
        owner.send("ProviderRegistry", "register", b"own-5", 7, "x" * (limit + 1))
    with pytest.raises(ChainError, match=r'the contract refused: "id is empty"$'):
        owner.send("ProviderRegistry", "register", b"", 7, "")
    fixture_id = f"provider:{OTHER.address.lower()}:{DEV_MODEL_ID}".encode()
    with pytest.raises(ChainError, match=r'the contract refused: "id is already registered"$'):
        owner.send("ProviderRegistry", "register", fixture_id, DEV_MODEL_ID, "")
    with pytest.raises(ChainError, match=f"{NO_STAKING}$"):
        owner.send("ProviderRegistry", "registerAndStake", b"own-5", 7, "")
    with pytest.raises(ChainError, match=f"{NO_STAKING}$"):
        owner.send("GatewayRegistry", "registerAndStake", b"gw", "", 10)
    assert owner.read("ProviderRegistry", "registered", b"own-5") is False


def test_activity_follows_approval_when_auto_whitelist_is_off(chain: ChainNet, owner: RegistryAdmin) -> None:
    chain.admin.send("ProviderRegistry", "setAutoWhitelist", False)
    receipt = owner.send("ProviderRegistry", "register", b"own-6", 9, "")
    assert [name for name, _ in events(chain, receipt)] == [
        "ProviderRegistered"
    ]  # not active: no status change
    read = owner.read
    assert (
        read("ProviderRegistry", "registered", b"own-6"),
        read("ProviderRegistry", "active", b"own-6"),
    ) == (
        True,
        False,
    )
    assert b"own-6" not in [p[1] for p in read("ProviderRegistry", "getActiveProvidersLive")]
    with pytest.raises(ChainError, match=r"lacks the admin role \(DEFAULT_ADMIN_ROLE\)$"):
        owner.send("ProviderRegistry", "setApproved", b"own-6", True)
    receipt = chain.admin.send("ProviderRegistry", "setApproved", b"own-6", True)
    assert events(chain, receipt) == [("ProviderStatusUpdated", {"id": b"own-6", "active": True})]
    assert b"own-6" in [p[1] for p in read("ProviderRegistry", "getActiveProvidersState")]
    assert b"own-6" in [p[1] for p in read("ProviderRegistry", "getActiveProvidersLive")]
    # Nothing changed since: syncing says nothing; the fixture's entry was approved when registered.
    assert events(chain, owner.send("ProviderRegistry", "syncActiveStatus", b"own-6")) == []
    assert events(chain, owner.send("ProviderRegistry", "syncActiveStatusByModel", DEV_MODEL_ID)) == []


def test_gateways_have_the_same_lifecycle(
    chain: ChainNet, owner: RegistryAdmin, other: RegistryAdmin
) -> None:
    receipt = owner.send("GatewayRegistry", "register", b"gw-1", "meta")
    assert events(chain, receipt, "GatewayRegistry") == [
        ("GatewayRegistered", {"id": b"gw-1", "epoch": 0, "metadata": "meta"})
    ]
    assert owner.read("GatewayRegistry", "getGatewayIdsByOwner", OWNER.address) == [b"gw-1"]
    assert owner.read("GatewayRegistry", "active", b"gw-1") is True
    with pytest.raises(ChainError, match=r"lacks the pauser role \(PAUSER_ROLE\)$"):
        other.send("GatewayRegistry", "pause", b"gw-1")
    receipt = owner.send("GatewayRegistry", "pause", b"gw-1")
    assert events(chain, receipt, "GatewayRegistry") == [("GatewayPaused", {"id": b"gw-1"})]
    assert owner.read("GatewayRegistry", "active", b"gw-1") is False
    assert owner.read("GatewayRegistry", "registered", b"gw-1") is True
    with pytest.raises(ChainError, match=r"the entry is paused already$"):
        owner.send("GatewayRegistry", "pause", b"gw-1")
    receipt = owner.send("GatewayRegistry", "updateMetadata", b"gw-1", "new")
    assert events(chain, receipt, "GatewayRegistry") == [("GatewayMetadataUpdated", {"id": b"gw-1"})]
    receipt = owner.send("GatewayRegistry", "unpause", b"gw-1")
    assert events(chain, receipt, "GatewayRegistry") == [("GatewayUnpaused", {"id": b"gw-1"})]
    assert owner.read("GatewayRegistry", "getGateway", b"gw-1")[3] == "new"


def test_the_deployer_holds_both_roles(chain: ChainNet) -> None:
    deployer = LocalSigner.from_hex(DEV_DEPLOYER_KEY).address
    for contract in ("GatewayRegistry", "ProviderRegistry"):
        assert chain.admin.read(contract, "DEFAULT_ADMIN_ROLE") == ADMIN_ROLE
        assert chain.admin.read(contract, "PAUSER_ROLE") == PAUSER_ROLE
        assert chain.admin.read(contract, "hasRole", ADMIN_ROLE, deployer) is True
        assert chain.admin.read(contract, "hasRole", PAUSER_ROLE, deployer) is True
