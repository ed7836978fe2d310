"""The fast tuple-array decoder agrees with eth_abi, and refuses what eth_abi refuses."""

from __future__ import annotations

import pytest
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from hypothesis import given, settings
from hypothesis import strategies as st

from function_node.chain.contracts import decode_gateways, decode_providers
from function_node.chain.fast_abi import AbiDecodeError, decode_tuple_array
from function_node.errors import ChainError

PROVIDER = "(address,bytes,uint256,uint256,string,bool)[]"
GATEWAY = "(address,bytes,uint256,string,bool)[]"

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
uints = st.integers(min_value=0, max_value=2**256 - 1)
providers = st.lists(
    st.tuples(addresses, st.binary(max_size=80), uints, uints, st.text(max_size=80), st.booleans()),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(providers)
def test_providers_match_eth_abi(rows: list[tuple[str, bytes, int, int, str, bool]]) -> None:
    data = encode([PROVIDER], [rows])
    (expected,) = decode([PROVIDER], data)
    ours = decode_tuple_array(data, "abuuso")
    assert ours == [(o.lower(), i, m, r, s, p) for o, i, m, r, s, p in expected]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(addresses, st.binary(max_size=40), uints, st.text(max_size=40), st.booleans()), max_size=8
    )
)
def test_gateways_match_eth_abi(rows: list[tuple[str, bytes, int, str, bool]]) -> None:
    data = encode([GATEWAY], [rows])
    records = decode_gateways(data)
    assert [(g.owner, g.id, g.registered_at, g.metadata, g.paused) for g in records] == rows


def test_static_tuples_are_inline() -> None:
    rows = [("0x" + "11" * 20, 5, True), ("0x" + "22" * 20, 7, False)]
    data = encode(["(address,uint256,bool)[]"], [rows])
    assert decode_tuple_array(data, "auo") == rows


def test_empty_array() -> None:
    assert decode_tuple_array(encode([PROVIDER], [[]]), "abuuso") == []


GOOD = encode([PROVIDER], [[("0x" + "ab" * 20, b"id", 2, 3, "meta", False)]])


def corrupt(at: int, value: bytes) -> bytes:
    return GOOD[:at] + value + GOOD[at + len(value) :]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "read past the end"),
        (GOOD[:-32], "runs past the end"),
        (corrupt(0, (10**6).to_bytes(32, "big")), "points outside the data"),
        (corrupt(32, (10**6).to_bytes(32, "big")), "array length 1000000 is larger than the data"),
        (corrupt(96, b"\x01"), "address at byte 96 has non-zero high bytes"),
        (corrupt(96 + 5 * 32, (2).to_bytes(32, "big")), "bool at byte 256 is 2"),
    ],
)
def test_malformed_data_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(AbiDecodeError, match=message):
        decode_tuple_array(data, "abuuso")
    with pytest.raises(DecodingError):  # eth_abi refuses the same bytes
        decode([PROVIDER], data)


def test_non_zero_padding_and_bad_utf8_are_refused() -> None:
    string_at = GOOD.index(b"meta")
    with pytest.raises(AbiDecodeError, match="non-zero padding"):
        decode_tuple_array(corrupt(string_at + 4, b"\x01"), "abuuso")
    with pytest.raises(AbiDecodeError, match="is not UTF-8"):
        decode_tuple_array(corrupt(string_at, b"\xff"), "abuuso")


def test_contract_reader_wraps_errors_in_chain_error() -> None:
    with pytest.raises(ChainError, match=r"getActiveProvidersLive\(\) at 0xabc: the answer is not a valid"):
        decode_providers(GOOD[:-32], "0xabc")
    with pytest.raises(ChainError, match="no contract answered at 0xabc"):
        decode_providers(b"", "0xabc")


def test_unsupported_kinds() -> None:
    with pytest.raises(ValueError, match="unsupported tuple kinds"):
        decode_tuple_array(GOOD, "abx")
