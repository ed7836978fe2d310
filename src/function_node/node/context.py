"""What the auth layer and the handlers share, built once by the app's lifespan."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from pathlib import Path

from aiohttp import web

from function_node.config.settings import Settings
from function_node.metrics import NodeMetrics
from function_node.node.body import BodyBudget
from function_node.node.limits import DEFAULT_SLOT_LEASE_S, Gate, create_gate
from function_node.node.nonces import NonceStore
from function_node.node.tracing import NO_TRACING, Tracing
from function_node.node.usage import UsageRecorder
from function_node.registry.directory import CallerDirectory
from function_node.signing import LocalSigner

__all__ = ["CONTEXT", "NodeContext"]


@dataclass(slots=True)
class NodeContext:
    """``gate`` (the nonce claim with the caller's budgets) is built from ``nonces`` and
    ``settings.limits``; ``recorder`` defaults to one that counts in metrics only (no ledger)."""

    settings: Settings
    home: Path
    signer: LocalSigner
    callers: CallerDirectory
    nonces: NonceStore
    metrics: NodeMetrics
    clock: Callable[[], float] = time.time  # wall clock: X-Timestamp is unix time
    tracing: Tracing = NO_TRACING
    recorder: InitVar[UsageRecorder | None] = None
    slot_lease: float = DEFAULT_SLOT_LEASE_S  # seconds a Redis concurrency slot outlives a dead worker
    body_budget: BodyBudget = field(init=False)
    gate: Gate = field(init=False)
    usage: UsageRecorder = field(init=False)

    def __post_init__(self, recorder: UsageRecorder | None) -> None:
        self.body_budget = BodyBudget(self.settings.auth.max_unverified_body_bytes)
        self.gate = create_gate(
            self.nonces,
            self.settings.limits,
            slot_lease=self.slot_lease,
            settle_errors=self.metrics.limits_settle_errors,
        )
        self.usage = recorder if recorder is not None else UsageRecorder(self.metrics)


CONTEXT = web.AppKey("fxn_context", NodeContext)
