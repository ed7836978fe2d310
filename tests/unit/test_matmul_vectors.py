"""SPEC §7.2's prover-bound test vectors (tests/data/matmul-v2.json, a copy of the shared
vectors/matmul-v2.json, published in docs/challenges.md), reproduced by a slow, obviously-correct
pure-Python reference and by the fast numpy and torch paths.

The reference below follows the spec's definitions line by line on Python integers (masking to 32
bits after each step) and shares no code with the fast paths.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from function_node.challenges.matmul.commitment import MerkleTree, row_digests_np
from function_node.challenges.matmul.compute import NumpyBackend
from function_node.challenges.matmul.generate import MatrixKeys, Seed, generate_matrix_np

M32 = 0xFFFFFFFF


def ref_fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def ref_key_material(seed: bytes, address: str) -> bytes:
    return hashlib.sha256(b"fxn-matmul-v2" + seed + bytes.fromhex(address[2:])).digest()


def ref_words(material: bytes) -> list[int]:
    return [int.from_bytes(material[4 * i : 4 * i + 4], "big") for i in range(8)]


def ref_matrix(n: int, k0: int, k1: int) -> list[list[int]]:
    out = []
    for r in range(n):
        row = []
        for c in range(n):
            idx = (r * n + c) & M32
            h = ref_fmix32(ref_fmix32(idx ^ k0) ^ k1)
            row.append((h >> 24) - 128)
        out.append(row)
    return out


def ref_matmul(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    n = len(a)
    return [[sum(a[i][k] * b[k][j] for k in range(n)) for j in range(n)] for i in range(n)]


def ref_row_digest(row: list[int], w4: int, w5: int) -> int:
    total = 0
    for j, value in enumerate(row):
        key = ref_fmix32(j ^ w4)
        total += ref_fmix32((value & M32) ^ key ^ w5)
    return total % (1 << 64)


def ref_root(digests: list[int]) -> bytes:
    level = [
        hashlib.sha256(b"\x00" + i.to_bytes(4, "big") + d.to_bytes(8, "big")).digest()
        for i, d in enumerate(digests)
    ]
    size = 1
    while size < len(level):
        size *= 2
    level += [hashlib.sha256(b"\x02").digest()] * (size - len(level))
    while len(level) > 1:
        level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


def ref_levels(digests: list[int]) -> list[list[bytes]]:
    level = [
        hashlib.sha256(b"\x00" + i.to_bytes(4, "big") + d.to_bytes(8, "big")).digest()
        for i, d in enumerate(digests)
    ]
    size = 1
    while size < len(level):
        size *= 2
    level += [hashlib.sha256(b"\x02").digest()] * (size - len(level))
    levels = [level]
    while len(level) > 1:
        level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def ref_path(digests: list[int], row: int) -> list[str]:
    """Siblings of leaf ``row``, from the leaf level up."""
    path = []
    for level in ref_levels(digests)[:-1]:
        path.append("0x" + level[row ^ 1].hex())
        row //= 2
    return path


def ref_all(
    words: list[int], n: int
) -> tuple[list[list[int]], list[list[int]], list[list[int]], list[int], bytes]:
    a = ref_matrix(n, words[0], words[1])
    b = ref_matrix(n, words[2], words[3])
    c = ref_matmul(a, b)
    digests = [ref_row_digest(row, words[4], words[5]) for row in c]
    return a, b, c, digests, ref_root(digests)


CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "matmul-v2.json").read_text()
)["cases"]
OTHER_PROVER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _id(case: dict[str, Any]) -> str:
    return f"n{case['n']}"


def _seed(case: dict[str, Any]) -> bytes:
    return bytes.fromhex(case["seed"][2:])


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_reference_reproduces_the_published_vector(case: dict[str, Any]) -> None:
    material = ref_key_material(_seed(case), case["node_address"])
    assert "0x" + material.hex() == case["K"]
    words = ref_words(material)
    assert [f"0x{w:08x}" for w in words] == case["words"]
    a, b, c, digests, root = ref_all(words, case["n"])
    assert (a[0][:8], b[0][:8], c[0][:8]) == (case["A_row0"], case["B_row0"], case["C_row0"])
    assert [str(d) for d in digests] == case["row_digests"]
    assert "0x" + root.hex() == case["merkleRoot"]
    proof = case["proof_row_last"]
    assert ref_path(digests, proof["row"]) == proof["siblings"]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_matrix_keys_bind_the_seed_to_the_prover(case: dict[str, Any]) -> None:
    keys = MatrixKeys.bind(Seed(_seed(case)), case["node_address"])
    assert "0x" + keys.material.hex() == case["K"]
    assert [f"0x{w:08x}" for w in keys.words] == case["words"]
    assert MatrixKeys.bind(Seed(_seed(case)), case["node_address"].lower()) == keys  # any case


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_numpy_backend_matches_the_published_vector(case: dict[str, Any]) -> None:
    n = case["n"]
    keys = MatrixKeys.bind(Seed(_seed(case)), case["node_address"])
    assert generate_matrix_np(n, keys.a_keys)[0, :8].tolist() == case["A_row0"]
    assert generate_matrix_np(n, keys.b_keys)[0, :8].tolist() == case["B_row0"]
    result = NumpyBackend().compute(n, keys)
    assert [str(d) for d in result.digests.tolist()] == case["row_digests"]
    tree = MerkleTree.build(result.digests.tolist())
    assert "0x" + tree.root.hex() == case["merkleRoot"]
    proof = case["proof_row_last"]
    assert ["0x" + s.hex() for s in tree.siblings(proof["row"])] == proof["siblings"]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_torch_cpu_backend_matches_the_published_vector(case: dict[str, Any]) -> None:
    pytest.importorskip("torch", reason="torch (optional extra) is not installed")
    from function_node.challenges.matmul.compute import TorchBackend

    keys = MatrixKeys.bind(Seed(_seed(case)), case["node_address"])
    result = TorchBackend("cpu").compute(case["n"], keys)
    assert [str(d) for d in result.digests.tolist()] == case["row_digests"]
    assert "0x" + MerkleTree.build(result.digests.tolist()).root.hex() == case["merkleRoot"]


# n = 16, the vector's seed: the root without the binding (the words read straight from the seed, as
# before SPEC §7.2 bound the proof to the prover) and the root for another prover (anvil's account 1).
UNBOUND_ROOT_16 = "0xd859ab50978da8b6f0fbc02aa4436ed9e6ddb5652c09f9b967d3da89117a60dc"
OTHER_PROVER_ROOT_16 = "0xcbb53d29204ff2c58e00a50b74b4419e538eca4570073a12a4fecfc597934746"


def test_the_bound_root_differs_from_the_unbound_root_and_from_another_provers() -> None:
    case = next(c for c in CASES if c["n"] == 16)
    seed = _seed(case)
    unbound = ref_all(ref_words(seed), 16)[4]
    other = ref_all(ref_words(ref_key_material(seed, OTHER_PROVER)), 16)[4]
    assert "0x" + unbound.hex() == UNBOUND_ROOT_16
    assert "0x" + other.hex() == OTHER_PROVER_ROOT_16
    fast_other = NumpyBackend().compute(16, MatrixKeys.bind(Seed(seed), OTHER_PROVER))
    assert "0x" + MerkleTree.build(fast_other.digests.tolist()).root.hex() == OTHER_PROVER_ROOT_16
    assert len({case["merkleRoot"], UNBOUND_ROOT_16, OTHER_PROVER_ROOT_16}) == 3


def test_row_digest_of_negative_values_uses_twos_complement() -> None:
    # uint32(C[i][j]) of a negative int32 is its two's complement; -1 becomes 0xFFFFFFFF.
    row = [-1, 0, 2**31 - 1, -(2**31)]
    expected = ref_row_digest(row, 7, 9)
    assert row_digests_np(np.array([row], dtype=np.int64), 7, 9).tolist() == [expected]


def test_reference_and_fast_generator_agree_on_a_rectangle_of_rows() -> None:
    # Wide keys exercise the XOR with high bits set.
    keys = (0xFFFFFFFF, 0x80000000)
    fast = generate_matrix_np(17, keys)
    assert fast.tolist() == ref_matrix(17, *keys)
