"""The scheduler's side of the matrix proof: choose rows after the root, recompute them, check paths.

Recomputing k rows of C needs k rows of A and all of B. B is generated block by block and each block is
multiplied into the k rows at once, so memory stays at one block whatever n is. Each block product runs
in float32, exact because a block has at most 1024 rows (|partial sum| <= 1024·128² = 2^24), and is
accumulated in int64.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from function_node.challenges.matmul.commitment import row_digests_np, verify_path
from function_node.challenges.matmul.generate import MatrixKeys, Seed, generate_rows_np

__all__ = [
    "MAX_PROOF_ROWS",
    "VerifyOutcome",
    "choose_rows",
    "parse_root",
    "recompute_row_digests",
    "verify_proofs",
]

MAX_PROOF_ROWS: Final = 64
_EXACT_F32_ROWS: Final = 1024  # block rows for which a float32 partial product is exact
_BLOCK_BYTES: Final = 4 << 20  # about 4 MiB of B (float32) per block


def choose_rows(n: int, k: int) -> list[int]:
    """k distinct rows of 0..n-1 drawn with the OS's CSPRNG (call only once the root is known)."""
    k = max(1, min(k, n, MAX_PROOF_ROWS))
    return sorted(secrets.SystemRandom().sample(range(n), k))


def _blocks(n: int) -> Iterator[tuple[int, int]]:
    step = max(1, min(_EXACT_F32_ROWS, _BLOCK_BYTES // (4 * n)))
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _partial(keys: MatrixKeys, n: int, a_rows: npt.NDArray[Any], b0: int, b1: int) -> npt.NDArray[np.int64]:
    b = generate_rows_np(n, keys.b_keys, np.arange(b0, b1), np.float32)
    product: npt.NDArray[np.float32] = a_rows[:, b0:b1] @ b
    return product.astype(np.int64)


def recompute_row_digests(
    keys: MatrixKeys, n: int, rows: Sequence[int], *, executor: Executor | None = None
) -> dict[int, int]:
    """d_i for each requested row, in O(len(rows)·n²) time and O(len(rows)·n + block) memory."""
    wanted = sorted(set(rows))
    a_rows = generate_rows_np(n, keys.a_keys, wanted, np.float32)
    c_rows = np.zeros((len(wanted), n), dtype=np.int64)
    if executor is None:
        for b0, b1 in _blocks(n):
            c_rows += _partial(keys, n, a_rows, b0, b1)
    else:
        futures = [executor.submit(_partial, keys, n, a_rows, b0, b1) for b0, b1 in _blocks(n)]
        for future in as_completed(futures):
            c_rows += future.result()
    digests = row_digests_np(c_rows, *keys.digest_keys)
    return {row: int(d) for row, d in zip(wanted, digests, strict=True)}


def parse_root(text: object) -> bytes:
    if not isinstance(text, str) or len(text) != 66 or not text.startswith("0x"):
        raise ValueError('merkleRoot must be "0x" followed by 64 hex digits')
    return bytes.fromhex(text[2:])


def _parse_proof(item: Any) -> tuple[int, int, list[bytes]]:
    if not isinstance(item, dict):
        raise ValueError("a proof is an object {row, digest, siblings}")
    row, digest, siblings = item.get("row"), item.get("digest"), item.get("siblings")
    if not isinstance(row, int) or isinstance(row, bool):
        raise ValueError("proof row must be an integer")
    if not isinstance(digest, str) or not digest.isdigit() or int(digest) >= 1 << 64:
        raise ValueError(f"row {row}: digest must be a decimal string below 2^64")
    if not isinstance(siblings, list):
        raise ValueError(f"row {row}: siblings must be a list")
    return row, int(digest), [parse_root(s) for s in siblings]


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    """The verdict; ``failures`` names every row that did not check out and why."""

    ok: bool
    rows_checked: int
    failures: list[str] = field(default_factory=list)


def verify_proofs(
    seed: Seed,
    n: int,
    root: bytes,
    rows: Sequence[int],
    answer: Any,
    *,
    prover: str,
    executor: Executor | None = None,
) -> VerifyOutcome:
    """Check a node's round-two ``answer`` ({"proofs": [...]}) for the ``rows`` the scheduler chose.

    ``prover`` is the address the scheduler expects behind the node (its provider registry entry),
    never an address the answer names: the rows are recomputed with that prover's keys, so a root
    computed by any other node fails here.
    """
    proofs = answer.get("proofs") if isinstance(answer, dict) else None
    if not isinstance(proofs, list):
        return VerifyOutcome(False, 0, ['the answer has no "proofs" list'])
    failures: list[str] = []
    given: dict[int, tuple[int, list[bytes]]] = {}
    for item in proofs:
        try:
            row, digest, siblings = _parse_proof(item)
        except ValueError as exc:
            failures.append(str(exc))
            continue
        if row in given:
            failures.append(f"row {row} is proven twice")
        given[row] = (digest, siblings)
    extra = sorted(set(given) - set(rows))
    if extra:
        failures.append(f"rows {extra} were not asked for")
    expected = recompute_row_digests(MatrixKeys.bind(seed, prover), n, rows, executor=executor)
    for row in sorted(set(rows)):
        if row not in given:
            failures.append(f"row {row} is missing from the proofs")
            continue
        digest, siblings = given[row]
        if digest != expected[row]:
            failures.append(f"row {row}: digest {digest} differs from the recomputed {expected[row]}")
        elif not verify_path(row, digest, siblings, root, n):
            failures.append(f"row {row}: the Merkle path does not lead to the committed root")
    return VerifyOutcome(not failures, len(set(rows)), failures)
