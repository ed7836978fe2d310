"""The scheduler's whole matrix proof against one node: round one, rows drawn after the root, round two,
verification. HTTP is abstracted as ``send(body) -> (status, json)`` so the CLI, the reference scheduler
and tests drive it with any client.

The round-trip time of round one is what the scheduler itself measured, so ``implied_tops`` (2n³ over
that time) bounds the node's real speed from below whatever the node reports.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any, Final

from function_node.challenges.matmul.generate import Seed, parse_seed
from function_node.challenges.matmul.verify import choose_rows, parse_root, verify_proofs

__all__ = ["DEFAULT_PROOF_ROWS", "ProofReport", "Send", "run_matrix_proof"]

DEFAULT_PROOF_ROWS: Final = 16
ROUND_ONE: Final = "MATRIX_MULTIPLICATION"
ROUND_TWO: Final = "MATRIX_MULTIPLICATION_PROOF"
_OK: Final = 200

Send = Callable[[dict[str, Any]], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class ProofReport:
    """The verdict and what was measured; ``failures`` says why a proof was not accepted."""

    ok: bool
    size: int
    seed: str
    rows: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    round_trip_s: float = 0.0  # round one, as the scheduler measured it
    verify_s: float = 0.0
    commitment: dict[str, Any] = field(default_factory=dict)  # round one's answer

    @property
    def implied_tops(self) -> float:
        return 2 * self.size**3 / self.round_trip_s / 1e12 if self.round_trip_s > 0 else 0.0


def _error(status: int, answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return f"HTTP {status}: {answer['error'].get('message')}"
    return f"HTTP {status}"


async def run_matrix_proof(
    send: Send,
    size: int,
    *,
    rows: int = DEFAULT_PROOF_ROWS,
    backend: str = "auto",
    seed: str | None = None,
    executor: Executor | None = None,
) -> ProofReport:
    """Run both rounds against a node and verify; never raises for a node's misbehaviour."""
    chosen = parse_seed(seed) if seed is not None else Seed(secrets.token_bytes(32))
    payload = {"size": size, "seed": chosen.hex, "dtype": "int8", "backend": backend}
    started = time.perf_counter()
    status, answer = await send({"type": ROUND_ONE, "payload": payload})
    round_trip = time.perf_counter() - started
    base = ProofReport(False, size, chosen.hex, round_trip_s=round_trip)
    if status != _OK or not isinstance(answer, dict):
        return replace(base, failures=[f"round one refused: {_error(status, answer)}"])
    try:
        root = parse_root(answer.get("merkleRoot"))
    except ValueError as exc:
        return replace(base, failures=[str(exc)], commitment=answer)
    if answer.get("seed") != chosen.hex or answer.get("matrixSize") != size:
        return replace(base, failures=["the node answered for another seed or size"], commitment=answer)
    picked = choose_rows(size, rows)  # only now that the root is fixed
    status, proofs = await send(
        {"type": ROUND_TWO, "payload": {"commitmentId": answer.get("commitmentId"), "rows": picked}}
    )
    if status != _OK:
        failures = [f"round two refused: {_error(status, proofs)}"]
        return replace(base, rows=picked, failures=failures, commitment=answer)
    t0 = time.perf_counter()
    outcome = await asyncio.to_thread(verify_proofs, chosen, size, root, picked, proofs, executor=executor)
    verify_s = time.perf_counter() - t0
    return replace(
        base, ok=outcome.ok, rows=picked, failures=outcome.failures, verify_s=verify_s, commitment=answer
    )
