"""The Challenge protocol and what every challenge may use while it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import aiohttp

from function_node.config.backends import BackendConfig
from function_node.config.settings import Settings
from function_node.metrics import NodeMetrics
from function_node.signing import LocalSigner

__all__ = ["Challenge", "ChallengeContext"]


@dataclass(frozen=True, slots=True)
class ChallengeContext:
    """Resources a challenge may use; owned by the node's lifespan, never by the challenge."""

    settings: Settings
    signer: LocalSigner
    backends: Callable[[], BackendConfig]  # the backend.yaml in force now (SIGHUP may replace it)
    http: aiohttp.ClientSession
    metrics: NodeMetrics
    home: Path
    version: str


class Challenge(Protocol):
    """One challenge type. ``run`` raises ChallengeError for a refused payload (answered 400)."""

    type: ClassVar[str]

    async def run(self, payload: Any, ctx: ChallengeContext) -> dict[str, Any]: ...

    async def close(self) -> None:
        """Release what the challenge holds (pools, pending commitments)."""
        ...
