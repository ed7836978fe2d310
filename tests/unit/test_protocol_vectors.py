"""The published response-signing vectors (``tests/data/response-signing.json``, SPEC §5): the node's own
signers reproduce every case's exact message and signature, and the client's one verification function
accepts each answer as published and refuses it once any field differs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import pytest

from function_node.client import verify_response_signature
from function_node.protocol import STREAM_SIGNATURE_PREFIX, AnswerSigner, response_message
from function_node.signing import LocalSigner, body_sha256, recover_address
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.high_s import high_s_twin, recover_ignoring_eip2

VECTORS: Final = json.loads((Path(__file__).parent.parent / "data" / "response-signing.json").read_text())
CASES: Final[list[dict[str, Any]]] = VECTORS["cases"]
PLAIN: Final = [c for c in CASES if c["form"] == "plain"]
STREAM: Final = [c for c in CASES if c["form"] == "stream"]


def case_id(case: dict[str, Any]) -> str:
    return f"{case['form']}-{case['status']}-{case['nonce']}"


def signer_of(case: dict[str, Any]) -> AnswerSigner:
    node = LocalSigner.from_hex(case["node_private_key"])
    request_hash = body_sha256(case["request_body_utf8"].encode())
    return AnswerSigner(node, case["caller_address"], request_hash, case["nonce"])


def verify(case: dict[str, Any], **changed: Any) -> bool:
    """The case through ``verify_response_signature``, with ``changed`` fields replaced."""
    fields: dict[str, Any] = {
        "node_address": case["node_address"],
        "caller_address": case["caller_address"],
        "request_body": case["request_body_utf8"].encode(),
        "nonce": case["nonce"],
        "status": case["status"],
    }
    if case["form"] == "plain":
        fields["body"] = case["response_body_utf8"].encode()
        fields["signature"] = case["signature"]
    else:
        fields["body"] = case["stream_on_the_wire_utf8"].encode()
    fields.update(changed)
    node_address = fields.pop("node_address")
    return verify_response_signature(node_address, **fields)


def test_the_vectors_hold_a_plain_an_error_and_a_stream_case() -> None:
    assert [(c["form"], c["status"]) for c in CASES] == [("plain", 200), ("plain", 404), ("stream", 200)]
    # The node key is the public development key whose address the vectors name.
    assert {c["node_private_key"] for c in CASES} == {DEV_KEYS[2]}
    assert {LocalSigner.from_hex(c["node_private_key"]).address for c in CASES} == {CASES[0]["node_address"]}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_message_is_built_exactly_as_published(case: dict[str, Any]) -> None:
    body = (case["response_body_utf8"]).encode()
    message = response_message(
        case["node_address"],
        case["caller_address"],
        body_sha256(case["request_body_utf8"].encode()),
        case["nonce"],
        case["status"],
        body_sha256(body),
    )
    assert message == case["message"]
    lines = message.split("\n")
    assert lines[0] == "fxn-response-v1"
    assert lines[1:3] == [case["node_address"].lower(), case["caller_address"].lower()]
    assert lines[4:6] == [case["nonce"], str(case["status"])]
    assert recover_address(message, case["signature"]) == case["node_address"].lower()


@pytest.mark.parametrize("case", PLAIN, ids=case_id)
def test_the_node_signs_a_plain_answer_exactly_as_published(case: dict[str, Any]) -> None:
    signature = signer_of(case).plain(case["status"], case["response_body_utf8"].encode())
    assert signature == case["signature"]


@pytest.mark.parametrize("case", STREAM, ids=case_id)
def test_the_node_signs_a_stream_exactly_as_published(case: dict[str, Any]) -> None:
    stream = signer_of(case).stream(case["status"])
    body = case["response_body_utf8"].encode()
    # The node hashes the stream as it relays it, chunk by chunk: split it at every event.
    for event in body.split(b"\n\n")[:-1]:
        stream.update(event + b"\n\n")
    line = stream.line()
    assert stream.closed
    assert line == STREAM_SIGNATURE_PREFIX + case["signature"].encode() + b"\n\n"
    assert body + line == case["stream_on_the_wire_utf8"].encode()


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_client_verifies_each_case_as_published(case: dict[str, Any]) -> None:
    assert verify(case)


OTHER_ADDRESS: Final = LocalSigner.from_hex(DEV_KEYS[3]).address


def _one_byte_changed(data: bytes, at: int) -> bytes:
    return data[:at] + bytes((data[at] ^ 0x01,)) + data[at + 1 :]


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize(
    "field",
    ["node_address", "caller_address", "request_body", "nonce", "status", "body", "signature"],
)
def test_any_changed_field_fails_the_check(case: dict[str, Any], field: str) -> None:
    if field == "signature" and case["form"] == "stream":
        wire = case["stream_on_the_wire_utf8"].encode()
        other = next(c for c in CASES if c is not case)["signature"].encode()
        changed: dict[str, Any] = {"body": wire.replace(case["signature"].encode(), other)}
    elif field == "body":
        body = (
            case["stream_on_the_wire_utf8"] if case["form"] == "stream" else case["response_body_utf8"]
        ).encode()
        changed = {"body": _one_byte_changed(body, 10)}  # inside the first event (or the JSON)
    else:
        changed = {
            "node_address": {"node_address": OTHER_ADDRESS},
            "caller_address": {"caller_address": OTHER_ADDRESS},
            "request_body": {"request_body": case["request_body_utf8"].encode() + b" "},
            "nonce": {"nonce": case["nonce"] + "x"},
            "status": {"status": case["status"] + 1},
            "signature": {"signature": next(c for c in CASES if c is not case)["signature"]},
        }[field]
    assert not verify(case, **changed)


@pytest.mark.parametrize("case", STREAM, ids=case_id)
def test_a_stream_is_not_accepted_without_its_exact_last_line(case: dict[str, Any]) -> None:
    wire = case["stream_on_the_wire_utf8"].encode()
    body = case["response_body_utf8"].encode()
    assert not verify(case, body=body)  # no signature line at all
    assert not verify(case, body=wire + b"data: [DONE]\n\n")  # bytes after the line
    assert not verify(case, body=wire[:-1])  # the line's closing blank line cut
    # The header form does not stand in for the line: the signature covers the body, not the wire.
    assert not verify(case, body=wire, signature=case["signature"])
    assert verify(case, body=body, signature=case["signature"])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_high_s_twin_of_a_published_signature_is_refused(case: dict[str, Any]) -> None:
    twin = high_s_twin(case["signature"])
    # The twin is a real signature of the node over the same message; only EIP-2's rule refuses it.
    assert recover_ignoring_eip2(case["message"], twin) == case["node_address"].lower()
    if case["form"] == "plain":
        assert not verify(case, signature=twin)
    else:
        wire = case["stream_on_the_wire_utf8"].encode()
        assert not verify(case, body=wire.replace(case["signature"].encode(), twin.encode()))
