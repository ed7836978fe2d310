"""Doctor checks of each model backend: it answers its health check, and it serves the model the node
forwards (``upstreamModel``, else the name) according to its own ``GET /v1/models``.

A wrong ``upstreamModel`` passes every health check and then fails every request with the backend's
404, so the doctor compares the two. URLs are shown redacted (credentials and query removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import orjson

from function_node.doctor.framework import DoctorContext, Finding
from function_node.redact import redact_url

if TYPE_CHECKING:
    import aiohttp

    from function_node.config.backends import BackendEndpoint, ModelConfig

__all__ = ["check_backends"]

_MODELS_PATH: Final = "/v1/models"
_SHOWN_MODELS: Final = 8  # a server with hundreds of models: name the first few


async def check_backends(ctx: DoctorContext) -> Sequence[Finding]:
    """Each backend of each model answers its health-check path with a 2xx and serves the model."""
    import aiohttp

    if ctx.backends is None:
        return [
            Finding.warn("backends", "skipped: backend.yaml did not load", "fix the failures above first")
        ]
    if not ctx.backends.models:
        return [Finding.warn("backends", "backend.yaml lists no model", "add a model with its backend URL")]
    findings: list[Finding] = []
    timeout = aiohttp.ClientTimeout(total=ctx.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for model in ctx.backends.models:
            for backend in model.backends:
                findings.append(await _check_one(session, model, backend))
    return findings


async def _check_one(session: aiohttp.ClientSession, model: ModelConfig, backend: BackendEndpoint) -> Finding:
    import aiohttp

    from function_node.errors import ConfigError

    target = backend.base_url + model.health_check.path
    shown = redact_url(target, keep_path=True)
    try:
        headers = backend.resolved_headers()
        async with session.get(target, headers=headers) as resp:
            status = resp.status
            body = await resp.read() if model.health_check.path == _MODELS_PATH else None
    except ConfigError as exc:
        return Finding.fail("backends", exc.problems[0].message, exc.problems[0].fix)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Finding.fail(
            "backends",
            f"{model.name}: {shown} is unreachable ({type(exc).__name__})",
            f"start the model server at {redact_url(backend.base_url, keep_path=True)} or fix its url "
            "in backend.yaml",
        )
    if not 200 <= status < 300:
        return Finding.fail(
            "backends",
            f"{model.name}: {shown} answered {status}",
            "check the backend's API key (apiKeyEnv) and healthCheck.path in backend.yaml",
        )
    served = await _served_models(session, backend, headers, body)
    wanted = model.forwarded_model
    if served is None:
        return Finding.warn(
            "backends",
            f"{model.name}: {shown} answered {status}, but {_MODELS_PATH} did not list its models",
            f'the node forwards "model": "{wanted}"; make sure the server serves that name',
        )
    if _serves(served, wanted):
        return Finding.ok("backends", f'{model.name}: {shown} answered {status} and serves "{wanted}"')
    listed = ", ".join(served[:_SHOWN_MODELS]) + (", …" if len(served) > _SHOWN_MODELS else "")
    where = redact_url(backend.base_url, keep_path=True)
    key = "upstreamModel" if model.upstream_model else "upstreamModel (the name is forwarded as it is)"
    return Finding.fail(
        "backends",
        f'{model.name}: the backend at {where} does not serve "{wanted}" '
        f"(it serves: {listed or 'nothing'}); every request would get its 404",
        f"set {key} of {model.name} in backend.yaml to the backend's model id"
        + (f', e.g. upstreamModel: "{served[0]}"' if len(served) == 1 else "")
        + " (vLLM: its --served-model-name)",
    )


async def _served_models(
    session: aiohttp.ClientSession, backend: BackendEndpoint, headers: dict[str, str], body: bytes | None
) -> list[str] | None:
    """The ids of the backend's OpenAI model list, or None if it has none to give."""
    import aiohttp

    if body is None:
        try:
            async with session.get(backend.base_url + _MODELS_PATH, headers=headers) as resp:
                if resp.status != 200:
                    return None
                body = await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            return None
    try:
        data = orjson.loads(body).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(data, list):
        return None
    return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]


def _serves(served: Sequence[str], wanted: str) -> bool:
    # Ollama answers "llama3.1" with its "llama3.1:latest".
    return wanted in served or (":" not in wanted and f"{wanted}:latest" in served)
