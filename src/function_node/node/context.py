"""What the auth layer and the handlers share, built once by the app's lifespan."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from function_node.config.settings import Settings
from function_node.metrics import NodeMetrics
from function_node.node.body import BodyBudget
from function_node.node.nonces import NonceStore
from function_node.node.tracing import NO_TRACING, Tracing
from function_node.registry.directory import CallerDirectory
from function_node.signing import LocalSigner

__all__ = ["CONTEXT", "NodeContext"]


@dataclass(slots=True)
class NodeContext:
    settings: Settings
    home: Path
    signer: LocalSigner
    callers: CallerDirectory
    nonces: NonceStore
    metrics: NodeMetrics
    clock: Callable[[], float] = time.time  # wall clock: X-Timestamp is unix time
    tracing: Tracing = NO_TRACING
    body_budget: BodyBudget = field(init=False)

    def __post_init__(self) -> None:
        self.body_budget = BodyBudget(self.settings.auth.max_unverified_body_bytes)


CONTEXT = web.AppKey("fxn_context", NodeContext)
