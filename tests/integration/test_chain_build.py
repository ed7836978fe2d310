"""The committed ABIs and bytecode are exactly what solcjs builds from contracts/ today."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from function_node.chain.compiled import load_abi, load_bytecode
from function_node.devnet.build_contracts import check, main
from function_node.devnet.solc import CONTRACT_NAMES, SolcError, compile_contracts, repo_root

pytestmark = pytest.mark.integration

CHAIN_DIR = repo_root() / "src" / "function_node" / "chain"


def test_committed_outputs_match_a_fresh_build() -> None:
    assert check(repo_root() / "contracts", CHAIN_DIR) == []


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    for sub in ("abi", "artifacts"):
        (tmp_path / sub).mkdir()
        for name in CONTRACT_NAMES:
            (tmp_path / sub / f"{name}.json").write_text((CHAIN_DIR / sub / f"{name}.json").read_text())
    (tmp_path / "abi" / "Router.json").write_text("[]\n")
    assert check(repo_root() / "contracts", tmp_path) == ["abi/Router.json"]


def test_read_functions_have_the_spec_shapes() -> None:
    def outputs(contract: str, fn: str) -> tuple[str, list[str], str]:
        item = next(i for i in load_abi(contract) if i.get("name") == fn)
        out = item["outputs"][0]
        comps = [c["type"] for c in out.get("components", [])]
        return out["type"], comps, item["stateMutability"]

    assert outputs("GatewayRegistry", "getActiveGatewaysLive") == (
        "tuple[]",
        ["address", "bytes", "uint256", "string", "bool"],
        "nonpayable",
    )
    assert outputs("ProviderRegistry", "getActiveProvidersLive") == (
        "tuple[]",
        ["address", "bytes", "uint256", "uint256", "string", "bool"],
        "nonpayable",
    )
    assert outputs("ProviderRegistry", "getProvider")[0] == "tuple"
    assert outputs("ProviderRegistry", "getProviderIdsByOwner")[0] == "bytes[]"
    assert outputs("SchedulerRegistry", "getActiveSchedulers") == ("address[]", [], "view")
    for fn in ("gatewayRegistry", "providerRegistry", "schedulerRegistry"):
        assert outputs("Router", fn) == ("address", [], "view")
    assert all(load_bytecode(n).startswith("0x60") for n in CONTRACT_NAMES)


def test_a_syntax_error_is_a_clear_solc_error(tmp_path: Path) -> None:
    (tmp_path / "Broken.sol").write_text("pragma solidity ^0.8.20; contract Broken { function f( }")
    with pytest.raises(SolcError, match="ParserError"):
        compile_contracts(tmp_path)


def test_build_main_check_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_artifacts_name_compiler_and_sources_hash() -> None:
    artifact = json.loads((CHAIN_DIR / "artifacts" / "Router.json").read_text())
    assert artifact["compiler"].startswith("0.8.37")
    assert len(artifact["sourcesSha256"]) == 64


def _signatures(contract: str, kind: str) -> dict[str, Any]:
    def types(items: list[dict[str, Any]]) -> str:
        return ",".join(str(i["type"]) for i in items)

    return {f"{i['name']}({types(i['inputs'])})": i for i in load_abi(contract) if i["type"] == kind}


# SPEC §8 and §8.1: the live registries' interface, which the devnet's contracts must have exactly.
PROVIDER_FUNCTIONS = {
    "register(bytes,uint256,string)": "nonpayable",
    "registerAndStake(bytes,uint256,string)": "nonpayable",
    "updateMetadata(bytes,string)": "nonpayable",
    "pause(bytes)": "nonpayable",
    "unpause(bytes)": "nonpayable",
    "syncActiveStatus(bytes)": "nonpayable",
    "syncActiveStatusByModel(uint256)": "nonpayable",
    "registered(bytes)": "view",
    "active(bytes)": "view",
    "autoWhitelist()": "view",
    "getProviders()": "view",
    "getProviderIds()": "view",
    "getActiveProvidersState()": "view",
    "getActiveProviderCountState()": "view",
    "providerIdsByModel(uint256,uint256)": "view",
    "DEFAULT_ADMIN_ROLE()": "view",
    "PAUSER_ROLE()": "view",
    "hasRole(bytes32,address)": "view",
    "getActiveProvidersLive()": "nonpayable",
    "getProviderIdsByOwner(address)": "view",
    "getProvider(bytes)": "view",
}
GATEWAY_FUNCTIONS = {
    "register(bytes,string)": "nonpayable",
    "registerAndStake(bytes,string,uint256)": "nonpayable",
    "updateMetadata(bytes,string)": "nonpayable",
    "pause(bytes)": "nonpayable",
    "unpause(bytes)": "nonpayable",
    "registered(bytes)": "view",
    "active(bytes)": "view",
    "getGatewayIdsByOwner(address)": "view",
    "getGateway(bytes)": "view",
    "MAX_METADATA_LENGTH()": "view",
    "getActiveGatewaysLive()": "nonpayable",
    "DEFAULT_ADMIN_ROLE()": "view",
    "PAUSER_ROLE()": "view",
    "hasRole(bytes32,address)": "view",
}
# name(types) -> the indexed flag of each argument
PROVIDER_EVENTS = {
    "ProviderRegistered(bytes,uint256,uint256,string)": [False, True, True, False],
    "ProviderRegisteredAndStaked(bytes,uint256,uint256)": [False, True, True],
    "ProviderMetadataUpdated(bytes)": [False],
    "ProviderPaused(bytes)": [False],
    "ProviderUnpaused(bytes)": [False],
    "ProviderStatusUpdated(bytes,bool)": [False, False],
    "LogError(bytes,string)": [False, False],
}
GATEWAY_EVENTS = {
    "GatewayRegistered(bytes,uint256,string)": [False, True, False],
    "GatewayMetadataUpdated(bytes)": [False],
    "GatewayPaused(bytes)": [False],
    "GatewayUnpaused(bytes)": [False],
}
ERRORS = {
    "AccessControlUnauthorizedAccount(address,bytes32)",
    "AccessControlBadConfirmation()",
    "EnforcedPause()",
    "ExpectedPause()",
    "ReentrancyGuardReentrantCall()",
}


@pytest.mark.parametrize(
    ("contract", "functions", "events"),
    [
        ("ProviderRegistry", PROVIDER_FUNCTIONS, PROVIDER_EVENTS),
        ("GatewayRegistry", GATEWAY_FUNCTIONS, GATEWAY_EVENTS),
    ],
)
def test_registries_have_the_live_write_interface(
    contract: str, functions: dict[str, str], events: dict[str, list[bool]]
) -> None:
    found = _signatures(contract, "function")
    assert {name: found[name]["stateMutability"] for name in functions if name in found} == functions
    found_events = _signatures(contract, "event")
    assert {
        name: [i["indexed"] for i in found_events[name]["inputs"]] for name in events if name in found_events
    } == events
    assert set(_signatures(contract, "error")) >= ERRORS
    # The live ABI's parameter and field names, which web3 uses to decode events and structs.
    assert [i["name"] for i in found[next(iter(functions))]["inputs"]] == (
        ["_id", "_modelId", "metadata"] if contract == "ProviderRegistry" else ["_id", "metadata"]
    )
    fields = "id modelId registeredAt metadata paused" if contract == "ProviderRegistry" else ""
    fields = fields or "id registeredAt metadata paused"
    getter = "getProvider(bytes)" if contract == "ProviderRegistry" else "getGateway(bytes)"
    outputs = found[getter]["outputs"][0]["components"]
    assert [c["name"] for c in outputs] == ["owner", *fields.split()]
