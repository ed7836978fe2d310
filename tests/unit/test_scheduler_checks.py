"""The scheduler's verdicts over answers built with the real challenge code (numpy backend, Merkle tree)."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
import pytest

from function_node.challenges.matmul.commitment import MerkleTree
from function_node.challenges.matmul.compute import NumpyBackend
from function_node.challenges.matmul.generate import parse_seed
from function_node.scheduler.checks import (
    CHECK_MATMUL,
    REASON_BACKEND_UNREACHABLE,
    REASON_BAD_SIGNATURE,
    REASON_MALFORMED,
    REASON_MISSING_ROWS,
    REASON_NO_TOKENS,
    REASON_NONCE_MISMATCH,
    REASON_PROOF_INVALID,
    REASON_SEED_MISMATCH,
    REASON_SIGNER_MISMATCH,
    REASON_SIZE_MISMATCH,
    REASON_STREAM_ERROR,
    REASON_STREAM_UNTERMINATED,
    REASON_UNEXPECTED_ADDRESS,
    CheckResult,
    Commitment,
    StreamEvent,
    choose_rows,
    parse_commitment,
    summarize_stream,
    verify_endpoint,
    verify_identity,
    verify_proofs,
)
from function_node.scheduler.verification import matmul_verifier
from function_node.signing import LocalSigner

N = 64
SEED = "0x" + "5a" * 32


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


class HonestNode:
    """What an honest node commits to: digests of the real C = A·B (numpy backend), and their tree."""

    def __init__(self, n: int = N, seed: str = SEED) -> None:
        self.n, self.seed = n, seed
        result = NumpyBackend().compute(n, parse_seed(seed))
        self.digests = [int(d) for d in result.digests]

    def commit(self, digests: list[int] | None = None) -> tuple[dict[str, Any], MerkleTree, list[int]]:
        digests = self.digests if digests is None else digests
        tree = MerkleTree.build(digests)
        answer = {
            "merkleRoot": "0x" + tree.root.hex(),
            "commitmentId": "cm_test",
            "seed": self.seed,
            "matrixSize": self.n,
            "computationTimeMs": 1.5,
            "backend": "cpu",
        }
        return answer, tree, digests

    @staticmethod
    def prove(tree: MerkleTree, digests: list[int], rows: list[int]) -> dict[str, Any]:
        return {
            "proofs": [
                {"row": i, "digest": str(digests[i]), "siblings": ["0x" + s.hex() for s in tree.siblings(i)]}
                for i in rows
            ]
        }


@pytest.fixture(scope="module")
def honest() -> HonestNode:
    return HonestNode()


def commitment_of(answer: dict[str, Any]) -> Commitment:
    parsed = parse_commitment(answer, seed=SEED, size=N)
    assert isinstance(parsed, Commitment)
    return parsed


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


# -- matrix proof ----------------------------------------------------------------------------------


def test_choose_rows_are_distinct_sorted_and_in_range() -> None:
    rows = choose_rows(100, 16)
    assert rows == sorted(set(rows)) and len(rows) == 16 and all(0 <= r < 100 for r in rows)
    assert choose_rows(4, 16) == [0, 1, 2, 3]


def test_honest_proof_verifies(honest: HonestNode) -> None:
    answer, tree, digests = honest.commit()
    rows = choose_rows(N, 8)
    result = verify_proofs(commitment_of(answer), rows, honest.prove(tree, digests, rows), matmul_verifier())
    assert result.ok, result.detail
    assert result.detail == f"8 rows verified at n={N}"


def test_lazy_node_that_skipped_rows_is_caught(honest: HonestNode) -> None:
    # The node "computed" only the even rows and committed to made-up digests for the odd ones.
    fake = [d if i % 2 == 0 else secrets.randbits(64) for i, d in enumerate(honest.digests)]
    answer, tree, digests = honest.commit(fake)
    rows = [1, 2, 3]
    result = verify_proofs(commitment_of(answer), rows, honest.prove(tree, digests, rows), matmul_verifier())
    assert (result.ok, result.reason) == (False, REASON_PROOF_INVALID)
    assert "row 1: digest" in result.detail and "row 3: digest" in result.detail


def test_proof_against_another_root_is_caught(honest: HonestNode) -> None:
    answer, tree, digests = honest.commit()
    answer["merkleRoot"] = "0x" + "00" * 32
    rows = [5]
    result = verify_proofs(commitment_of(answer), rows, honest.prove(tree, digests, rows), matmul_verifier())
    assert (result.ok, result.reason) == (False, REASON_PROOF_INVALID)
    assert "does not lead to the committed root" in result.detail


def test_proof_missing_a_row_is_caught(honest: HonestNode) -> None:
    answer, tree, digests = honest.commit()
    result = verify_proofs(commitment_of(answer), [1, 2], honest.prove(tree, digests, [1]), matmul_verifier())
    assert (result.ok, result.reason) == (False, REASON_MISSING_ROWS)
    assert result.detail == "asked 2 rows, missing [2]"


@pytest.mark.parametrize("answer", [{}, {"proofs": "x"}, {"proofs": [1]}, []])
def test_malformed_proof_answers(honest: HonestNode, answer: object) -> None:
    commitment, _, _ = honest.commit()
    assert verify_proofs(commitment_of(commitment), [1], answer, matmul_verifier()).reason == REASON_MALFORMED


def test_commitment_checks_seed_size_and_shape(honest: HonestNode) -> None:
    answer, _, _ = honest.commit()
    assert isinstance(parse_commitment(answer, seed=SEED, size=N), Commitment)
    other_seed = parse_commitment(answer, seed="0x" + "11" * 32, size=N)
    assert isinstance(other_seed, CheckResult) and other_seed.reason == REASON_SEED_MISMATCH
    other_size = parse_commitment(answer, seed=SEED, size=N * 2)
    assert isinstance(other_size, CheckResult) and other_size.reason == REASON_SIZE_MISMATCH
    bad_root = parse_commitment({**answer, "merkleRoot": "0x12"}, seed=SEED, size=N)
    assert isinstance(bad_root, CheckResult) and bad_root.reason == REASON_MALFORMED
    no_id = parse_commitment({**answer, "commitmentId": ""}, seed=SEED, size=N)
    assert isinstance(no_id, CheckResult) and (no_id.check, no_id.reason) == (CHECK_MATMUL, REASON_MALFORMED)


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
