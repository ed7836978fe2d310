"""The verifier's whole matrix proof against one node, in one place for ``fxn challenge`` and the
reference scheduler: round one, rows drawn after the root, round two, verification.

HTTP is abstracted as ``send(body) -> NodeReply``: the caller's transport sends a signed challenge and
says whether the answer is signed by the prover it expects (SPEC §5). Both rounds must be, else the
proof fails with ``wrong_signer`` whatever the answer says; and the rows are recomputed with the keys
of that expected prover (SPEC §7.2), so a root relayed from another node fails too.

The round-trip time of round one is what the verifier itself measured, so ``implied_tops`` (2n³ over
that time) bounds the node's real speed from below whatever the node reports.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any, Final

from function_node.challenges.matmul.generate import Seed, parse_seed
from function_node.challenges.matmul.verify import choose_rows, parse_root, verify_proofs
from function_node.errors import SigningError
from function_node.protocol import WRONG_SIGNER, NodeReply
from function_node.signing import normalize_address

__all__ = [
    "DEFAULT_PROOF_ROWS",
    "REASON_MALFORMED",
    "REASON_PROOF_INVALID",
    "REASON_REFUSED",
    "REASON_SEED_MISMATCH",
    "REASON_SIZE_MISMATCH",
    "REASON_WRONG_SIGNER",
    "NodeReply",
    "ProofReport",
    "Send",
    "run_matrix_proof",
]

# k rows: a node that skipped 10% of the rows passes with probability 0.9^32 ≈ 3% (SPEC §7.2).
DEFAULT_PROOF_ROWS: Final = 32
ROUND_ONE: Final = "MATRIX_MULTIPLICATION"
ROUND_TWO: Final = "MATRIX_MULTIPLICATION_PROOF"
_OK: Final = 200
_FAILURES_SHOWN: Final = 3
_ROOT_RE: Final = re.compile(r"^0x[0-9a-fA-F]{64}$")

REASON_WRONG_SIGNER: Final = WRONG_SIGNER  # an answer not signed by the expected prover
REASON_REFUSED: Final = "refused"  # a signed answer that is not a 200
REASON_MALFORMED: Final = "malformed_answer"
REASON_SEED_MISMATCH: Final = "seed_mismatch"
REASON_SIZE_MISMATCH: Final = "size_mismatch"
REASON_PROOF_INVALID: Final = "proof_invalid"


Send = Callable[[dict[str, Any]], Awaitable[NodeReply]]


@dataclass(frozen=True, slots=True)
class ProofReport:
    """The verdict and what was measured; ``reason`` (empty when ``ok``) and ``failures`` say why not."""

    ok: bool
    size: int
    seed: str
    prover: str
    rows: list[int] = field(default_factory=list)
    reason: str = ""
    failures: list[str] = field(default_factory=list)
    round_trip_s: float = 0.0  # round one, as the verifier measured it
    total_s: float = 0.0  # both rounds
    verify_s: float = 0.0
    commitment: Mapping[str, Any] = field(default_factory=dict)  # round one's answer

    @property
    def implied_tops(self) -> float:
        return 2 * self.size**3 / self.round_trip_s / 1e12 if self.round_trip_s > 0 else 0.0

    @property
    def detail(self) -> str:
        """The first failures in one line."""
        shown = "; ".join(self.failures[:_FAILURES_SHOWN])
        more = len(self.failures) - _FAILURES_SHOWN
        return shown + (f"; and {more} more" if more > 0 else "")


def _refusal(round_name: str, reply: NodeReply) -> tuple[str, str] | None:
    """(reason, failure) when ``reply`` cannot be used, else None."""
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    if reply.signer_problem is not None:
        code = error.get("code") if isinstance(error, dict) else None
        status = f"HTTP {reply.status}" + (f" {code}" if isinstance(code, str) else "")
        return REASON_WRONG_SIGNER, f"{round_name}: {status}: {reply.signer_problem}"
    if reply.status != _OK or not isinstance(reply.body, dict):
        message = error.get("message") if isinstance(error, dict) else None
        return REASON_REFUSED, f"{round_name} refused: HTTP {reply.status}" + (
            f": {message}" if message else ""
        )
    return None


def _check_commitment(answer: Mapping[str, Any], seed: Seed, size: int) -> tuple[str, str] | None:
    root, commitment_id = answer.get("merkleRoot"), answer.get("commitmentId")
    if not isinstance(root, str) or not _ROOT_RE.match(root):
        return REASON_MALFORMED, "merkleRoot is not 0x + 64 hex digits"
    if not isinstance(commitment_id, str) or not commitment_id:
        return REASON_MALFORMED, "commitmentId is missing"
    if str(answer.get("seed", "")).lower() != seed.hex:
        return REASON_SEED_MISMATCH, "the node answered for another seed"
    if answer.get("matrixSize") != size:
        return REASON_SIZE_MISMATCH, f"asked n={size}, the node answered n={answer.get('matrixSize')!r}"
    return None


async def run_matrix_proof(
    send: Send,
    size: int,
    *,
    prover: str,
    rows: int = DEFAULT_PROOF_ROWS,
    backend: str = "auto",
    seed: str | None = None,
    executor: Executor | None = None,
) -> ProofReport:
    """Run both rounds against the node expected to be ``prover`` and verify; never raises for a node's
    misbehaviour (ValueError for a malformed ``seed`` or ``prover`` of the caller's own)."""
    try:
        expected = normalize_address(prover)
    except SigningError as exc:
        raise ValueError(str(exc)) from None
    chosen = parse_seed(seed) if seed is not None else Seed(secrets.token_bytes(32))
    payload = {"size": size, "seed": chosen.hex, "dtype": "int8", "backend": backend}
    started = time.perf_counter()
    reply = await send({"type": ROUND_ONE, "payload": payload})
    round_trip = time.perf_counter() - started
    base = ProofReport(False, size, chosen.hex, expected, round_trip_s=round_trip, total_s=round_trip)
    refused = _refusal("round one", reply) or _check_commitment(reply.body, chosen, size)
    if refused is not None:
        commitment = reply.body if isinstance(reply.body, dict) else {}
        return replace(base, reason=refused[0], failures=[refused[1]], commitment=commitment)
    answer = reply.body
    base = replace(base, commitment=answer)
    picked = choose_rows(size, rows)  # only now that the root is fixed
    reply = await send(
        {"type": ROUND_TWO, "payload": {"commitmentId": answer["commitmentId"], "rows": picked}}
    )
    base = replace(base, rows=picked, total_s=time.perf_counter() - started)
    refused = _refusal("round two", reply)
    if refused is not None:
        return replace(base, reason=refused[0], failures=[refused[1]])
    t0 = time.perf_counter()
    outcome = await asyncio.to_thread(
        verify_proofs,
        chosen,
        size,
        parse_root(answer["merkleRoot"]),
        picked,
        reply.body,
        prover=expected,
        executor=executor,
    )
    return replace(
        base,
        ok=outcome.ok,
        reason="" if outcome.ok else REASON_PROOF_INVALID,
        failures=outcome.failures,
        verify_s=time.perf_counter() - t0,
    )
