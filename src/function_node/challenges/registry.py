"""The challenge registry: type name -> Challenge (strategy pattern), built from the settings."""

from __future__ import annotations

from collections.abc import Iterable

from function_node.challenges.base import Challenge
from function_node.config.settings import Settings

__all__ = ["ChallengeRegistry", "default_challenges"]


class ChallengeRegistry:
    """Holds one instance per challenge type; ``close()`` releases them all (pools, commitments)."""

    def __init__(self, challenges: Iterable[Challenge]) -> None:
        self._by_type: dict[str, Challenge] = {}
        for challenge in challenges:
            if challenge.type in self._by_type:
                raise ValueError(f"challenge type {challenge.type} registered twice")
            self._by_type[challenge.type] = challenge

    def get(self, type_: str) -> Challenge | None:
        return self._by_type.get(type_)

    def types(self) -> list[str]:
        return sorted(self._by_type)

    async def close(self) -> None:
        closed: set[int] = set()
        for challenge in self._by_type.values():
            if id(challenge) not in closed:
                closed.add(id(challenge))
                await challenge.close()


def default_challenges(settings: Settings) -> ChallengeRegistry:
    """IDENTITY, MATRIX_MULTIPLICATION (+ _PROOF) and ENDPOINT_REACHABLE, limited by ``settings``."""
    from function_node.challenges.endpoint import EndpointChallenge
    from function_node.challenges.identity import IdentityChallenge
    from function_node.challenges.matmul.challenge import (
        MatmulService,
        MatrixMultiplicationChallenge,
        MatrixProofChallenge,
    )

    shared = None
    if settings.nonce_cache.backend == "redis":
        # Several processes serve this node: round two may land on any of them (SPEC §7.2).
        from function_node.challenges.matmul.shared_store import RedisCommitments

        shared = RedisCommitments(settings.nonce_cache.redis_url, settings.challenge.matmul.proof_ttl)
    service = MatmulService(settings.challenge.matmul, shared=shared)
    return ChallengeRegistry(
        [
            IdentityChallenge(),
            MatrixMultiplicationChallenge(service),
            MatrixProofChallenge(service),
            EndpointChallenge(),
        ]
    )
