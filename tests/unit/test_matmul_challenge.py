"""MATRIX_MULTIPLICATION and its PROOF round through the Challenge interface: answers and every refusal."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
import pytest

from function_node.challenges.base import ChallengeContext
from function_node.challenges.matmul.challenge import (
    MatmulService,
    MatrixMultiplicationChallenge,
    MatrixProofChallenge,
)
from function_node.challenges.matmul.compute import cuda_available
from function_node.challenges.matmul.generate import MatrixKeys, Seed
from function_node.challenges.matmul.verify import choose_rows, parse_root, verify_proofs
from function_node.errors import ChallengeError
from tests.fixtures.challenges import ContextFactory
from tests.unit.test_matmul_vectors import CASES

VECTOR_16 = next(c for c in CASES if c["n"] == 16)  # computed for the dev node key that ctx signs with

NO_GPU = not cuda_available()
LIMITS = {"maxSize": 128, "maxCpuSize": 96, "maxExplicitSize": 4, "proofTtl": "30s", "maxPendingProofs": 2}
ANSWER_FIELDS = {
    "computationTimeMs",
    "gflops",
    "flops",
    "backend",
    "device",
    "deviceInfo",
    "matrixSize",
    "merkleRoot",
    "resultSamples",
    "seed",
    "dtype",
    "commitmentId",
    "totalTimeMs",
}


@pytest.fixture
def ctx(challenge_ctx_factory: ContextFactory) -> ChallengeContext:
    return challenge_ctx_factory({"challenge": {"matmul": LIMITS}})


@pytest.fixture
async def pair(
    ctx: ChallengeContext,
) -> AsyncIterator[tuple[MatrixMultiplicationChallenge, MatrixProofChallenge]]:
    service = MatmulService(ctx.settings.challenge.matmul)
    yield MatrixMultiplicationChallenge(service), MatrixProofChallenge(service)
    await service.close()


Pair = tuple[MatrixMultiplicationChallenge, MatrixProofChallenge]


async def _refused(challenge: Any, payload: Any, ctx: ChallengeContext) -> ChallengeError:
    with pytest.raises(ChallengeError) as info:
        await challenge.run(payload, ctx)
    return info.value


async def test_verifiable_round_trip_with_the_published_vector(pair: Pair, ctx: ChallengeContext) -> None:
    mm, proof = pair
    assert ctx.signer.address == VECTOR_16["node_address"]
    payload = {"size": 16, "seed": VECTOR_16["seed"], "dtype": "int8", "backend": "cpu"}
    answer = await mm.run(payload, ctx)
    assert set(answer) >= ANSWER_FIELDS
    assert answer["merkleRoot"] == VECTOR_16["merkleRoot"]
    assert answer["seed"] == VECTOR_16["seed"]  # the request's seed, not the key material
    assert answer["prover"] == VECTOR_16["node_address"]
    assert answer["backend"] == "cpu" and answer["device"] == "cpu"
    assert answer["flops"] == 2 * 16**3
    assert answer["matrixSize"] == 16 and answer["dtype"] == "int8"
    assert set(answer["deviceInfo"]) == {"name", "computeCapability", "memoryGB"}
    rows = choose_rows(16, 8)
    proofs = await proof.run({"commitmentId": answer["commitmentId"], "rows": rows}, ctx)
    seed = Seed(bytes.fromhex(VECTOR_16["seed"][2:]))
    outcome = verify_proofs(
        seed, 16, parse_root(answer["merkleRoot"]), rows, proofs, prover=ctx.signer.address
    )
    assert outcome.ok, outcome.failures
    assert [p["digest"] for p in proofs["proofs"]] == [VECTOR_16["row_digests"][r] for r in rows]
    assert ctx.metrics.registry.get_sample_value("fxn_matmul_last_tops", {"backend": "cpu"}) is not None


async def test_random_form_draws_a_seed_that_verifies(pair: Pair, ctx: ChallengeContext) -> None:
    mm, proof = pair
    answer = await mm.run({"size": 33}, ctx)
    seed = Seed(bytes.fromhex(answer["seed"][2:]))
    proofs = await proof.run({"commitmentId": answer["commitmentId"], "rows": [0, 32]}, ctx)
    assert verify_proofs(
        seed, 33, parse_root(answer["merkleRoot"]), [0, 32], proofs, prover=ctx.signer.address
    ).ok


async def test_commitment_is_single_use(pair: Pair, ctx: ChallengeContext) -> None:
    mm, proof = pair
    answer = await mm.run({"size": 8}, ctx)
    await proof.run({"commitmentId": answer["commitmentId"], "rows": [1]}, ctx)
    err = await _refused(proof, {"commitmentId": answer["commitmentId"], "rows": [1]}, ctx)
    assert (err.status, err.code) == (400, "commitment_used")
    assert str(err) == (
        f"commitmentId {answer['commitmentId']!r} is used; each commitment answers one proof request"
    )


async def test_expired_and_unknown_commitments(pair: Pair, ctx: ChallengeContext) -> None:
    mm, proof = pair
    answer = await mm.run({"size": 8}, ctx)
    now = mm.service.store.clock()
    mm.service.store.clock = lambda: now + 30.0
    err = await _refused(proof, {"commitmentId": answer["commitmentId"], "rows": [0]}, ctx)
    assert (err.status, err.code) == (400, "commitment_expired")
    assert str(err).endswith("; proofs are kept for 30s")
    err = await _refused(proof, {"commitmentId": "cm_never", "rows": [0]}, ctx)
    assert (err.status, err.code, str(err)) == (
        400,
        "commitment_unknown",
        "commitmentId 'cm_never' is unknown",
    )


async def test_proof_row_limits_keep_the_commitment(pair: Pair, ctx: ChallengeContext) -> None:
    mm, proof = pair
    answer = await mm.run({"size": 90}, ctx)
    cid = answer["commitmentId"]
    err = await _refused(proof, {"commitmentId": cid, "rows": list(range(65))}, ctx)
    assert (err.status, err.code, str(err)) == (400, "too_many_rows", "at most 64 rows per proof, got 65")
    err = await _refused(proof, {"commitmentId": cid, "rows": [5, 90, -1]}, ctx)
    assert (err.status, err.code, str(err)) == (
        400,
        "row_out_of_range",
        "rows [90, -1] are out of range 0..89",
    )
    err = await _refused(proof, {"commitmentId": cid, "rows": []}, ctx)
    assert (err.code, str(err)) == ("invalid_rows", "rows must be a non-empty list of row numbers")
    err = await _refused(proof, {"commitmentId": cid, "rows": [1.5]}, ctx)
    assert (err.code, str(err)) == ("invalid_rows", "rows must be integers")
    err = await _refused(proof, ["not", "a", "dict"], ctx)
    assert err.code == "invalid_proof_request"
    # None of the refusals used the commitment up.
    assert len((await proof.run({"commitmentId": cid, "rows": list(range(64))}, ctx))["proofs"]) == 64


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        ({"size": 129}, "size_too_large", "size 129 exceeds maxSize=128"),
        (
            {"size": 97, "backend": "cpu"},
            "size_too_large",
            "size 97 exceeds maxCpuSize=96 for the CPU backend",
        ),
        ({"size": 0}, "invalid_size", "size must be a positive integer"),
        ({"size": True}, "invalid_size", "size must be a positive integer"),
        ({"size": "8"}, "invalid_size", "size must be a positive integer"),
        (
            {"size": 8, "seed": "0x1234"},
            "invalid_seed",
            'seed must be "0x" followed by 64 hex digits (32 bytes)',
        ),
        ({"size": 8, "dtype": "fp16"}, "invalid_dtype", "dtype must be one of int8, got 'fp16'"),
        (
            {"size": 8, "backend": "tpu"},
            "invalid_backend",
            "backend must be one of auto, cpu, gpu, got 'tpu'",
        ),
        ({}, "invalid_payload", 'payload needs "size" (or "A" and "B")'),
        (
            [1, 2],
            "invalid_payload",
            'payload must be {"A", "B"}, {"size"} or {"size", "seed", "dtype", "backend"}',
        ),
    ],
)
async def test_verifiable_refusals(
    pair: Pair, ctx: ChallengeContext, payload: Any, code: str, message: str
) -> None:
    err = await _refused(pair[0], payload, ctx)
    assert (err.status, err.code, str(err)) == (400, code, message)


@pytest.mark.skipif(not NO_GPU, reason="checks the refusals of a node without a CUDA device")
async def test_gpu_refusals_without_a_gpu(pair: Pair, ctx: ChallengeContext) -> None:
    err = await _refused(pair[0], {"size": 8, "backend": "gpu"}, ctx)
    assert (err.status, err.code, str(err)) == (
        400,
        "no_gpu",
        'backend "gpu" was asked for but this node has no CUDA device',
    )
    err = await _refused(pair[0], {"size": 97}, ctx)  # auto falls back to the CPU and its limit
    assert (err.status, err.code) == (400, "size_too_large")


async def test_too_many_pending_proofs_is_429(pair: Pair, ctx: ChallengeContext) -> None:
    mm, proof = pair
    first = await mm.run({"size": 8}, ctx)
    await mm.run({"size": 8}, ctx)
    err = await _refused(mm, {"size": 8}, ctx)
    assert (err.status, err.code) == (429, "too_many_pending_proofs")
    assert str(err) == "2 proofs are pending (maxPendingProofs); retry after 30s"
    await proof.run({"commitmentId": first["commitmentId"], "rows": [0]}, ctx)  # frees a slot
    assert (await mm.run({"size": 8}, ctx))["commitmentId"]


async def test_explicit_form_multiplies_in_float64(pair: Pair, ctx: ChallengeContext) -> None:
    a = [[1, 2.5], [3, 4], [0, -1]]
    b = [[2, 0, 1], [1, 1, 0.5]]
    for key_a, key_b in (("A", "B"), ("matrixA", "matrixB")):
        answer = orjson.loads(orjson.dumps(await pair[0].run({key_a: a, key_b: b}, ctx)))
        assert answer["C"] == (np.array(a) @ np.array(b)).tolist()
        assert answer["shape"] == [3, 2, 3] and answer["flops"] == 2 * 3 * 2 * 3
        assert answer["dtype"] == "float64" and answer["commitmentId"] is None


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        (
            {"A": [[1] * 5], "B": [[1]] * 5},
            "matrix_too_large",
            "matrix A has 5 columns; the limit is maxExplicitSize=4",
        ),
        (
            {"A": [[1]] * 5, "B": [[1]]},
            "matrix_too_large",
            "matrix A has 5 rows; the limit is maxExplicitSize=4",
        ),
        (
            {"A": [[1, 2], [3]], "B": [[1], [2]]},
            "invalid_matrix",
            "matrix A is not rectangular: row 1 has 1 entries, row 0 has 2",
        ),
        ({"A": [[1, 2]], "B": [[1, 2]]}, "dimension_mismatch", "inner dimensions differ: A is 1×2, B is 1×2"),
        ({"A": [[1, "x"]], "B": [[1], [2]]}, "invalid_matrix", "matrix A[0][1] is not a number: 'x'"),
        ({"A": [[1, True]], "B": [[1], [2]]}, "invalid_matrix", "matrix A[0][1] is not a number: True"),
        ({"A": [], "B": [[1]]}, "invalid_matrix", "matrix A must be a non-empty list of rows"),
        ({"A": [[]], "B": [[1]]}, "invalid_matrix", "matrix A row 0 must be a non-empty list"),
        (
            {"A": [[1]]},
            "invalid_matrix",
            'the explicit form needs both "A" and "B" (or "matrixA" and "matrixB")',
        ),
        (
            {"matrixA": [[1]], "matrixB": [[10**400]]},
            "invalid_matrix",
            "matrix B holds a number too large for float64",
        ),
        ({"A": [[1, float("nan")]], "B": [[1], [2]]}, "invalid_matrix", "matrix A holds a non-finite number"),
        ({"A": [[1]], "B": [[float("-inf")]]}, "invalid_matrix", "matrix B holds a non-finite number"),
        (
            {"A": [[1e200]], "B": [[1e200]]},
            "non_finite_result",
            "the product A·B overflows float64 (an entry is infinite or not a number); send smaller values",
        ),
        (
            {"A": [[1e308, 1e308]], "B": [[1], [1]]},
            "non_finite_result",
            "the product A·B overflows float64 (an entry is infinite or not a number); send smaller values",
        ),
    ],
)
async def test_explicit_refusals(
    pair: Pair, ctx: ChallengeContext, payload: Any, code: str, message: str
) -> None:
    err = await _refused(pair[0], payload, ctx)
    assert (err.status, err.code, str(err)) == (400, code, message)


def test_key_words_follow_the_spec() -> None:
    seed = Seed(hashlib.sha256(b"w").digest())
    prover = "0x" + "ab" * 20
    keys = MatrixKeys.bind(seed, prover)
    assert keys.material == hashlib.sha256(b"fxn-matmul-v2" + seed.raw + bytes.fromhex("ab" * 20)).digest()
    words = [int.from_bytes(keys.material[i : i + 4], "big") for i in range(0, 32, 4)]
    assert keys.a_keys == (words[0], words[1])
    assert keys.b_keys == (words[2], words[3])
    assert keys.digest_keys == (words[4], words[5])


async def test_a_1024_explicit_challenge_leaves_the_event_loop_free(
    challenge_ctx_factory: ContextFactory,
) -> None:
    """Parsing and checking 1024² numbers took ~0.3-0.7 s on the event loop; now it runs on the matrix
    worker a row at a time. A ticker task that wakes every 5 ms must never be held up for 0.25 s (a
    bound far above a row's worth of work, far below the parse: this is not a speed measurement)."""
    ctx = challenge_ctx_factory({"challenge": {"matmul": {**LIMITS, "maxExplicitSize": 1024}}})
    service = MatmulService(ctx.settings.challenge.matmul)
    rng = np.random.default_rng(7)
    a = rng.integers(-100, 100, (1024, 1024)).astype(np.float64)
    b = rng.integers(-100, 100, (1024, 1024)).astype(np.float64)
    payload = {"A": a.tolist(), "B": b.tolist()}
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0.02)
        raw = await MatrixMultiplicationChallenge(service).run(payload, ctx)
    finally:
        done.set()
        await ticking
        await service.close()
    answer = orjson.loads(orjson.dumps(raw))
    assert answer["C"] == (a @ b).tolist()
    assert answer["shape"] == [1024, 1024, 1024]
    assert len(gaps) > 3 and max(gaps) < 0.25, f"the event loop was held for {max(gaps):.3f} s"
