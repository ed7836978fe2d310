"""The scheduler's verdicts over IDENTITY, ENDPOINT_REACHABLE and inference answers (the matrix proof's
verdicts are tested with their driver, tests/unit/test_matmul_driver.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from function_node.scheduler.checks import (
    REASON_BACKEND_UNREACHABLE,
    REASON_BAD_SIGNATURE,
    REASON_MALFORMED,
    REASON_NO_TOKENS,
    REASON_NONCE_MISMATCH,
    REASON_SIGNER_MISMATCH,
    REASON_STREAM_ERROR,
    REASON_STREAM_UNTERMINATED,
    REASON_UNEXPECTED_ADDRESS,
    StreamEvent,
    summarize_stream,
    verify_endpoint,
    verify_identity,
)
from function_node.signing import LocalSigner


def identity_answer(signer: LocalSigner, nonce: str, ip: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "address": signer.address,
        "publicKey": signer.address,
        "publicKeyHex": signer.public_key_hex,
        "ipAddress": ip,
        "nonce": nonce,
        "signature": signer.sign(f"{signer.address}.{ip}.{nonce}"),
        "gpuStats": [],
        "system": {},
        "version": "test",
    }


# -- IDENTITY --------------------------------------------------------------------------------------


def test_identity_passes_for_a_correct_signature(node_signer: LocalSigner) -> None:
    result = verify_identity(
        identity_answer(node_signer, "n1"), nonce="n1", expected_address=node_signer.address
    )
    assert result.ok and result.reason == ""
    assert result.values["address"] == node_signer.address.lower()


def test_identity_without_expected_address_checks_only_the_signature(node_signer: LocalSigner) -> None:
    assert verify_identity(identity_answer(node_signer, "n1"), nonce="n1").ok


def test_identity_refuses_an_echoed_other_nonce(node_signer: LocalSigner) -> None:
    result = verify_identity(identity_answer(node_signer, "old"), nonce="new")
    assert (result.ok, result.reason) == (False, REASON_NONCE_MISMATCH)


def test_identity_refuses_a_signature_by_another_key(
    node_signer: LocalSigner, stranger_signer: LocalSigner
) -> None:
    answer = identity_answer(node_signer, "n1")
    answer["signature"] = stranger_signer.sign(f"{node_signer.address}.127.0.0.1.n1")
    result = verify_identity(answer, nonce="n1")
    assert (result.ok, result.reason) == (False, REASON_SIGNER_MISMATCH)
    assert stranger_signer.address.lower() in result.detail


def test_identity_refuses_a_signature_over_another_ip(node_signer: LocalSigner) -> None:
    answer = identity_answer(node_signer, "n1", ip="10.0.0.1")
    answer["ipAddress"] = "10.0.0.2"  # the claim changed after signing: recovers to some other key
    assert verify_identity(answer, nonce="n1").reason == REASON_SIGNER_MISMATCH


def test_identity_refuses_garbage_signature(node_signer: LocalSigner) -> None:
    answer = identity_answer(node_signer, "n1")
    answer["signature"] = "0x1234"
    result = verify_identity(answer, nonce="n1")
    assert (result.ok, result.reason) == (False, REASON_BAD_SIGNATURE)


def test_identity_refuses_an_unexpected_node(node_signer: LocalSigner, stranger_signer: LocalSigner) -> None:
    result = verify_identity(
        identity_answer(stranger_signer, "n1"), nonce="n1", expected_address=node_signer.address
    )
    assert (result.ok, result.reason) == (False, REASON_UNEXPECTED_ADDRESS)


@pytest.mark.parametrize("answer", [[], "x", {"address": 1, "ipAddress": "", "signature": ""}, {}])
def test_identity_refuses_malformed_answers(answer: object) -> None:
    assert verify_identity(answer, nonce="n").reason == REASON_MALFORMED


# -- ENDPOINT_REACHABLE ----------------------------------------------------------------------------


def test_endpoint_all_reachable_passes() -> None:
    result = verify_endpoint([{"reachable": True, "statusCode": 200, "latencyMs": 3.0}] * 2)
    assert result.ok and result.values["reachable"] == 2


def test_endpoint_one_down_fails() -> None:
    result = verify_endpoint([{"reachable": True, "latencyMs": 1}, {"reachable": False, "statusCode": None}])
    assert (result.ok, result.reason) == (False, REASON_BACKEND_UNREACHABLE)
    assert result.detail == "1 of 2 down"


@pytest.mark.parametrize("answer", [[], {"reachable": "yes"}, [{"reachable": True}, 3]])
def test_endpoint_malformed(answer: object) -> None:
    assert verify_endpoint(answer).reason == REASON_MALFORMED


# -- inference stream ------------------------------------------------------------------------------


def chunk(text: str) -> str:
    return orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).decode()


def test_stream_measures_ttft_and_rate() -> None:
    events = [StreamEvent(0.1, '{"choices":[{"delta":{"role":"assistant"}}]}')]
    events += [StreamEvent(0.2 + i * 0.1, chunk(f"t{i}")) for i in range(5)]
    events.append(StreamEvent(0.7, "[DONE]"))
    result = summarize_stream(events)
    assert result.ok
    assert result.values["tokens"] == 5
    assert result.values["ttft_ms"] == pytest.approx(200.0)
    assert result.values["tokens_per_s"] == pytest.approx(10.0)


def test_stream_without_content_fails() -> None:
    result = summarize_stream([StreamEvent(0.1, "[DONE]")])
    assert (result.ok, result.reason) == (False, REASON_NO_TOKENS)


def test_stream_cut_before_done_fails() -> None:
    assert summarize_stream([StreamEvent(0.1, chunk("a"))]).reason == REASON_STREAM_UNTERMINATED


def test_stream_error_event_fails() -> None:
    events = [StreamEvent(0.1, chunk("a")), StreamEvent(0.2, '{"error": {"message": "backend died"}}')]
    result = summarize_stream(events)
    assert (result.reason, result.detail) == (REASON_STREAM_ERROR, "error event: backend died")


def test_stream_non_json_event_fails() -> None:
    assert summarize_stream([StreamEvent(0.1, "not json")]).reason == REASON_STREAM_ERROR


def test_stream_with_odd_choices_counts_no_tokens() -> None:
    events = [
        StreamEvent(0.1, '{"choices": 5}'),
        StreamEvent(0.2, '{"choices": {"a": 1}}'),
        StreamEvent(0.3, "[DONE]"),
    ]
    assert summarize_stream(events).reason == REASON_NO_TOKENS
