"""Property-based tests of header parsing: any malformed header is 400/401, never a crash or a 500."""

from __future__ import annotations

import string
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from function_node.client import FxnSigner
from function_node.errors import AuthError, SigningError
from function_node.metrics import NodeMetrics
from function_node.protocol import (
    AuthHeaders,
    is_wellformed_signature,
    parse_auth_headers,
)
from function_node.signing import LocalSigner, normalize_address, parse_signature
from tests.fixtures.auth import build_auth_app, make_context
from tests.fixtures.common import DEV_KEYS

GATEWAY = LocalSigner.from_hex(DEV_KEYS[0])
NODE = LocalSigner.from_hex(DEV_KEYS[2])
HEX = string.hexdigits
NAMES = ("X-Address", "X-Timestamp", "X-Nonce", "X-Signature")


def good_headers() -> dict[str, str]:
    return FxnSigner(GATEWAY).headers("POST", "/v1/echo", b"{}", nonce="abc")


def parse_outcome(headers: dict[str, str]) -> tuple[int, str] | AuthHeaders:
    try:
        return parse_auth_headers(headers)
    except AuthError as exc:
        return exc.status, exc.reason


not_an_address = st.text().filter(
    lambda s: (
        not (len(s.strip()) == 42 and s.strip()[:2] in ("0x", "0X") and all(c in HEX for c in s.strip()[2:]))
    )
)
not_a_timestamp = st.text().filter(
    lambda s: not (0 < len(s.strip()) <= 12 and all(c in "0123456789" for c in s.strip()))
)
bad_nonce = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=129, max_size=300),
    st.text(min_size=1).filter(lambda s: any(not 0x21 <= ord(c) <= 0x7E for c in s)),
)
bad_v = st.integers(min_value=0, max_value=255).filter(lambda v: v not in (0, 1, 27, 28))
bad_signature = st.one_of(
    st.text().filter(lambda s: not is_wellformed_signature(s.strip())),
    st.binary(min_size=0, max_size=80).filter(lambda b: len(b) != 65).map(bytes.hex),
    st.tuples(st.binary(min_size=64, max_size=64), bad_v).map(lambda t: (t[0] + bytes((t[1],))).hex()),
)


@given(st.dictionaries(st.sampled_from([*NAMES, "X-Fxn-Auth"]), st.text(), max_size=5))
def test_arbitrary_headers_only_ever_give_auth_errors(headers: dict[str, str]) -> None:
    outcome = parse_outcome(headers)
    if not isinstance(outcome, AuthHeaders):
        assert outcome in ((401, "missing_header"), (400, "malformed_header"))


@given(not_an_address)
def test_bad_address(value: str) -> None:
    headers = good_headers() | {"X-Address": value}
    expected = (401, "missing_header") if not value else (400, "malformed_header")
    assert parse_outcome(headers) == expected


@given(not_a_timestamp)
@example("+1700000000")
@example("1_700_000_000")
@example("\u0661\u0662")  # Arabic-Indic digits: str.isdigit() says yes, the spec says decimal ASCII
def test_bad_timestamp(value: str) -> None:
    headers = good_headers() | {"X-Timestamp": value}
    expected = (401, "missing_header") if not value else (400, "malformed_header")
    assert parse_outcome(headers) == expected


@given(bad_nonce)
@example("a b")
@example("\t")
@example("caf\u00e9")
def test_bad_nonce(value: str) -> None:
    assert parse_outcome(good_headers() | {"X-Nonce": value}) == (400, "malformed_header")


@given(bad_signature)
@example("ab" * 64 + " 1b")
@example("0x" + "ab" * 64 + "1d")
def test_bad_signature_form(value: str) -> None:
    headers = good_headers() | {"X-Signature": value}
    expected = (401, "missing_header") if not value else (400, "malformed_header")
    assert parse_outcome(headers) == expected


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128))
def test_every_printable_nonce_is_wellformed(nonce: str) -> None:
    outcome = parse_outcome(good_headers() | {"X-Nonce": nonce})
    assert isinstance(outcome, AuthHeaders)
    assert outcome.nonce == nonce


# Header values that an HTTP client can put on the wire (no CR, LF or NUL; any other text).
wire_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_characters="\x7f"), max_size=200
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), value=wire_text)
@example(name="X-Nonce", value=" ")
@example(name="X-Nonce", value=" padded ")
@example(name="X-Signature", value="ab" * 64 + " 1b")
async def test_malformed_headers_through_the_server_never_give_500(name: str, value: str) -> None:
    metrics = NodeMetrics(CollectorRegistry())
    ctx = make_context(NODE, metrics, gateways=[GATEWAY.address], schedulers=[])
    headers = FxnSigner(GATEWAY).headers("POST", "/v1/echo", b"{}", timestamp=int(time.time()))
    headers[name] = value
    # The server sees the value without surrounding spaces (HTTP strips optional whitespace).
    expected = parse_outcome(headers | {name: value.strip(" ")})
    async with TestClient(TestServer(build_auth_app(ctx), host="127.0.0.1")) as client:
        resp = await client.post("/v1/echo", data=b"{}", headers=headers)
        body = await resp.json()
        status = resp.status
    if isinstance(expected, tuple):
        assert (status, body["error"]["code"]) == expected
    else:
        # Well-formed after all: then only the truth of the signature decides.
        assert status in (200, 401)
        assert status == 200 or body["error"]["code"] in (
            "bad_signature",
            "unknown_caller",
            "stale_timestamp",
        )


@pytest.mark.parametrize(
    "value",
    [
        "0x1_" + "a" * 38,  # int(x, 16) takes "_" between digits
        "0x +" + "a" * 37,
        "0x" + "a" * 39 + "\u0661",
    ],
)
def test_shared_normalize_address_refuses_lenient_spellings(value: str) -> None:
    with pytest.raises(SigningError):
        normalize_address(value)


def test_shared_parse_signature_refuses_hex_with_inner_spaces() -> None:
    # 130 characters, but bytes.fromhex skips the spaces and yields 64 bytes.
    with pytest.raises(SigningError):
        parse_signature("ab" * 63 + "  1b")
