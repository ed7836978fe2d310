"""``fxn provider`` against a real anvil with the project's contracts (SPEC §8.1).

Every test runs the real command (in-process, real exit codes), then reads the chain itself: registered,
active, paused, metadata, the events of the transaction the command printed, and the key's nonce — which
must not move when the command had nothing to send or refused.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from web3 import HTTPProvider, Web3
from web3.exceptions import MismatchedABI
from web3.types import RPCEndpoint

from function_node import __version__
from function_node.chain.compiled import load_abi
from function_node.devnet.process import free_port
from function_node.keys import write_keystore, write_plaintext
from function_node.signing import LocalSigner
from tests.fixtures.anvil import DEV_MODEL_ID, ChainNet
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.foundation import TEST_PASSWORD, FxnCli

pytestmark = pytest.mark.integration

OPERATOR = LocalSigner.from_hex(DEV_KEYS[3])  # funded, owns nothing yet
BROKE = LocalSigner.from_hex(DEV_KEYS[4])  # no ether at all
FIXTURE_OWNER = LocalSigner.from_hex(DEV_KEYS[2])  # owns the chain fixture's entry
FIXTURE_ID = "0x" + f"provider:{FIXTURE_OWNER.address.lower()}:{DEV_MODEL_ID}".encode().hex()
PUBLIC_URL = "http://127.0.0.1:18080"
OWN_ID = "0x" + OPERATOR.address.lower()[2:]


def write_home(
    path: Path, chain: ChainNet, signer: LocalSigner, *, keystore: bool = False, **config: Any
) -> Path:
    path.mkdir(parents=True)
    document: dict[str, Any] = {
        "node": {"publicUrl": PUBLIC_URL},
        "rpcProvider": chain.rpc_url,
        "chainId": 31337,
        "registry": {"routerSmartContractAddress": chain.deployment.router},
    }
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    (path / "config.yaml").write_text(yaml.safe_dump(document))
    if keystore:
        write_keystore(path / "nodekey.json", signer, TEST_PASSWORD)
    else:
        write_plaintext(path / "nodekey.json", signer)
    return path


class Chain:
    """The test's own view of the chain: registry reads, nonces, and the events of a transaction."""

    def __init__(self, net: ChainNet) -> None:
        self.w3 = Web3(HTTPProvider(net.rpc_url))
        self.address = Web3.to_checksum_address(net.deployment.provider_registry)
        self.registry: Any = self.w3.eth.contract(address=self.address, abi=load_abi("ProviderRegistry"))

    def nonce(self, signer: LocalSigner) -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(signer.address)))

    def entry(self, entry_id: str) -> dict[str, Any]:
        raw = bytes.fromhex(entry_id[2:])
        registered = self.registry.functions.registered(raw).call()
        out: dict[str, Any] = {"registered": registered, "active": self.registry.functions.active(raw).call()}
        if registered:
            owner, _, model_id, _, metadata, paused = self.registry.functions.getProvider(raw).call()
            out.update(owner=owner.lower(), modelId=model_id, metadata=metadata, paused=paused)
        return out

    def events(self, stdout: str) -> list[tuple[str, dict[str, Any]]]:
        """The registry's events in every transaction whose hash the command printed."""
        out: list[tuple[str, dict[str, Any]]] = []
        for tx_hash in re.findall(r"transaction (0x[0-9a-f]{64}) sent", stdout):
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)
            assert receipt["status"] == 1
            for log in receipt["logs"]:
                for item in (i for i in load_abi("ProviderRegistry") if i["type"] == "event"):
                    try:
                        decoded = self.registry.events[item["name"]]().process_log(log)
                    except MismatchedABI:
                        continue
                    out.append((decoded["event"], dict(decoded["args"])))
                    break
        return out


@pytest.fixture
def view(chain: ChainNet) -> Chain:
    return Chain(chain)


@pytest.fixture
def home(tmp_path: Path, chain: ChainNet) -> Path:
    return write_home(tmp_path / "operator", chain, OPERATOR)


