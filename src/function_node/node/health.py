"""Unauthenticated status routes (/health, /ready, /metrics) and the model list (/v1/models)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from function_node.errors import NonceStoreError
from function_node.metrics import NodeMetrics, exposition_registry
from function_node.node.backends import BACKENDS, BackendSet
from function_node.node.context import CONTEXT, NodeContext

__all__ = ["add_status_routes", "metrics_app", "model_list", "readiness"]

_OWNER: Final = "function-network"


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def model_list(backends: BackendSet) -> dict[str, Any]:
    """backend.yaml's models in the OpenAI list format, each with the network's ``fxn_id``."""
    return {
        "object": "list",
        "data": [
            {"id": m.name, "object": "model", "created": 0, "owned_by": _OWNER, "fxn_id": m.fxn_id or None}
            for m in backends.config.models
        ],
    }


async def readiness(app: web.Application) -> tuple[bool, dict[str, Any]]:
    """Ready when every registry is loaded and fresh, the nonce store answers, and at least one backend
    is healthy (SPEC §6). The answer is unauthenticated: models, backend names and states, never URLs."""
    context = app.get(CONTEXT)
    statuses = context.callers.statuses() if context is not None else []
    backends = app[BACKENDS]
    registries_ok = all(s.usable for s in statuses)
    nonce_store = await _nonce_store_state(context)
    warnings = _warnings(context)
    ready = registries_ok and bool(nonce_store["ok"]) and backends.any_healthy()
    return ready, {
        "ready": ready,
        "registries": [{**dataclasses.asdict(s), "usable": s.usable} for s in statuses],
        "nonceStore": nonce_store,
        "backends": backends.statuses(),
        "warnings": warnings,
    }


async def _nonce_store_state(context: NodeContext | None) -> dict[str, Any]:
    if context is None:
        return {"backend": "none", "ok": True, "error": ""}
    backend = context.settings.nonce_cache.backend
    try:
        await context.nonces.ping()
    except NonceStoreError as exc:
        return {"backend": backend, "ok": False, "error": str(exc)}
    return {"backend": backend, "ok": True, "error": ""}


def _warnings(context: NodeContext | None) -> list[str]:
    if context is None:
        return []
    settings = context.settings
    return [settings.NO_GATEWAY_WARNING] if settings.admits_no_gateway else []


def add_status_routes(
    app: web.Application, *, version: str, node_address: str, metrics: NodeMetrics | None
) -> None:
    """/health, /ready, /v1/models, and /metrics when ``metrics`` is given (served on this listener)."""
    health = orjson.dumps({"status": "ok", "address": node_address, "version": version})

    async def health_handler(request: web.Request) -> web.Response:
        return web.Response(body=health, content_type="application/json")

    async def ready_handler(request: web.Request) -> web.Response:
        ready, body = await readiness(request.app)
        return _json(body, 200 if ready else 503)

    async def models_handler(request: web.Request) -> web.Response:
        return _json(model_list(request.app[BACKENDS]))

    app.router.add_get("/health", health_handler)
    app.router.add_get("/ready", ready_handler)
    app.router.add_get("/v1/models", models_handler)
    app.router.add_post("/v1/models", models_handler)  # the original node accepts POST too
    if metrics is not None:
        app.router.add_get("/metrics", _metrics_handler(metrics))


def _metrics_handler(metrics: NodeMetrics) -> Callable[[web.Request], Awaitable[web.Response]]:
    registry = exposition_registry(metrics.registry)  # every worker's values with --workers N

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler


def metrics_app(metrics: NodeMetrics) -> web.Application:
    """A bare application serving /metrics, for ``metrics.listenAddress``."""
    app = web.Application()
    app.router.add_get("/metrics", _metrics_handler(metrics))
    return app
