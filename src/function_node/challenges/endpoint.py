"""ENDPOINT_REACHABLE (SPEC §7.3): probe a configured backend, never an arbitrary address.

A URL is probed only if, after normalisation (scheme and host lower-cased, default port made explicit,
dot segments resolved, no trailing slash), it equals a configured backend's URL, its server root, its
``/v1`` base or its health-check URL, or lies under a ``challenge.endpointAllowlist`` prefix (at a path
segment boundary). User info, queries, fragments and percent-encoded dots or slashes are refused
outright: they are how a filter like this one is usually fooled. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NamedTuple
from urllib.parse import urlsplit

import aiohttp

from function_node.challenges.base import ChallengeContext
from function_node.config.backends import BackendConfig, BackendEndpoint, ModelConfig
from function_node.errors import ChallengeError, ConfigError

__all__ = ["EndpointChallenge", "NormalUrl", "allowed_targets", "normalize_url"]

PROBE_TIMEOUT_S: Final = 5.0
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_ENCODED_TRICKS: Final = ("%2e", "%2f", "%5c", "\\")


class NormalUrl(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str  # "" for the root, else "/a/b" without a trailing slash

    @property
    def url(self) -> str:
        """The URL rebuilt from the compared parts: what is probed is exactly what was checked."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path or '/'}"

    def under(self, prefix: NormalUrl) -> bool:
        same_origin = self[:3] == prefix[:3]
        return same_origin and (self.path == prefix.path or self.path.startswith(prefix.path + "/"))


def _resolve_dots(path: str) -> str:
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return "/" + "/".join(out) if out else ""


def normalize_url(url: str) -> NormalUrl:
    """The comparable form of an http(s) URL; ValueError with the reason if it cannot be probed."""
    text = url.strip()
    lowered = text.lower()
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError("URLs with spaces or control characters are not accepted")
    if any(trick in lowered for trick in _ENCODED_TRICKS):
        raise ValueError("percent-encoded dots or slashes and backslashes are not accepted")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("only http:// and https:// URLs with a host can be probed")
    if parts.username is not None or parts.password is not None:
        raise ValueError("URLs with user info are not accepted")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("URLs with a query or fragment are not accepted")
    return NormalUrl(
        scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], _resolve_dots(parts.path)
    )


def _backend_urls(model: ModelConfig, backend: BackendEndpoint) -> list[str]:
    base = backend.base_url
    return [backend.url, base, base + "/v1", base + model.health_check.path]


def allowed_targets(config: BackendConfig) -> dict[NormalUrl, tuple[ModelConfig, BackendEndpoint]]:
    """Every exact URL a probe may hit because a backend is configured there."""
    out: dict[NormalUrl, tuple[ModelConfig, BackendEndpoint]] = {}
    for model in config.models:
        for backend in model.backends:
            for url in _backend_urls(model, backend):
                out.setdefault(normalize_url(url), (model, backend))
    return out


@dataclass(slots=True)
class EndpointChallenge:
    """Answers ``{"reachable", "statusCode", "latencyMs"}``; a list of these for ``{"model"}``."""

    timeout_s: float = PROBE_TIMEOUT_S
    type: ClassVar[str] = "ENDPOINT_REACHABLE"

    async def run(self, payload: Any, ctx: ChallengeContext) -> Any:
        config = ctx.backends()
        if isinstance(payload, dict) and "model" in payload:
            name = payload["model"]
            model = config.model(name) if isinstance(name, str) else None
            if model is None:
                raise ChallengeError(f"model {name!r} is not configured on this node", code="unknown_model")
            targets = [(normalize_url(b.base_url + model.health_check.path).url, b) for b in model.backends]
            return list(await asyncio.gather(*(self._probe(ctx, url, b) for url, b in targets)))
        url = payload.get("url") if isinstance(payload, dict) else payload
        if not isinstance(url, str):
            raise ChallengeError(
                'ENDPOINT_REACHABLE payload must be a URL string, {"url": ...} or {"model": ...}',
                code="invalid_payload",
            )
        try:
            target = normalize_url(url)
        except ValueError as exc:
            raise ChallengeError(f"URL refused: {exc}", code="endpoint_not_allowed") from None
        backend = allowed_targets(config).get(target)
        if backend is None and not any(target.under(p) for p in self._allowlist(ctx)):
            raise ChallengeError(
                "URL refused: it is neither a configured backend nor under challenge.endpointAllowlist",
                code="endpoint_not_allowed",
            )
        return await self._probe(ctx, target.url, backend[1] if backend else None)

    @staticmethod
    def _allowlist(ctx: ChallengeContext) -> list[NormalUrl]:
        prefixes = []
        for prefix in ctx.settings.challenge.endpoint_allowlist:
            try:
                prefixes.append(normalize_url(prefix))
            except ValueError:
                continue  # config check reports it; a broken prefix allows nothing
        return prefixes

    async def _probe(
        self, ctx: ChallengeContext, url: str, backend: BackendEndpoint | None
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        if backend is not None:
            try:
                headers = backend.resolved_headers()
            except ConfigError:
                headers = {}  # probe without credentials; the answer's status code will show it
        started = time.perf_counter()
        result: dict[str, Any] = {"url": url, "reachable": False, "statusCode": None}
        try:
            async with ctx.http.get(
                url,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as response:
                result["statusCode"] = response.status
                result["reachable"] = response.status < 500
        except TimeoutError:
            result["error"] = f"no answer within {self.timeout_s:g}s"
        except aiohttp.ClientError as exc:
            result["error"] = type(exc).__name__
        result["latencyMs"] = (time.perf_counter() - started) * 1000
        return result

    async def close(self) -> None:
        return None
