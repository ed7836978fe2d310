"""The fast tuple-array decoder agrees with eth_abi, and refuses what eth_abi refuses.

Besides hand-made cases, a differential fuzz test mutates valid encodings (offsets, lengths, padding,
truncation) and holds the decoder to this: whatever eth_abi refuses it refuses; whatever it accepts
eth_abi accepts with the same values; and where eth_abi accepts what it refuses, the reason is the one
rule it adds (values laid out in order, not overlapping).
"""

from __future__ import annotations

import pytest
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from hypothesis import HealthCheck, given, settings
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
        (corrupt(0, (len(GOOD)).to_bytes(32, "big")), "offset at byte 0 points outside the data"),
        (corrupt(0, (0).to_bytes(32, "big")), r"offset at byte 0 points into the offsets area \(byte 0\)"),
        (corrupt(64, (0).to_bytes(32, "big")), r"offset at byte 64 points into the offsets area \(byte 64\)"),
        (corrupt(96 + 32, (0).to_bytes(32, "big")), r"offset at byte 128 points into the offsets area"),
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


# --- the differential fuzz -------------------------------------------------------------------------

SHAPES = {
    "abuuso": "(address,bytes,uint256,uint256,string,bool)[]",
    "abuso": "(address,bytes,uint256,string,bool)[]",
    "auo": "(address,uint256,bool)[]",
}
_FIELDS = {
    "a": addresses,
    "b": st.binary(max_size=70),
    "u": uints,
    "s": st.text(max_size=40),
    "o": st.booleans(),
}


def _eth_abi(shape: str, data: bytes) -> list[tuple[object, ...]] | Exception:
    try:
        (rows,) = decode([shape], data)
    except Exception as exc:  # any refusal counts: DecodingError, or OverflowError on a huge length
        return exc
    return [tuple(r) for r in rows]


def _ours(kinds: str, data: bytes) -> list[tuple[object, ...]] | AbiDecodeError:
    try:
        return list(decode_tuple_array(data, kinds))
    except AbiDecodeError as exc:
        return exc


def _assert_agrees(kinds: str, data: bytes) -> None:
    theirs, ours = _eth_abi(SHAPES[kinds], data), _ours(kinds, data)
    if isinstance(theirs, Exception):
        assert isinstance(ours, AbiDecodeError), f"eth_abi refuses ({theirs!r}), fast_abi accepts {ours!r}"
    elif isinstance(ours, AbiDecodeError):
        assert "values must not overlap" in str(ours), f"eth_abi accepts, fast_abi refuses: {ours}"
    else:
        assert ours == theirs


@st.composite
def mutated_encodings(draw: st.DrawFn) -> tuple[str, bytes]:
    kinds = draw(st.sampled_from(sorted(SHAPES)))
    rows = draw(st.lists(st.tuples(*(_FIELDS[k] for k in kinds)), max_size=5))
    data = bytearray(encode([SHAPES[kinds]], [rows]))
    words = len(data) // 32
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["word", "offset", "byte", "truncate", "extend"]))
        if action in ("word", "offset") and words:
            at = 32 * draw(st.integers(0, words - 1))
            if action == "offset":  # a plausible pointer or length: small, often word-aligned
                value = draw(
                    st.one_of(st.integers(0, len(data) + 64), st.integers(0, words + 2).map(lambda w: 32 * w))
                )
            else:
                value = draw(uints)
            data[at : at + 32] = value.to_bytes(32, "big")
        elif action == "byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif action == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif action == "extend":
            data += draw(st.binary(min_size=1, max_size=64))
    return kinds, bytes(data)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_encodings())
def test_differential_fuzz_against_eth_abi(case: tuple[str, bytes]) -> None:
    kinds, data = case
    _assert_agrees(kinds, data)


def _shared_tail(rows: int, metadata: str) -> bytes:
    """Every array element points at one provider tuple: valid for eth_abi, and it multiplies."""
    one = encode([PROVIDER], [[("0x" + "ab" * 20, b"id", 2, 3, metadata, False)]])
    tuple_encoding = one[96:]  # after the top offset, the count and the single element offset
    offsets_end = 32 * rows
    head = (32).to_bytes(32, "big") + rows.to_bytes(32, "big")
    return head + offsets_end.to_bytes(32, "big") * rows + tuple_encoding


def test_overlapping_values_that_eth_abi_accepts_are_refused() -> None:
    data = _shared_tail(200, "x" * 1000)
    (expanded,) = decode([PROVIDER], data)  # eth_abi: 200 copies of a 1,000-character string
    assert len(expanded) == 200
    assert sum(len(r[4]) for r in expanded) > 25 * len(data)
    with pytest.raises(
        AbiDecodeError, match=r"offset at byte 96 points at byte \d+, inside the value before"
    ):
        decode_tuple_array(data, "abuuso")
    _assert_agrees("abuuso", data)


def test_a_field_offset_pointing_back_at_an_earlier_field_is_refused() -> None:
    row = ("0x" + "ab" * 20, b"same", 2, 3, "meta", False)
    data = bytearray(encode([PROVIDER], [[row]]))
    tuple_at = 96
    bytes_offset = data[tuple_at + 32 : tuple_at + 64]
    data[tuple_at + 4 * 32 : tuple_at + 5 * 32] = bytes_offset  # the string points at the bytes value
    assert decode([PROVIDER], bytes(data))[0][0][4] == "same"  # eth_abi reads the bytes as the string
    with pytest.raises(AbiDecodeError, match="inside the value before it"):
        decode_tuple_array(bytes(data), "abuuso")
