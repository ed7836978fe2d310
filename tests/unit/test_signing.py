"""signing.py against the shared vectors, plus round-trip and tamper properties (SPEC §5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from function_node.errors import SigningError
from function_node.protocol import legacy_message, response_message, v2_message
from function_node.signing import (
    LocalSigner,
    body_sha256,
    normalize_address,
    parse_signature,
    recover_address,
    sign_message,
    to_checksum_address,
)
from tests.fixtures.common import DEV_KEYS

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "request-signing.json").read_text()
)["cases"]
SIGNERS = [LocalSigner.from_hex(k) for k in DEV_KEYS]


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['signer']}-{case['nonce']}"


@pytest.mark.parametrize("case", VECTORS, ids=_case_id)
def test_vector_message_and_hash(case: dict[str, Any]) -> None:
    body = case["body_utf8"].encode()
    assert body_sha256(body) == case["body_sha256"]
    assert legacy_message(case["body_sha256"], case["timestamp"], case["nonce"]) == case["message"]


@pytest.mark.parametrize("case", VECTORS, ids=_case_id)
def test_vector_signature_is_reproduced(case: dict[str, Any]) -> None:
    # RFC 6979 signing is deterministic, so our signer must produce the vector byte for byte.
    signer = LocalSigner.from_hex(case["private_key"])
    assert signer.address == case["address"]
    assert signer.sign(case["message"]) == case["signature"]


@pytest.mark.parametrize("case", VECTORS, ids=_case_id)
@pytest.mark.parametrize("prefix", ["", "0x", "0X"])
@pytest.mark.parametrize("v_offset", [0, -27])
def test_vector_recovers_with_any_v_and_prefix(case: dict[str, Any], prefix: str, v_offset: int) -> None:
    raw = bytes.fromhex(case["signature"])
    sig = raw[:64] + bytes((raw[64] + v_offset,))
    assert recover_address(case["message"], prefix + sig.hex()) == case["address"].lower()


@pytest.mark.parametrize("case", VECTORS, ids=_case_id)
def test_vector_agrees_with_eth_account(case: dict[str, Any]) -> None:
    recovered = Account.recover_message(encode_defunct(text=case["message"]), signature=case["signature"])
    assert recovered == case["address"]


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("zz" * 65, "not valid hex"),
        ("ab" * 64, "65 bytes"),
        ("ab" * 66, "65 bytes"),
        ("", "65 bytes"),
        ("ab" * 64 + "02", "v=2"),
        ("ab" * 64 + "1d", "v=29"),
        ("ab" * 64 + "ff", "v=255"),
    ],
)
def test_malformed_signatures_are_rejected(signature: str, reason: str) -> None:
    with pytest.raises(SigningError, match=reason):
        parse_signature(signature)
    with pytest.raises(SigningError):
        recover_address("message", signature)


def test_signature_with_zero_r_s_does_not_recover() -> None:
    with pytest.raises(SigningError, match="does not recover"):
        recover_address("message", "00" * 64 + "1b")


def test_address_helpers() -> None:
    address = SIGNERS[0].address
    assert normalize_address(address.upper().replace("0X", "0x")) == address.lower()
    assert to_checksum_address(address.lower()) == address
    for bad in ("", "0x123", "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0x" + "g" * 40):
        with pytest.raises(SigningError, match="40 hex digits"):
            normalize_address(bad)


def test_bad_private_keys_are_rejected() -> None:
    with pytest.raises(SigningError, match="32 bytes"):
        LocalSigner(b"\x01" * 31)
    with pytest.raises(SigningError, match="valid secp256k1"):
        LocalSigner(b"\x00" * 32)
    with pytest.raises(SigningError, match="not valid hex"):
        LocalSigner.from_hex("0xnothex")


def test_signer_repr_hides_the_key() -> None:
    signer = SIGNERS[0]
    assert signer.private_key.hex() not in repr(signer)
    assert DEV_KEYS[0][2:] not in repr(signer)


# --- properties ----------------------------------------------------------------------------------------

_bodies = st.binary(max_size=512)
_timestamps = st.integers(min_value=0, max_value=2**40).map(str)
_nonces = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=128)
_paths = st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/challenge"])
_signers = st.sampled_from(SIGNERS)


@settings(max_examples=60, deadline=None)
@given(signer=_signers, body=_bodies, timestamp=_timestamps, nonce=_nonces)
def test_legacy_round_trip(signer: LocalSigner, body: bytes, timestamp: str, nonce: str) -> None:
    message = legacy_message(body_sha256(body), timestamp, nonce)
    assert recover_address(message, signer.sign(message)) == signer.address.lower()


@settings(max_examples=60, deadline=None)
@given(signer=_signers, node=_signers, body=_bodies, timestamp=_timestamps, nonce=_nonces, path=_paths)
def test_v2_round_trip(
    signer: LocalSigner, node: LocalSigner, body: bytes, timestamp: str, nonce: str, path: str
) -> None:
    message = v2_message(node.address, "post", path, body_sha256(body), timestamp, nonce)
    assert message.startswith("fxn-auth-v2\n" + node.address.lower() + "\nPOST\n" + path + "\n")
    assert recover_address(message, "0x" + signer.sign(message)) == signer.address.lower()


def _flip(data: bytes, index: int, bit: int) -> bytes:
    i = index % len(data)
    return data[:i] + bytes((data[i] ^ (1 << bit),)) + data[i + 1 :]


def _flip_text(text: str, index: int) -> str:
    # Stays printable ASCII and always differs: swap between two neighbouring printable characters.
    i = index % len(text)
    ch = text[i]
    other = chr(ord(ch) + 1) if ord(ch) < 126 else chr(ord(ch) - 1)
    return text[:i] + other + text[i + 1 :]


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=256),
    timestamp=_timestamps,
    nonce=_nonces,
    index=st.integers(min_value=0, max_value=10_000),
    bit=st.integers(min_value=0, max_value=7),
    part=st.sampled_from(["body", "timestamp", "nonce"]),
)
def test_legacy_tamper_changes_recovered_address(
    body: bytes, timestamp: str, nonce: str, index: int, bit: int, part: str
) -> None:
    signer = SIGNERS[0]
    signature = signer.sign(legacy_message(body_sha256(body), timestamp, nonce))
    if part == "body":
        body = _flip(body, index, bit)
    elif part == "timestamp":
        timestamp = _flip_text(timestamp, index)
    else:
        nonce = _flip_text(nonce, index)
    tampered = legacy_message(body_sha256(body), timestamp, nonce)
    try:
        recovered = recover_address(tampered, signature)
    except SigningError:
        return  # not recovering at all is also a refusal
    assert recovered != signer.address.lower()


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=256),
    timestamp=_timestamps,
    nonce=_nonces,
    path=_paths,
    index=st.integers(min_value=0, max_value=10_000),
    bit=st.integers(min_value=0, max_value=7),
    part=st.sampled_from(["body", "timestamp", "nonce", "node", "path"]),
)
def test_v2_tamper_changes_recovered_address(
    body: bytes, timestamp: str, nonce: str, path: str, index: int, bit: int, part: str
) -> None:
    signer, node = SIGNERS[0], SIGNERS[2].address.lower()
    signature = signer.sign(v2_message(node, "POST", path, body_sha256(body), timestamp, nonce))
    if part == "body":
        body = _flip(body, index, bit)
    elif part == "timestamp":
        timestamp = _flip_text(timestamp, index)
    elif part == "nonce":
        nonce = _flip_text(nonce, index)
    elif part == "node":
        # Another hex digit at one position: still a well-formed address, a different audience.
        i = 2 + index % 40
        digit = "0" if node[i] != "0" else "1"
        node = node[:i] + digit + node[i + 1 :]
    else:
        path = _flip_text(path, index)
    tampered = v2_message(node, "POST", path, body_sha256(body), timestamp, nonce)
    try:
        recovered = recover_address(tampered, signature)
    except SigningError:
        return
    assert recovered != signer.address.lower()


def test_v2_is_bound_to_method_and_differs_from_legacy() -> None:
    signer = SIGNERS[0]
    node = SIGNERS[2].address
    digest = body_sha256(b"{}")
    post = v2_message(node, "POST", "/v1/models", digest, "1", "n")
    get = v2_message(node, "GET", "/v1/models", digest, "1", "n")
    signature = signer.sign(post)
    assert recover_address(get, signature) != signer.address.lower()
    assert recover_address(legacy_message(digest, "1", "n"), signature) != signer.address.lower()


def test_response_message_and_sign_message_agree_with_eth_account() -> None:
    node, caller = SIGNERS[2].address, SIGNERS[0].address
    message = response_message(node, caller, body_sha256(b"req"), "nonce-1", 200, body_sha256(b"resp"))
    assert message == (
        f"fxn-response-v1\n{node.lower()}\n{caller.lower()}\n{body_sha256(b'req')}\nnonce-1\n200\n"
        f"{body_sha256(b'resp')}"
    )
    signature = sign_message(bytes.fromhex(DEV_KEYS[1][2:]), message)
    assert signature[-2:] in ("1b", "1c")
    recovered = Account.recover_message(encode_defunct(text=message), signature=bytes.fromhex(signature))
    assert recovered == SIGNERS[1].address
