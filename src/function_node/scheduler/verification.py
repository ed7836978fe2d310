"""The scheduler's proof verifier: the challenge package's recomputation, behind the ProofVerifier shape.

Kept apart from :mod:`function_node.scheduler.checks` so the verdict rules can be tested with any
verifier, and so importing the checks does not pull in numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Final

from function_node.scheduler.checks import ProofVerifier

__all__ = ["matmul_verifier"]

_FAILURES_SHOWN: Final = 3


def matmul_verifier(executor: Executor | None = None) -> ProofVerifier:
    """A verifier that regenerates the asked rows of A and all of B from the seed, recomputes each row of
    C, digests it and checks its Merkle path; ``executor`` spreads B's blocks over threads."""
    from function_node.challenges.matmul.generate import parse_seed
    from function_node.challenges.matmul.verify import parse_root, verify_proofs

    def verify(
        seed: str, n: int, root: str, rows: Sequence[int], proofs: Sequence[Mapping[str, Any]]
    ) -> str | None:
        try:
            seed_value, root_value = parse_seed(seed), parse_root(root)
        except ValueError as exc:
            return str(exc)
        answer = {"proofs": [dict(p) for p in proofs]}
        outcome = verify_proofs(seed_value, n, root_value, rows, answer, executor=executor)
        if outcome.ok:
            return None
        shown = "; ".join(outcome.failures[:_FAILURES_SHOWN])
        more = len(outcome.failures) - _FAILURES_SHOWN
        return shown + (f"; and {more} more" if more > 0 else "")

    return verify
