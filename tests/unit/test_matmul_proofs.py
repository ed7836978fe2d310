"""Merkle proofs, the verifier and the commitment store: every honest proof passes, every lie fails."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from function_node.challenges.matmul.commitment import (
    PAD_LEAF,
    CommitmentStore,
    MerkleTree,
    StoreFullError,
    UnknownCommitmentError,
    verify_path,
)
from function_node.challenges.matmul.compute import NumpyBackend
from function_node.challenges.matmul.generate import MatrixKeys, Seed, parse_seed
from function_node.challenges.matmul.verify import (
    MAX_PROOF_ROWS,
    choose_rows,
    recompute_row_digests,
    verify_proofs,
)
from tests.unit.test_matmul_vectors import ref_all, ref_key_material, ref_root, ref_words

PROVER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"  # the node the verifier expects (anvil's account 2)
RELAYED_FROM = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # another node, which really computed it
SEED_5 = hashlib.sha256(b"fxn-matmul-vector-5").digest()
SEED_64 = hashlib.sha256(b"fxn-matmul-vector-64").digest()


def _answer(tree: MerkleTree, digests: list[int], rows: list[int]) -> dict[str, object]:
    return {
        "proofs": [
            {"row": r, "digest": str(digests[r]), "siblings": ["0x" + s.hex() for s in tree.siblings(r)]}
            for r in rows
        ]
    }


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 33])
def test_every_row_of_small_trees_verifies(n: int) -> None:
    seed = Seed(hashlib.sha256(f"tree-{n}".encode()).digest())
    _, _, _, digests, root = ref_all(ref_words(ref_key_material(seed.raw, PROVER)), n)
    tree = MerkleTree.build(digests)
    assert tree.root == root == ref_root(digests)
    for row in range(n):
        assert verify_path(row, digests[row], tree.siblings(row), tree.root, n)
    everything = list(range(n))
    outcome = verify_proofs(seed, n, tree.root, everything, _answer(tree, digests, everything), prover=PROVER)
    assert outcome.ok, outcome.failures
    assert outcome.rows_checked == n


def test_padding_leaf_is_sha256_of_0x02() -> None:
    assert hashlib.sha256(b"\x02").digest() == PAD_LEAF
    tree = MerkleTree.build([5, 6, 7])
    assert tree.levels[0][3] == PAD_LEAF


def test_single_leaf_tree_has_no_siblings() -> None:
    tree = MerkleTree.build([42])
    assert tree.siblings(0) == []
    assert verify_path(0, 42, [], tree.root, 1)


@pytest.fixture(scope="module")
def committed() -> tuple[Seed, int, MerkleTree, list[int]]:
    seed = Seed(SEED_64)
    digests = NumpyBackend().compute(64, MatrixKeys.bind(seed, PROVER)).digests.tolist()
    return seed, 64, MerkleTree.build(digests), digests


def test_tampered_digest_is_rejected(committed: tuple[Seed, int, MerkleTree, list[int]]) -> None:
    seed, n, tree, digests = committed
    answer = _answer(tree, digests, [3, 10])
    answer["proofs"][0]["digest"] = str(digests[3] + 1)  # type: ignore[index]
    outcome = verify_proofs(seed, n, tree.root, [3, 10], answer, prover=PROVER)
    assert not outcome.ok
    assert outcome.failures == [f"row 3: digest {digests[3] + 1} differs from the recomputed {digests[3]}"]


def test_wrong_sibling_is_rejected(committed: tuple[Seed, int, MerkleTree, list[int]]) -> None:
    seed, n, tree, digests = committed
    answer = _answer(tree, digests, [7])
    answer["proofs"][0]["siblings"][2] = "0x" + "00" * 32  # type: ignore[index]
    outcome = verify_proofs(seed, n, tree.root, [7], answer, prover=PROVER)
    assert outcome.failures == ["row 7: the Merkle path does not lead to the committed root"]


def test_wrong_row_index_is_rejected(committed: tuple[Seed, int, MerkleTree, list[int]]) -> None:
    # The node answers the proof of row 8 as if it were row 9: the leaf binds the index.
    seed, n, tree, digests = committed
    answer = _answer(tree, digests, [8])
    answer["proofs"][0]["row"] = 9  # type: ignore[index]
    outcome = verify_proofs(seed, n, tree.root, [9], answer, prover=PROVER)
    assert not outcome.ok
    assert outcome.failures[0].startswith("row 9: digest")
    # ... and with the right digest for row 9 but row 8's path, the path fails.
    answer = _answer(tree, digests, [8])
    answer["proofs"][0].update(row=9, digest=str(digests[9]))  # type: ignore[index]
    outcome = verify_proofs(seed, n, tree.root, [9], answer, prover=PROVER)
    assert outcome.failures == ["row 9: the Merkle path does not lead to the committed root"]


def test_wrong_seed_is_rejected(committed: tuple[Seed, int, MerkleTree, list[int]]) -> None:
    _, n, tree, digests = committed
    other = Seed(SEED_5 + b"")  # the node computed with a different seed than the scheduler sent
    outcome = verify_proofs(other, n, tree.root, [0], _answer(tree, digests, [0]), prover=PROVER)
    assert not outcome.ok
    assert outcome.failures[0].startswith("row 0: digest")


def test_a_root_computed_by_another_prover_is_rejected() -> None:
    # A node without a GPU relays the challenge to a GPU node and returns its (honest) proof: the
    # verifier recomputes with the keys of the prover it expects, so every row fails.
    seed, n = Seed(SEED_64), 64
    digests = NumpyBackend().compute(n, MatrixKeys.bind(seed, RELAYED_FROM)).digests.tolist()
    tree = MerkleTree.build(digests)
    assert verify_proofs(seed, n, tree.root, [0, 9], _answer(tree, digests, [0, 9]), prover=RELAYED_FROM).ok
    outcome = verify_proofs(seed, n, tree.root, [0, 9], _answer(tree, digests, [0, 9]), prover=PROVER)
    assert not outcome.ok
    assert [f.split(":")[0] for f in outcome.failures] == ["row 0", "row 9"]


def test_missing_extra_and_malformed_proofs(committed: tuple[Seed, int, MerkleTree, list[int]]) -> None:
    seed, n, tree, digests = committed
    outcome = verify_proofs(seed, n, tree.root, [1, 2], _answer(tree, digests, [1, 5]), prover=PROVER)
    assert outcome.failures == ["rows [5] were not asked for", "row 2 is missing from the proofs"]
    assert verify_proofs(seed, n, tree.root, [1], {"nope": 1}, prover=PROVER).failures == [
        'the answer has no "proofs" list'
    ]
    bad = {"proofs": [{"row": 1, "digest": "-5", "siblings": []}]}
    assert verify_proofs(seed, n, tree.root, [1], bad, prover=PROVER).failures == [
        "row 1: digest must be a decimal string below 2^64",
        "row 1 is missing from the proofs",
    ]


def test_skipped_rows_are_caught(committed: tuple[Seed, int, MerkleTree, list[int]]) -> None:
    # A node that made up row 20's digest commits to it; asked for row 20 it cannot produce the truth.
    seed, n, _, digests = committed
    forged = list(digests)
    forged[20] = 12345
    tree = MerkleTree.build(forged)
    outcome = verify_proofs(seed, n, tree.root, [20], _answer(tree, forged, [20]), prover=PROVER)
    assert outcome.failures == [f"row 20: digest 12345 differs from the recomputed {digests[20]}"]


def test_recompute_matches_full_computation_with_and_without_threads() -> None:
    seed = MatrixKeys.bind(Seed(hashlib.sha256(b"recompute").digest()), PROVER)
    n = 1500  # more than one B block, not a multiple of the block size
    full = NumpyBackend().compute(n, seed).digests
    rows = [0, 1, 749, 1499]
    assert recompute_row_digests(seed, n, rows) == {r: int(full[r]) for r in rows}
    with ThreadPoolExecutor(2) as pool:
        assert recompute_row_digests(seed, n, rows, executor=pool) == {r: int(full[r]) for r in rows}


def test_choose_rows_is_distinct_sorted_and_capped() -> None:
    rows = choose_rows(1000, 16)
    assert len(rows) == len(set(rows)) == 16
    assert rows == sorted(rows)
    assert all(0 <= r < 1000 for r in rows)
    assert len(choose_rows(10_000, 500)) == MAX_PROOF_ROWS
    assert choose_rows(3, 16) == [0, 1, 2]


@pytest.mark.parametrize(
    "text", ["0x" + "0" * 63, "0x" + "g" * 64, "0" * 66, 5, None, "0x" + "0" * 65, "0X" + "0" * 64]
)
def test_bad_seed_formats_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r'seed must be "0x" followed by 64 hex digits'):
        parse_seed(text)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_store_is_single_use_and_expires() -> None:
    clock = _Clock()
    store = CommitmentStore(ttl=30.0, capacity=2, clock=clock)
    tree = MerkleTree.build([1, 2])
    store.reserve()
    first = store.put("0xseed", 2, [1, 2], tree)
    assert store.take(first).digests == (1, 2)
    with pytest.raises(UnknownCommitmentError) as used:
        store.take(first)
    assert used.value.reason == "used"
    store.reserve()
    second = store.put("0xseed", 2, [1, 2], tree)
    clock.now += 30.0
    with pytest.raises(UnknownCommitmentError) as expired:
        store.peek(second)
    assert expired.value.reason == "expired"
    with pytest.raises(UnknownCommitmentError) as unknown:
        store.peek("cm_nope")
    assert unknown.value.reason == "unknown"


def test_store_capacity_counts_reservations_and_frees_expired() -> None:
    clock = _Clock()
    store = CommitmentStore(ttl=10.0, capacity=2, clock=clock)
    store.reserve()
    store.reserve()
    with pytest.raises(StoreFullError):
        store.reserve()
    store.put("0xseed", 1, [1], MerkleTree.build([1]))  # one reservation becomes a stored commitment
    with pytest.raises(StoreFullError):
        store.reserve()
    clock.now += 10.0  # the stored one expires: its slot frees up
    store.reserve()
    assert len(store) == 0
    with pytest.raises(StoreFullError):
        store.reserve()
    store.release()
    store.reserve()
