"""The node's application: routes, middlewares, and the lifespan that owns every long-lived resource.

``create_app`` only wires; nothing is opened until the app starts. The lifespan (one
``cleanup_ctx`` entry) opens, in order, the upstream HTTP client, the nonce store, the usage ledger
and its writer, the registries, the backend pools with their health checks and the challenge
registry, and closes them in reverse order when the server has drained (the ledger's last batch is
written then). A second entry refreshes the GPU gauges every 15 s, only where
NVML answers. Nothing lives at module level, so tests build apps freely.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web

from function_node import __version__
from function_node.challenges.base import ChallengeContext
from function_node.config.backends import BackendConfig
from function_node.config.settings import Settings
from function_node.errors import FxnError
from function_node.logs import get_logger
from function_node.metrics import NodeMetrics
from function_node.node.auth import ANSWER_SIGNER, auth_middleware
from function_node.node.backends import BACKENDS, BackendSet
from function_node.node.context import CONTEXT, NodeContext
from function_node.node.gpu_metrics import gpu_metrics_ctx
from function_node.node.health import add_status_routes
from function_node.node.metering import metering_middleware
from function_node.node.observe import REQUEST_ID, observe_middleware
from function_node.node.proxy import add_openai_routes
from function_node.node.upstream import IdleCappedConnector
from function_node.protocol import HEADER_NODE
from function_node.signing import LocalSigner, to_checksum_address

__all__ = ["backends_lifespan", "create_app", "node_application", "upstream_session"]

_SLOT_LEASE_MARGIN_S: Final = 60.0  # a concurrency slot in Redis outlives the longest answer by this


def upstream_session(settings: Settings) -> aiohttp.ClientSession:
    """The one client session to every backend: pooled keep-alive connections, bodies untouched."""
    connector = IdleCappedConnector(
        max_idle=settings.proxy.max_idle_conns,
        keepalive_timeout=settings.proxy.idle_conn_timeout,
    )
    # No session-wide timeout: each model's pool passes its own (connect / firstByte / total).
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),
        skip_auto_headers=("User-Agent",),
    )


def _slot_lease(backends: BackendConfig) -> float:
    """How long a Redis concurrency slot outlives a worker that died holding it: the longest answer."""
    return max((m.timeouts.total for m in backends.models), default=0.0) + _SLOT_LEASE_MARGIN_S


def backends_lifespan(
    settings: Settings, backends: BackendConfig, metrics: NodeMetrics
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    """Only the upstream session and the backend pools, for apps (and tests) that need no more."""

    @contextlib.asynccontextmanager
    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            session = upstream_session(settings)
            stack.push_async_callback(session.close)
            backend_set = BackendSet(backends, session, metrics)
            stack.push_async_callback(backend_set.close)
            backend_set.start()
            app[BACKENDS] = backend_set
            yield

    return lifespan


async def _stamp_answer(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: ``X-Request-Id`` on every answer and ``X-Fxn-Node`` on every answer to an
    authenticated request, streamed ones included (their headers leave before the middlewares see them
    again). One hook for both: each hook is one more coroutine per answer."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["X-Request-Id"] = request_id
    signer = request.get(ANSWER_SIGNER)
    if signer is not None:
        response.headers[HEADER_NODE] = signer.signer.address


def node_application(settings: Settings, metrics: NodeMetrics) -> web.Application:
    """The node's application shell: every production middleware and response hook, in production order
    (observe, then auth, then metering), and no routes. ``create_app`` builds on it, and so do tests that
    serve other handlers behind the real stack: nothing that guards the node can be left out of them."""
    app = web.Application(
        middlewares=[observe_middleware(metrics), auth_middleware, metering_middleware],
        # The auth middleware reads the body with the configured limit; aiohttp's own default (1 MiB)
        # would refuse larger bodies first with a different answer.
        client_max_size=settings.auth.max_body_bytes + 1,
    )
    app.on_response_prepare.append(_stamp_answer)
    return app


def create_app(
    settings: Settings,
    backends: BackendConfig,
    signer: LocalSigner,
    home: Path,
    *,
    metrics: NodeMetrics | None = None,
) -> web.Application:
    """The node: observe → auth → metering middlewares, status, OpenAI and challenge routes, and the
    lifespan."""
    from function_node.node.challenge import CHALLENGE_CONTEXT, CHALLENGES, challenge_handler

    node_metrics = metrics if metrics is not None else NodeMetrics()
    app = node_application(settings, node_metrics)
    node_address = to_checksum_address(signer.address)
    add_status_routes(
        app,
        version=__version__,
        node_address=node_address,
        metrics=node_metrics if not settings.metrics.listen_address else None,
    )
    add_openai_routes(app)
    app.router.add_post("/challenge", challenge_handler)

    @contextlib.asynccontextmanager
    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        from function_node.challenges.registry import default_challenges
        from function_node.node.nonces import create_nonce_store
        from function_node.node.tracing import create_tracing
        from function_node.node.usage import UsageRecorder
        from function_node.registry.factory import open_registries
        from function_node.usage.ledger import UsageLedger, ledger_path

        log = get_logger("fxn.node")
        async with contextlib.AsyncExitStack() as stack:
            session = upstream_session(settings)
            stack.push_async_callback(session.close)
            nonces = create_nonce_store(settings.nonce_cache)
            stack.push_async_callback(nonces.close)
            await nonces.start()  # the memory store's periodic purge; the Redis store's first ping
            recorder = UsageRecorder(
                node_metrics, UsageLedger(ledger_path(home)), retention=settings.usage.retention
            )
            try:
                await recorder.start()
            except (OSError, sqlite3.Error) as exc:
                raise FxnError(
                    f"cannot open the usage ledger {ledger_path(home)}: {exc}; the node's home directory "
                    "must be writable by the node"
                ) from exc
            stack.push_async_callback(recorder.close)
            registries = await open_registries(
                settings,
                home,
                node_metrics,
                node_address=node_address,
                model_ids=[m.fxn_id for m in backends.models if m.fxn_id],
            )
            stack.push_async_callback(registries.close)
            await registries.start()
            backend_set = BackendSet(backends, session, node_metrics)
            stack.push_async_callback(backend_set.close)
            backend_set.start()
            challenges = default_challenges(settings)
            stack.push_async_callback(challenges.close)
            tracing = create_tracing(settings.tracing)
            stack.push_async_callback(tracing.close)

            app[BACKENDS] = backend_set
            app[CONTEXT] = context = NodeContext(
                settings=settings,
                home=home,
                signer=signer,
                callers=registries.directory,
                nonces=nonces,
                metrics=node_metrics,
                tracing=tracing,
                recorder=recorder,
                slot_lease=_slot_lease(backends),
            )
            stack.push_async_callback(context.gate.close)
            app[CHALLENGES] = challenges
            app[CHALLENGE_CONTEXT] = ChallengeContext(
                settings=settings,
                signer=signer,
                backends=lambda: backend_set.config,
                http=session,
                metrics=node_metrics,
                home=home,
                version=__version__,
            )
            if settings.registry.bypass_auth:
                log.warning(
                    "AUTHENTICATION IS OFF (registry.bypassAuth: true): anyone can use this node; "
                    "development only, never on a network"
                )
            log.info(
                "node started",
                address=node_address,
                models=[m.name for m in backends.models],
                nonce_store=settings.nonce_cache.backend,
            )
            yield

    app.cleanup_ctx.append(lifespan)
    app.cleanup_ctx.append(gpu_metrics_ctx)  # after lifespan: it reads app[CONTEXT].metrics
    return app
