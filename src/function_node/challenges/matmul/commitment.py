"""Row digests, the Merkle tree over them, proofs, and the store of pending commitments (SPEC §7.2).

Definitions::

    key_j = fmix32(j ^ w4)
    d_i   = (Σ_j fmix32(uint32(C[i][j]) ^ key_j ^ w5)) mod 2^64
    leaf  = sha256(0x00 || u32be(i) || u64be(d_i));  node = sha256(0x01 || left || right)
    padding leaves (up to a power of two) = sha256(0x02)

Proof siblings run from the leaf level up to (not including) the root.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# numpy (and the numpy generator module) are imported inside the digest functions: the node builds
# its CommitmentStore at start, and numpy's ~10 MB should be paid at the first matrix challenge.

__all__ = [
    "Commitment",
    "CommitmentStore",
    "MerkleTree",
    "StoreFullError",
    "UnknownCommitmentError",
    "digest_keys_np",
    "leaf_hash",
    "node_hash",
    "row_digests_np",
    "verify_path",
]

LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
PAD_LEAF: Final = hashlib.sha256(b"\x02").digest()
_TOMBSTONES: Final = 4096  # remembered used/expired ids, so a reuse is named as such


def digest_keys_np(n: int, w4: int, w5: int) -> npt.NDArray[np.uint32]:
    """``key_j ^ w5`` for every column j: what each C[i][j] is XORed with before fmix32."""
    import numpy as np

    from function_node.challenges.matmul.generate import fmix32_np

    keys = np.arange(n, dtype=np.uint32) ^ np.uint32(w4)
    fmix32_np(keys, np.empty_like(keys))
    keys ^= np.uint32(w5)
    return keys


def _digest_block(
    c: npt.NDArray[np.generic], keys: npt.NDArray[np.uint32], out: npt.NDArray[np.uint64], r0: int, r1: int
) -> None:
    import numpy as np

    from function_node.challenges.matmul.generate import MASK32, fmix32_np

    # C is exact integers (int32, or float64 holding them); int64 then the low 32 bits is uint32(C).
    words = (c[r0:r1].astype(np.int64) & MASK32).astype(np.uint32)
    np.bitwise_xor(words, keys[None, :], out=words)
    fmix32_np(words, np.empty_like(words))
    # n uint32 terms sum below 2^64 for any n < 2^32: the uint64 accumulator is exactly "mod 2^64".
    np.sum(words, axis=1, dtype=np.uint64, out=out[r0:r1])


def row_digests_np(
    c: npt.NDArray[np.generic], w4: int, w5: int, executor: Executor | None = None
) -> npt.NDArray[np.uint64]:
    """d_i for every row of ``c`` (rows × n, exact integer values in any numeric dtype)."""
    import numpy as np

    from function_node.challenges.matmul.generate import row_blocks

    rows, n = c.shape
    keys = digest_keys_np(n, w4, w5)
    out = np.empty(rows, dtype=np.uint64)
    blocks = list(row_blocks(rows, n))
    if executor is None or len(blocks) == 1:
        for r0, r1 in blocks:
            _digest_block(c, keys, out, r0, r1)
    else:
        for fut in [executor.submit(_digest_block, c, keys, out, r0, r1) for r0, r1 in blocks]:
            fut.result()
    return out


def leaf_hash(index: int, digest: int) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + index.to_bytes(4, "big") + digest.to_bytes(8, "big")).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


@dataclass(frozen=True, slots=True)
class MerkleTree:
    """Every level of the tree, leaves first; ``levels[-1][0]`` is the root."""

    levels: tuple[tuple[bytes, ...], ...]

    @classmethod
    def build(cls, digests: Sequence[int]) -> MerkleTree:
        if not digests:
            raise ValueError("a Merkle tree needs at least one leaf")
        level = [leaf_hash(i, int(d)) for i, d in enumerate(digests)]
        width = 1
        while width < len(level):
            width *= 2
        level.extend([PAD_LEAF] * (width - len(level)))
        levels = [tuple(level)]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
            levels.append(tuple(level))
        return cls(tuple(levels))

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def siblings(self, index: int) -> list[bytes]:
        """The sibling hashes of leaf ``index``, from the leaf level up."""
        path = []
        for level in self.levels[:-1]:
            path.append(level[index ^ 1])
            index //= 2
        return path


def verify_path(index: int, digest: int, siblings: Sequence[bytes], root: bytes, leaves: int) -> bool:
    """Whether ``digest`` at ``index`` hashes up to ``root`` through ``siblings`` in a tree of ``leaves``."""
    depth = max(0, (leaves - 1).bit_length())
    if not 0 <= index < leaves or len(siblings) != depth:
        return False
    node = leaf_hash(index, digest)
    for sibling in siblings:
        node = node_hash(sibling, node) if index & 1 else node_hash(node, sibling)
        index //= 2
    return node == root


@dataclass(frozen=True, slots=True)
class Commitment:
    """What a node keeps between the two rounds: the row digests and their tree."""

    seed: str
    size: int
    digests: tuple[int, ...]
    tree: MerkleTree
    expires_at: float


class StoreFullError(Exception):
    """No room for another pending commitment (``maxPendingProofs``)."""


class UnknownCommitmentError(Exception):
    """The id was never issued, was already used, or expired; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class CommitmentStore:
    """Pending commitments, each usable once and for ``ttl`` seconds, at most ``capacity`` at a time.

    A matrix challenge ``reserve()``s a slot before it computes, so queued and stored commitments
    together never exceed ``capacity``; ``release()`` gives a slot back if the computation failed.
    """

    ttl: float
    capacity: int
    clock: Callable[[], float] = time.monotonic
    _pending: dict[str, Commitment] = field(default_factory=dict)
    _reserved: int = 0
    _gone: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def _bury(self, commitment_id: str, reason: str) -> None:
        self._gone[commitment_id] = reason
        while len(self._gone) > _TOMBSTONES:
            self._gone.popitem(last=False)

    def _purge(self) -> None:
        now = self.clock()
        for cid in [cid for cid, c in self._pending.items() if c.expires_at <= now]:
            del self._pending[cid]
            self._bury(cid, "expired")

    def reserve(self) -> None:
        self._purge()
        if len(self._pending) + self._reserved >= self.capacity:
            raise StoreFullError
        self._reserved += 1

    def release(self) -> None:
        self._reserved = max(0, self._reserved - 1)

    def put(self, seed: str, size: int, digests: Sequence[int], tree: MerkleTree) -> str:
        """Store a computed commitment in a reserved slot; returns its new id."""
        self.release()
        commitment_id = "cm_" + secrets.token_hex(16)
        self._pending[commitment_id] = Commitment(
            seed=seed,
            size=size,
            digests=tuple(int(d) for d in digests),
            tree=tree,
            expires_at=self.clock() + self.ttl,
        )
        return commitment_id

    def peek(self, commitment_id: str) -> Commitment:
        """The live commitment; UnknownCommitmentError("unknown" | "used" | "expired") otherwise."""
        self._purge()
        commitment = self._pending.get(commitment_id)
        if commitment is None:
            raise UnknownCommitmentError(self._gone.get(commitment_id, "unknown"))
        return commitment

    def take(self, commitment_id: str) -> Commitment:
        """Remove and return the commitment: each is answered once."""
        commitment = self.peek(commitment_id)
        del self._pending[commitment_id]
        self._bury(commitment_id, "used")
        return commitment

    def discard(self, commitment_id: str) -> Commitment | None:
        """Remove the commitment if this store holds it (answered from elsewhere); None if not."""
        commitment = self._pending.pop(commitment_id, None)
        if commitment is not None:
            self._bury(commitment_id, "used")
        return commitment

    def reason_gone(self, commitment_id: str) -> str | None:
        """Why this store no longer holds the id (``used``, ``expired``), if it ever did."""
        self._purge()
        return self._gone.get(commitment_id)

    def __len__(self) -> int:
        return len(self._pending)

    def clear(self) -> None:
        self._pending.clear()
        self._reserved = 0
