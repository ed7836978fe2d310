"""What the auth layer and the handlers share, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from function_node.config.settings import Settings
from function_node.metrics import NodeMetrics
from function_node.node.nonces import NonceStore
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


CONTEXT = web.AppKey("fxn_context", NodeContext)
