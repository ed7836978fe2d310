"""The matrix proof's driver (used by ``fxn challenge`` and the scheduler) against nodes built from the real
challenge code: an honest one, lazy ones, a relaying one, and answers that are not the prover's.

``send`` is the driver's transport: here it answers as a node would, computing with the real numpy
backend and Merkle tree; ``signer_problem`` is what the real transport reports for a foreign signature.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from function_node.challenges.matmul.commitment import MerkleTree
from function_node.challenges.matmul.compute import NumpyBackend
from function_node.challenges.matmul.driver import (
    DEFAULT_PROOF_ROWS,
    REASON_MALFORMED,
    REASON_PROOF_INVALID,
    REASON_REFUSED,
    REASON_SEED_MISMATCH,
    REASON_SIZE_MISMATCH,
    REASON_WRONG_SIGNER,
    run_matrix_proof,
)
from function_node.challenges.matmul.generate import MatrixKeys, parse_seed
from function_node.protocol import NodeReply

N = 64
SEED = "0x" + "5a" * 32
PROVER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

Tamper = Callable[[dict[str, Any]], dict[str, Any]]


class Node:
    """A node's two rounds: commits to ``digests`` (the real ones for ``computed_for`` unless replaced)."""

    def __init__(self, computed_for: str = PROVER, *, n: int = N) -> None:
        keys = MatrixKeys.bind(parse_seed(SEED), computed_for)
        self.digests = [int(d) for d in NumpyBackend().compute(n, keys).digests]
        self.n = n
        self.round_one: Tamper = lambda answer: answer
        self.round_two: Tamper = lambda answer: answer
        self.signer_problems: list[str | None] = [None, None]
        self.status = [200, 200]
        self.asked_rows: list[int] = []

    async def send(self, body: dict[str, Any]) -> NodeReply:
        payload = body["payload"]
        tree = MerkleTree.build(self.digests)
        if body["type"] == "MATRIX_MULTIPLICATION":
            answer = {
                "merkleRoot": "0x" + tree.root.hex(),
                "commitmentId": "cm_test",
                "seed": payload["seed"],
                "matrixSize": payload["size"],
                "computationTimeMs": 1.5,
                "backend": "cpu",
            }
            return NodeReply(self.status[0], self.round_one(answer), self.signer_problems[0])
        rows = payload["rows"]
        self.asked_rows = rows
        proofs = {
            "proofs": [
                {
                    "row": r,
                    "digest": str(self.digests[r]),
                    "siblings": ["0x" + s.hex() for s in tree.siblings(r)],
                }
                for r in rows
            ]
        }
        return NodeReply(self.status[1], self.round_two(proofs), self.signer_problems[1])


async def run(node: Node, **kwargs: Any) -> Any:
    return await run_matrix_proof(node.send, node.n, prover=PROVER, seed=SEED, **kwargs)


async def test_an_honest_node_passes_with_32_rows_by_default() -> None:
    node = Node()
    report = await run(node)
    assert (report.ok, report.reason, report.failures) == (True, "", [])
    assert DEFAULT_PROOF_ROWS == 32
    assert len(report.rows) == 32 == len(set(node.asked_rows))
    assert report.prover == PROVER.lower()
    assert report.seed == SEED
    assert report.commitment["commitmentId"] == "cm_test"


async def test_a_root_computed_for_another_node_fails_the_proof() -> None:
    # The relay case: the answer is an honest computation, but for another node's keys.
    report = await run(Node(computed_for=OTHER), rows=4)
    assert (report.ok, report.reason) == (False, REASON_PROOF_INVALID)
    assert len(report.failures) == 4
    assert all("differs from the recomputed" in f for f in report.failures)


async def test_a_lazy_node_that_skipped_rows_is_caught() -> None:
    node = Node()
    node.digests = [d if i % 2 == 0 else secrets.randbits(64) for i, d in enumerate(node.digests)]
    report = await run(node, rows=N)  # every row: the odd ones are made up
    assert (report.ok, report.reason) == (False, REASON_PROOF_INVALID)
    assert len(report.failures) == N // 2


async def test_proofs_against_another_root_are_caught() -> None:
    node = Node()
    node.round_one = lambda answer: {**answer, "merkleRoot": "0x" + "00" * 32}
    report = await run(node, rows=1)
    assert (report.ok, report.reason) == (False, REASON_PROOF_INVALID)
    assert report.failures[0].endswith("the Merkle path does not lead to the committed root")


async def test_a_missing_row_is_caught() -> None:
    node = Node()
    node.round_two = lambda answer: {"proofs": answer["proofs"][1:]}
    report = await run(node, rows=2)
    assert (report.ok, report.reason) == (False, REASON_PROOF_INVALID)
    assert report.failures == [f"row {report.rows[0]} is missing from the proofs"]


@pytest.mark.parametrize(
    ("tamper", "reason", "failure"),
    [
        (lambda a: {**a, "merkleRoot": "0x12"}, REASON_MALFORMED, "merkleRoot is not 0x + 64 hex digits"),
        (lambda a: {**a, "commitmentId": ""}, REASON_MALFORMED, "commitmentId is missing"),
        (
            lambda a: {**a, "seed": "0x" + "11" * 32},
            REASON_SEED_MISMATCH,
            "the node answered for another seed",
        ),
        (lambda a: {**a, "matrixSize": 8}, REASON_SIZE_MISMATCH, "asked n=64, the node answered n=8"),
    ],
)
async def test_round_one_answers_that_do_not_hold(tamper: Tamper, reason: str, failure: str) -> None:
    node = Node()
    node.round_one = tamper
    report = await run(node)
    assert (report.ok, report.reason, report.failures, report.rows) == (False, reason, [failure], [])


@pytest.mark.parametrize("round_index", [0, 1])
async def test_an_answer_not_signed_by_the_prover_is_wrong_signer(round_index: int) -> None:
    node = Node()
    node.signer_problems[round_index] = f"the answer names node {OTHER.lower()!r}, expected {PROVER.lower()}"
    report = await run(node)
    assert (report.ok, report.reason) == (False, REASON_WRONG_SIGNER)
    name = ("round one", "round two")[round_index]
    expected = f"{name}: HTTP 200: the answer names node {OTHER.lower()!r}, expected {PROVER.lower()}"
    assert report.failures == [expected]


async def test_a_signed_refusal_is_refused_not_wrong_signer() -> None:
    node = Node()
    node.status[0] = 429
    node.round_one = lambda _: {"error": {"message": "too many", "code": "too_many_pending_proofs"}}
    report = await run(node)
    assert (report.ok, report.reason, report.failures) == (
        False,
        REASON_REFUSED,
        ["round one refused: HTTP 429: too many"],
    )


async def test_the_callers_own_bad_seed_or_prover_is_a_value_error() -> None:
    node = Node()
    with pytest.raises(ValueError, match="seed must be"):
        await run_matrix_proof(node.send, N, prover=PROVER, seed="0x12")
    with pytest.raises(ValueError, match="not 0x followed by 40 hex digits"):
        await run_matrix_proof(node.send, N, prover="nobody", seed=SEED)
