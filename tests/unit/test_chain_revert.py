"""Revert data decoded into sentences, provider metadata, and the CLI's id and model-id parsers."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak

from function_node import __version__
from function_node.chain.metadata import default_metadata, metadata_value, node_url_from_metadata
from function_node.chain.provider_lifecycle import parse_id, parse_model_id
from function_node.chain.revert import decode_revert, role_name
from function_node.chain.transactions import ether
from function_node.errors import UsageError

ACCOUNT = "0x" + "ab" * 20


def selector(signature: str) -> bytes:
    return bytes(function_signature_to_4byte_selector(signature))


def unauthorized(role: bytes) -> bytes:
    return selector("AccessControlUnauthorizedAccount(address,bytes32)") + encode(
        ["address", "bytes32"], [ACCOUNT, role]
    )


@pytest.mark.parametrize(
    ("data", "name", "sentence"),
    [
        (
            unauthorized(bytes(keccak(b"PAUSER_ROLE"))),
            "AccessControlUnauthorizedAccount",
            f"this key ({ACCOUNT}) lacks the pauser role (PAUSER_ROLE)",
        ),
        (
            unauthorized(bytes(32)),
            "AccessControlUnauthorizedAccount",
            f"this key ({ACCOUNT}) lacks the admin role (DEFAULT_ADMIN_ROLE)",
        ),
        (
            unauthorized(b"\x01" * 32),
            "AccessControlUnauthorizedAccount",
            f"this key ({ACCOUNT}) lacks the role 0x{'01' * 32}",
        ),
        (selector("EnforcedPause()"), "EnforcedPause", "the entry is paused already"),
        (selector("ExpectedPause()"), "ExpectedPause", "the entry is not paused"),
        (
            selector("AccessControlBadConfirmation()"),
            "AccessControlBadConfirmation",
            "renouncing a role needs the caller's own address as confirmation",
        ),
        (
            selector("ReentrancyGuardReentrantCall()"),
            "ReentrancyGuardReentrantCall",
            "the contract refused a re-entrant call",
        ),
        (
            selector("Error(string)") + encode(["string"], ["id is empty"]),
            "Error",
            'the contract refused: "id is empty"',
        ),
        (
            selector("Panic(uint256)") + encode(["uint256"], [0x11]),
            "Panic",
            "the contract panicked: an arithmetic operation overflowed (code 0x11)",
        ),
        (
            selector("Panic(uint256)") + encode(["uint256"], [0x99]),
            "Panic",
            "the contract panicked: an unknown panic (code 0x99)",
        ),
        (
            selector("UnknownScheduler(address)") + encode(["address"], [ACCOUNT]),
            "UnknownScheduler",
            f"the contract refused with UnknownScheduler({ACCOUNT})",
        ),
        (b"\xde\xad\xbe\xef", "", "the contract reverted with unknown error data 0xdeadbeef"),
        (b"", "", "the contract reverted without a reason"),
        # A known selector with arguments that do not decode is unknown data, not a crash.
        (
            selector("Error(string)") + b"\x00" * 3,
            "",
            "the contract reverted with unknown error data 0x08c379a0000000",
        ),
    ],
)
def test_revert_sentences(data: bytes, name: str, sentence: str) -> None:
    for form in (data, "0x" + data.hex()):
        revert = decode_revert(form)
        assert (revert.name, revert.sentence()) == (name, sentence)


def test_revert_reason_and_odd_inputs() -> None:
    assert decode_revert(selector("Error(string)") + encode(["string"], ["why"])).reason == "why"
    assert decode_revert(selector("EnforcedPause()")).reason == ""
    for odd in (None, {"message": "x"}, "0xnothex"):
        assert decode_revert(odd).sentence() == "the contract reverted without a reason"
    assert role_name(bytes(keccak(b"PAUSER_ROLE"))) == "PAUSER_ROLE"


def test_metadata_forms() -> None:
    text = default_metadata("https://n.example:8443")
    assert text == f'{{"url":"https://n.example:8443","version":"{__version__}"}}'
    assert metadata_value(text) == {"url": "https://n.example:8443", "version": __version__}
    assert metadata_value("not json") == "not json"
    assert node_url_from_metadata(text) == "https://n.example:8443"
    assert node_url_from_metadata('{"url": "ftp://x"}') is None


@pytest.mark.parametrize(("text", "value"), [("0", 0), (" 42 ", 42), (str(2**256 - 1), 2**256 - 1)])
def test_model_ids(text: str, value: int) -> None:
    assert parse_model_id(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1.5", "0x10", "٣", str(2**256)])
def test_bad_model_ids(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--model-id must be a non-negative integer such as 2, not "):
        parse_model_id(text)


def test_ids() -> None:
    assert parse_id("0xAbCd") == b"\xab\xcd"
    for bad in ("", "0x", "abcd", "0xabc", "0xzz"):
        with pytest.raises(UsageError, match=r"^--id must be 0x followed by an even number of hex digits"):
            parse_id(bad)


def test_ether() -> None:
    assert ether(0) == "0 ETH"
    assert ether(10**18) == "1 ETH"
    assert ether(123_000_000_000_000) == "0.000123 ETH"
