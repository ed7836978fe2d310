"""OpenTelemetry tracing of the request path, when ``tracing.otlpEndpoint`` is set (SPEC §10).

Each request is one trace: a server span (joined to the caller's trace when it sent a W3C ``traceparent``)
with children for the authentication, the backend choice and the upstream call; the upstream request
carries the W3C ``traceparent`` of that last span, so vLLM and other servers that trace join it. Spans
leave in batches from OpenTelemetry's own thread, over OTLP/HTTP.

Without an endpoint nothing of OpenTelemetry is imported (it is the optional ``otel`` extra) and the
request path pays one no-op context manager per span: :data:`NO_TRACING`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from function_node import __version__
from function_node.errors import ConfigError

if TYPE_CHECKING:
    from aiohttp import web

    from function_node.config.settings import TracingSettings

__all__ = ["NO_TRACING", "RequestSpan", "Tracing", "check_tracing", "create_tracing"]

_TRACES_PATH: Final = "/v1/traces"
_FIRST_SERVER_ERROR: Final = 500


class RequestSpan(Protocol):
    def finish(self, status: int, route: str) -> None: ...


class Tracing(Protocol):
    def request(self, request: web.Request) -> contextlib.AbstractContextManager[RequestSpan]: ...

    def span(self, name: str, **attributes: str) -> contextlib.AbstractContextManager[None]: ...

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Add ``traceparent`` (and ``tracestate``) of the current span to outgoing ``headers``."""
        ...

    async def close(self) -> None: ...


class _NoSpan:
    __slots__ = ()

    def finish(self, status: int, route: str) -> None:
        return None


class _NoTracing:
    """Tracing off: every call is a no-op, nothing is imported."""

    __slots__ = ("_none", "_span")

    def __init__(self) -> None:
        self._span = contextlib.nullcontext(_NoSpan())
        self._none: contextlib.nullcontext[None] = contextlib.nullcontext()

    def request(self, request: web.Request) -> contextlib.AbstractContextManager[RequestSpan]:
        return self._span

    def span(self, name: str, **attributes: str) -> contextlib.AbstractContextManager[None]:
        return self._none

    def inject(self, headers: MutableMapping[str, str]) -> None:
        return None

    async def close(self) -> None:
        return None


NO_TRACING: Final[Tracing] = _NoTracing()


class _ServerSpan:
    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def finish(self, status: int, route: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("http.response.status_code", status)
        self._span.set_attribute("http.route", route)
        self._span.update_name(f"{self._span.name.split(' ', 1)[0]} {route}")
        if status >= _FIRST_SERVER_ERROR:
            self._span.set_status(Status(StatusCode.ERROR))


class _OtelTracing:
    """Spans exported over OTLP/HTTP by a provider of this node's own (no global state is touched)."""

    def __init__(self, endpoint: str, service_name: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        resource = Resource.create({"service.name": service_name, "service.version": __version__})
        self._provider = TracerProvider(resource=resource)
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self._tracer = self._provider.get_tracer("function_node", __version__)
        self._propagator = TraceContextTextMapPropagator()

    @contextlib.contextmanager
    def request(self, request: web.Request) -> Iterator[RequestSpan]:
        from opentelemetry.trace import SpanKind

        parent = self._propagator.extract(carrier=request.headers)
        with self._tracer.start_as_current_span(
            request.method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method},
        ) as span:
            yield _ServerSpan(span)

    @contextlib.contextmanager
    def span(self, name: str, **attributes: str) -> Iterator[None]:
        from opentelemetry.trace import SpanKind

        kind = SpanKind.CLIENT if name == "upstream" else SpanKind.INTERNAL
        with self._tracer.start_as_current_span(name, kind=kind, attributes=attributes):
            yield

    def inject(self, headers: MutableMapping[str, str]) -> None:
        self._propagator.inject(carrier=headers)

    async def close(self) -> None:
        import asyncio

        # Flushes the last batch over HTTP: a blocking call, kept off the event loop.
        await asyncio.to_thread(self._provider.shutdown)


def check_tracing(settings: TracingSettings) -> None:
    """ConfigError when an endpoint is set but the ``otel`` extra is not installed (``config check`` too)."""
    if not settings.otlp_endpoint:
        return
    import importlib.util

    for module in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise ConfigError(
                "tracing.otlpEndpoint is set but OpenTelemetry is not installed: pip install "
                "'function-node[otel]' (or leave tracing.otlpEndpoint empty)"
            )


def create_tracing(settings: TracingSettings) -> Tracing:
    """:data:`NO_TRACING` unless an endpoint is set; ConfigError when it is but the extra is missing."""
    if not settings.otlp_endpoint:
        return NO_TRACING
    check_tracing(settings)
    endpoint = settings.otlp_endpoint.rstrip("/")
    if not endpoint.endswith(_TRACES_PATH):
        endpoint += _TRACES_PATH
    return _OtelTracing(endpoint, settings.service_name)
