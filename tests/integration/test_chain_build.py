"""The committed ABIs and bytecode are exactly what solcjs builds from contracts/ today."""

from __future__ import annotations

import json
from pathlib import Path

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