def provider(cli: FxnCli, home: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return cli("--home", str(home), "provider", *args, env=env)


# --- register ------------------------------------------------------------------------------------


def test_register_publishes_the_default_id_and_metadata_once(
    fxn_cli: FxnCli, home: Path, view: Chain
) -> None:
    before = view.nonce(OPERATOR)
    result = provider(fxn_cli, home, "register", "--model-id", "5")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"registering provider id {OWN_ID} for model id 5 ..."
    assert re.fullmatch(r"transaction 0x[0-9a-f]{64} sent", lines[1])
    assert re.fullmatch(
        r"done: in block \d+ after \d+\.\d\d s; gas used [\d,]+ \([\d.]+ ETH\); "
        r"events: ProviderRegistered, ProviderStatusUpdated",
        lines[2],
    )
    metadata = json.dumps({"url": PUBLIC_URL, "version": __version__}, separators=(",", ":"))
    assert view.entry(OWN_ID) == {
        "registered": True,
        "active": True,
        "owner": OPERATOR.address.lower(),
        "modelId": 5,
        "metadata": metadata,
        "paused": False,
    }
    raw = bytes.fromhex(OWN_ID[2:])
    assert view.events(result.stdout) == [
        ("ProviderRegistered", {"id": raw, "modelId": 5, "epoch": 0, "metadata": metadata}),
        ("ProviderStatusUpdated", {"id": raw, "active": True}),
    ]
    assert view.nonce(OPERATOR) == before + 1
    again = provider(fxn_cli, home, "register", "--model-id", "5")
    assert (again.code, again.stdout, again.stderr) == (
        0,
        f"provider id {OWN_ID} is registered for model id 5 already; nothing sent\n",
        "",
    )
    assert view.nonce(OPERATOR) == before + 1


def test_register_with_an_id_and_a_url_or_metadata(fxn_cli: FxnCli, home: Path, view: Chain) -> None:
    assert (
        provider(
            fxn_cli, home, "register", "--model-id", "3", "--id", "0xABCD", "--url", "https://n.example:8443/"
        ).code
        == 0
    )
    assert view.entry("0xabcd")["metadata"] == json.dumps(
        {"url": "https://n.example:8443", "version": __version__}, separators=(",", ":")
    )
    given = '{"url": "http://10.0.0.1:8080", "region": "eu"}'
    assert (
        provider(fxn_cli, home, "register", "--model-id", "0", "--id", "0xbeef", "--metadata", given).code
        == 0
    )
    assert view.entry("0xbeef")["metadata"] == given and view.entry("0xbeef")["modelId"] == 0
    # Registered already, with other metadata: nothing sent, and the way to change it named.
    result = provider(fxn_cli, home, "register", "--model-id", "0", "--id", "0xbeef")
    assert result.stdout == (
        "provider id 0xbeef is registered for model id 0 already; its metadata differs: "
        "`fxn provider update` changes it; nothing sent\n"
    )


def test_register_an_id_with_another_model_or_owner_is_refused(
    fxn_cli: FxnCli, home: Path, view: Chain
) -> None:
    assert provider(fxn_cli, home, "register", "--model-id", "5").code == 0
    before = view.nonce(OPERATOR)
    result = provider(fxn_cli, home, "register", "--model-id", "6")
    assert (result.code, result.stderr) == (
        1,
        f"error: provider id {OWN_ID} is registered for model id 5, not 6, and a model id cannot be changed: "
        "register a new id with --id\n",
    )
    result = provider(fxn_cli, home, "register", "--model-id", str(DEV_MODEL_ID), "--id", FIXTURE_ID)
    assert (result.code, result.stderr) == (
        1,
        f"error: provider id {FIXTURE_ID} is registered to another key ({FIXTURE_OWNER.address.lower()}); "
        "pick another --id\n",
    )
    assert view.nonce(OPERATOR) == before
    assert view.entry(OWN_ID)["modelId"] == 5


def test_dry_run_prints_the_transaction_and_sends_nothing(
    fxn_cli: FxnCli, home: Path, view: Chain, chain: ChainNet
) -> None:
    before = view.nonce(OPERATOR)
    result = provider(fxn_cli, home, "register", "--model-id", "5", "--dry-run")
    assert result.code == 0, result.stderr
    metadata = json.dumps({"url": PUBLIC_URL, "version": __version__}, separators=(",", ":"))
    calldata = view.registry.encode_abi("register", args=[bytes.fromhex(OWN_ID[2:]), 5, metadata])
    lines = result.stdout.splitlines()
    assert lines[:6] == [
        f"registering provider id {OWN_ID} for model id 5: dry run, nothing sent",
        f"  contract   ProviderRegistry {chain.deployment.provider_registry} (chain 31337)",
        "  function   register(bytes,uint256,string)",
        f"  arguments  {OWN_ID}, 5, {metadata}",
        f"  calldata   {calldata}",
        f"  from       {OPERATOR.address.lower()} (nonce {before})",
    ]
    assert re.fullmatch(r"  gas        estimate [\d,]+; limit [\d,]+ \(\+20%\)", lines[6])
    assert re.fullmatch(
        r"  fees       EIP-1559: max [\d.]+ gwei per gas, priority [\d.]+ gwei; at most [\d.]+ ETH "
        r"\(balance 10000 ETH\)",
        lines[7],
    )
    assert view.nonce(OPERATOR) == before
    assert view.entry(OWN_ID) == {"registered": False, "active": False}


# --- pause, unpause, update ------------------------------------------------------------------------


def test_pause_and_unpause_every_own_id_then_one(fxn_cli: FxnCli, home: Path, view: Chain) -> None:
    assert provider(fxn_cli, home, "register", "--model-id", "5").code == 0
    assert provider(fxn_cli, home, "register", "--model-id", "6", "--id", "0x0606").code == 0
    result = provider(fxn_cli, home, "pause")
    assert result.code == 0, result.stderr
    assert [name for name, _ in view.events(result.stdout)] == ["ProviderPaused", "ProviderStatusUpdated"] * 2
    for entry_id in (OWN_ID, "0x0606"):
        assert (view.entry(entry_id)["paused"], view.entry(entry_id)["active"]) == (True, False)
    before = view.nonce(OPERATOR)
    again = provider(fxn_cli, home, "pause")
    assert again.stdout == (
        f"provider id {OWN_ID} is paused already; nothing sent\n"
        "provider id 0x0606 is paused already; nothing sent\n"
    )
    assert view.nonce(OPERATOR) == before
    result = provider(fxn_cli, home, "unpause", "--id", "0x0606")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("unpausing provider id 0x0606 (model id 6) ...\n")
    assert [name for name, _ in view.events(result.stdout)] == ["ProviderUnpaused", "ProviderStatusUpdated"]
    assert (view.entry("0x0606")["active"], view.entry(OWN_ID)["active"]) == (True, False)
    assert provider(fxn_cli, home, "unpause", "--id", "0x0606").stdout == (
        "provider id 0x0606 is not paused already; nothing sent\n"
    )


def test_update_publishes_new_metadata_once(fxn_cli: FxnCli, home: Path, view: Chain) -> None:
    assert provider(fxn_cli, home, "register", "--model-id", "5").code == 0
    result = provider(fxn_cli, home, "update", "--url", "https://moved.example")
    assert result.code == 0, result.stderr
    assert view.events(result.stdout) == [("ProviderMetadataUpdated", {"id": bytes.fromhex(OWN_ID[2:])})]
    assert json.loads(view.entry(OWN_ID)["metadata"])["url"] == "https://moved.example"
    before = view.nonce(OPERATOR)
    again = provider(fxn_cli, home, "update", "--url", "https://moved.example")
    assert again.stdout == f"provider id {OWN_ID} has this metadata already; nothing sent\n"
    assert view.nonce(OPERATOR) == before


def test_pausing_an_id_the_key_does_not_own_is_refused_as_a_sentence(
    fxn_cli: FxnCli, home: Path, view: Chain
) -> None:
    before = view.nonce(OPERATOR)
    result = provider(fxn_cli, home, "pause", "--id", FIXTURE_ID)
    assert (result.code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: pausing provider id {FIXTURE_ID} would be refused: this key ({OPERATOR.address.lower()}) "
        f"lacks the pauser role (PAUSER_ROLE); only the id's owner ({FIXTURE_OWNER.address.lower()}) or a "
        "PAUSER_ROLE "
        "holder may pause or unpause it\n"
    )
    assert view.nonce(OPERATOR) == before
    assert view.entry(FIXTURE_ID)["paused"] is False
    result = provider(fxn_cli, home, "update", "--id", FIXTURE_ID, "--url", "http://hijack.example")
    assert result.code == 1
    assert "lacks the admin role (DEFAULT_ADMIN_ROLE); only the id's owner" in result.stderr


def test_commands_on_own_ids_need_an_id(fxn_cli: FxnCli, home: Path, chain: ChainNet) -> None:
    result = provider(fxn_cli, home, "pause")
    assert (result.code, result.stderr) == (
        1,
        f"error: the key {OPERATOR.address.lower()} owns no provider id in the ProviderRegistry at "
        f"{chain.deployment.provider_registry}; register one first with "
        "`fxn provider register --model-id N`\n",
    )
    result = provider(fxn_cli, home, "unpause", "--id", "0x99")
    assert (result.code, result.stderr) == (
        1,
        "error: provider id 0x99 is not registered in the ProviderRegistry at "
        f"{chain.deployment.provider_registry}\n",
    )


# --- status --------------------------------------------------------------------------------------


@pytest.fixture
def health_server() -> Iterator[str]:
    """A URL whose /health answers 200, as a node's does."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            del args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_status_lists_every_own_id_as_json_and_as_a_table(
    fxn_cli: FxnCli, home: Path, health_server: str
) -> None:
    assert provider(fxn_cli, home, "status", "--json").stdout == "[]\n"
    empty = provider(fxn_cli, home, "status")
    assert empty.code == 0 and empty.stdout.endswith(
        "none; register one with `fxn provider register --model-id N`\n"
    )
    assert provider(fxn_cli, home, "register", "--model-id", "5", "--url", health_server).code == 0
    dead = f"http://127.0.0.1:{free_port()}"
    assert provider(fxn_cli, home, "register", "--model-id", "6", "--id", "0x06", "--url", dead).code == 0
    assert (
        provider(
            fxn_cli, home, "register", "--model-id", "7", "--id", "0x07", "--metadata", '{"note": 1}'
        ).code
        == 0
    )
    assert provider(fxn_cli, home, "pause", "--id", "0x06").code == 0
    result = provider(fxn_cli, home, "status", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "id": OWN_ID,
            "modelId": 5,
            "registered": True,
            "active": True,
            "paused": False,
            "metadata": {"url": health_server, "version": __version__},
            "url": health_server,
            "publicUrlReachable": True,
        },
        {
            "id": "0x06",
            "modelId": 6,
            "registered": True,
            "active": False,
            "paused": True,
            "metadata": {"url": dead, "version": __version__},
            "url": dead,
            "publicUrlReachable": False,
        },
        {
            "id": "0x07",
            "modelId": 7,
            "registered": True,
            "active": True,
            "paused": False,
            "metadata": {"note": 1},
            "url": None,
            "publicUrlReachable": None,
        },
    ]
    table = provider(fxn_cli, home, "status", env={"COLUMNS": "250"})
    assert table.code == 0
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:8]]
        for line in table.stdout.splitlines()
        if "│ 0x" in line
    }
    assert rows == {
        OWN_ID: ["5", "yes", "yes", "no", health_server, "yes"],
        "0x06": ["6", "yes", "no", "yes", dead, "no"],
        "0x07": ["7", "yes", "yes", "no", "-", "-"],
    }


def test_fxn_status_shows_the_same_registration_facts(fxn_cli: FxnCli, home: Path) -> None:
    assert provider(fxn_cli, home, "register", "--model-id", "5").code == 0
    facts = json.loads(provider(fxn_cli, home, "status", "--json").stdout)
    report = fxn_cli("--home", str(home), "status", "--json")
    assert report.code == 1  # no node runs on this home
    assert json.loads(report.stdout)["chain"]["entries"] == facts


# --- bad input and failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-id", "-1"], "--model-id must be a non-negative integer such as 2, not '-1'"),
        (["--model-id", "two"], "--model-id must be a non-negative integer such as 2, not 'two'"),
        (["--model-id", str(2**256)], f"--model-id must be a non-negative integer such as 2, not '{2**256}'"),
        (
            ["--model-id", "1", "--id", "abcd"],
            "--id must be 0x followed by an even number of hex digits, not 'abcd'",
        ),
        (
            ["--model-id", "1", "--id", "0xabc"],
            "--id must be 0x followed by an even number of hex digits, not '0xabc'",
        ),
        (
            ["--model-id", "1", "--metadata", "{not json"],
            "--metadata is not valid JSON (Expecting property name enclosed in double quotes: line 1 "
            'column 2 (char 1)); pass an object such as \'{"url": "https://node.example.com:8080"}\'',
        ),
        (
            ["--model-id", "1", "--metadata", "[1]"],
            "--metadata must be a JSON object, not list; pass an object such as "
            '\'{"url": "https://node.example.com:8080"}\'',
        ),
        (
            ["--model-id", "1", "--metadata", "{}", "--url", "http://a"],
            "--metadata and --url are alternatives; pass one of them",
        ),
        (
            ["--model-id", "1", "--url", "ftp://a"],
            "--url 'ftp://a' must be an http:// or https:// URL with a host",
        ),
        (
            ["--model-id", "1", "--timeout", "soon"],
            "--timeout 'soon' is not a duration; write e.g. 90s or 5m",
        ),
        (["--model-id", "1", "--timeout", "0s"], "--timeout must be longer than 0s"),
    ],
)
def test_bad_options_exit_2_with_one_sentence(
    fxn_cli: FxnCli, home: Path, view: Chain, args: list[str], message: str
) -> None:
    result = provider(fxn_cli, home, "register", *args)
    assert (result.code, result.stdout, result.stderr) == (2, "", f"error: {message}\n")
    assert view.nonce(OPERATOR) == 0


def test_unknown_and_missing_options_are_usage_errors(fxn_cli: FxnCli, home: Path) -> None:
    result = provider(fxn_cli, home, "register", "--model-id", "1", "--bogus")
    assert result.code == 2
    assert "No such option: --bogus" in result.stderr and "Traceback" not in result.stderr
    result = provider(fxn_cli, home, "register")
    assert result.code == 2
    assert "Missing option '--model-id'" in result.stderr
    result = provider(fxn_cli, home, "pause", "--model-id", "1")
    assert result.code == 2
    assert "No such option: --model-id" in result.stderr


def test_metadata_longer_than_the_registry_accepts(
    fxn_cli: FxnCli, home: Path, view: Chain, chain: ChainNet
) -> None:
    text = json.dumps({"url": "http://a.example", "pad": "x" * 1100})
    result = provider(fxn_cli, home, "register", "--model-id", "1", "--metadata", text)
    assert (result.code, result.stderr) == (
        2,
        f"error: the metadata is {len(text)} bytes, more than the 1024 (MAX_METADATA_LENGTH) the "
        f"ProviderRegistry at {chain.deployment.provider_registry} accepts; shorten --metadata\n",
    )
    assert view.nonce(OPERATOR) == 0


def test_no_public_url_and_no_router_are_configuration_errors(
    fxn_cli: FxnCli, tmp_path: Path, chain: ChainNet
) -> None:
    bare = write_home(tmp_path / "bare", chain, OPERATOR, node={"publicUrl": ""})
    result = provider(fxn_cli, bare, "register", "--model-id", "1")
    assert (result.code, result.stderr) == (
        2,
        "error: node.publicUrl is empty in config.yaml; set it to the URL gateways and schedulers reach this "
        "node at (e.g. https://node.example.com:8080), or pass --url or --metadata\n",
    )
    no_router = write_home(
        tmp_path / "no-router", chain, OPERATOR, registry={"routerSmartContractAddress": ""}
    )
    result = provider(fxn_cli, no_router, "status")
    assert (result.code, result.stderr) == (
        2,
        "error: config.yaml: registry.routerSmartContractAddress is empty (set rpcProvider and "
        "registry.routerSmartContractAddress (docs/registries.md))\n",
    )


def test_an_rpc_that_is_down_is_named_without_its_path(
    fxn_cli: FxnCli, tmp_path: Path, chain: ChainNet
) -> None:
    port = free_port()
    home = write_home(
        tmp_path / "down", chain, OPERATOR, rpcProvider=f"http://127.0.0.1:{port}/v3/0123456789abcdef0123"
    )
    result = provider(fxn_cli, home, "register", "--model-id", "1")
    assert result.code == 1
    assert result.stderr.startswith(
        f"error: no RPC answered: http://127.0.0.1:{port}/*** (Cannot connect to host "
    )
    assert result.stderr.endswith("); check rpcProvider in config.yaml\n")
    assert "/v3" not in result.stderr and "0123456789abcdef" not in result.stderr
    # A second URL that answers is used.
    home2 = write_home(
        tmp_path / "failover", chain, OPERATOR, rpcProvider=[f"http://127.0.0.1:{port}", chain.rpc_url]
    )
    assert provider(fxn_cli, home2, "status", "--json").code == 0


def test_a_chain_id_mismatch_exits_2_and_sends_nothing(
    fxn_cli: FxnCli, tmp_path: Path, chain: ChainNet, view: Chain
) -> None:
    home = write_home(tmp_path / "mainnet", chain, OPERATOR, chainId=1)
    for args in (["register", "--model-id", "1"], ["status"]):
        result = provider(fxn_cli, home, *args)
        assert (result.code, result.stderr) == (
            2,
            f"error: the RPC at {chain.rpc_url} serves chain 31337, but config.yaml says chainId: 1; point "
            "rpcProvider at chain 1, or correct chainId\n",
        )
    assert view.nonce(OPERATOR) == 0


def test_a_key_without_funds_is_told_the_balance_and_the_estimate(
    fxn_cli: FxnCli, tmp_path: Path, chain: ChainNet, view: Chain
) -> None:
    home = write_home(tmp_path / "broke", chain, BROKE)
    result = provider(fxn_cli, home, "register", "--model-id", "1")
    address = Web3.to_checksum_address(BROKE.address)
    assert result.code == 1
    assert re.fullmatch(
        rf"error: the key {address} holds 0 ETH, and register\(bytes,uint256,string\) may cost up to "
        rf"0\.\d+ ETH \(gas estimate [\d,]+ \+ 20% at up to [\d.]+ gwei\); send ether to {address} and "
        r"run it again\n",
        result.stderr,
    ), result.stderr
    assert view.nonce(BROKE) == 0 and view.entry("0x" + BROKE.address.lower()[2:])["registered"] is False


def test_a_transaction_not_mined_in_time_names_its_hash(fxn_cli: FxnCli, home: Path, view: Chain) -> None:
    view.w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
    try:
        result = provider(fxn_cli, home, "register", "--model-id", "5", "--timeout", "1s")
        assert result.code == 1
        [tx_hash] = re.findall(r"transaction (0x[0-9a-f]{64}) sent", result.stdout)
        assert result.stderr == (
            f"error: transaction {tx_hash} was not mined within 1 s; it may still be: look it up by its hash "
            "before sending it again (raise --timeout to wait longer)\n"
        )
        assert view.entry(OWN_ID)["registered"] is False
        view.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        assert view.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
        assert view.entry(OWN_ID)["registered"] is True
    finally:
        view.w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])


def test_confirmations_wait_for_later_blocks(fxn_cli: FxnCli, home: Path, view: Chain) -> None:
    view.w3.provider.make_request(RPCEndpoint("evm_setIntervalMining"), [1])
    try:
        result = provider(
            fxn_cli, home, "register", "--model-id", "5", "--confirmations", "2", "--timeout", "30s"
        )
    finally:
        view.w3.provider.make_request(RPCEndpoint("evm_setIntervalMining"), [0])
        view.w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
    assert result.code == 0, result.stderr
    [tx_hash] = re.findall(r"transaction (0x[0-9a-f]{64}) sent", result.stdout)
    block = view.w3.eth.get_transaction_receipt(tx_hash)["blockNumber"]
    assert f"done: in block {block} after" in result.stdout
    assert view.w3.eth.block_number >= block + 1


def test_an_encrypted_key_is_unlocked_as_fxn_start_does(
    fxn_cli: FxnCli, tmp_path: Path, chain: ChainNet, view: Chain
) -> None:
    home = write_home(tmp_path / "keystore", chain, OPERATOR, keystore=True)
    key = home / "nodekey.json"
    # A dry run signs nothing and needs no password; a real run does.
    assert provider(fxn_cli, home, "register", "--model-id", "5", "--dry-run").code == 0
    result = provider(fxn_cli, home, "register", "--model-id", "5")
    assert result.code == 1
    assert result.stderr == (
        f"error: key file {key} is encrypted: set FXN_KEY_PASSWORD or node.keyPasswordFile in config.yaml "
        "(or run on a terminal to be prompted)\n"
    )
    assert view.nonce(OPERATOR) == 0
    result = provider(fxn_cli, home, "register", "--model-id", "5", env={"FXN_KEY_PASSWORD": "wrong"})
    assert (result.code, result.stderr) == (1, f"error: wrong password for key file {key}\n")
    (home / "pw.txt").write_text(TEST_PASSWORD + "\n")
    (home / "pw.txt").chmod(0o600)
    config = yaml.safe_load((home / "config.yaml").read_text())
    config["node"]["keyPasswordFile"] = "pw.txt"
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    assert provider(fxn_cli, home, "register", "--model-id", "5").code == 0
    assert view.entry(OWN_ID)["registered"] is True
    # Nothing to send: no password is asked for.
    (home / "pw.txt").unlink()
    assert provider(fxn_cli, home, "register", "--model-id", "5").code == 0


# --- discovery -------------------------------------------------------------------------------------


async def test_the_scheduler_finds_a_node_from_what_register_published(
    tmp_path: Path, chain: ChainNet
) -> None:
    import asyncio
    import sys

    from function_node.scheduler.config import SchedulerConfig
    from function_node.scheduler.discovery import registry_node_source

    home = write_home(tmp_path / "operator", chain, OPERATOR)
    fxn = str(Path(sys.executable).parent / "fxn")
    proc = await asyncio.create_subprocess_exec(
        fxn, "--home", str(home), "provider", "register", "--model-id", "5"
    )
    assert await proc.wait() == 0
    config = SchedulerConfig.model_validate(
        {
            "providerRegistry": {
                "rpcProvider": chain.rpc_url,
                "routerSmartContractAddress": chain.deployment.router,
            }
        }
    )
    targets = {t.url: t.address for t in await registry_node_source(config)()}
    assert targets[PUBLIC_URL] == OPERATOR.address.lower()


async def test_status_reads_one_by_one_from_an_rpc_that_refuses_batches(chain: ChainNet) -> None:
    """Some public RPC providers answer a JSON-RPC batch with one error; the status reads still arrive."""
    import aiohttp
    from aiohttp import web

    from function_node.chain.client import ChainClient
    from function_node.chain.contracts import NetworkReader
    from function_node.chain.provider_status import read_entry_statuses

    seen: list[str] = []

    async def rpc(request: web.Request) -> web.Response:
        body = await request.json()
        if isinstance(body, list):
            seen.append("batch")
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "batches are not supported"},
                }
            )
        seen.append(body["method"])
        async with aiohttp.ClientSession() as session, session.post(chain.rpc_url, json=body) as upstream:
            return web.json_response(await upstream.json())

    app = web.Application()
    app.router.add_post("/", rpc)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with ChainClient([f"http://127.0.0.1:{port}"], retries=0) as client:
            statuses = await read_entry_statuses(
                NetworkReader(client, chain.deployment.router), FIXTURE_OWNER.address
            )
    finally:
        await runner.cleanup()
    assert [(s.id_hex, s.record.model_id, s.registered, s.active) for s in statuses] == [
        (FIXTURE_ID, DEV_MODEL_ID, True, True)
    ]
    assert "batch" in seen and seen.count("eth_call") >= 4  # refused, then Router, ids and three single reads
