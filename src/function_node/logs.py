"""structlog set-up from ``logger.verbosity`` and ``logger.format``.

A request's context (request id, route, method, model) is one dict in :data:`REQUEST_CONTEXT`, set by
the observe middleware for the request and merged into every line logged meanwhile (ours and the
libraries'). One context variable set once per request costs a fraction of binding one variable per
key with ``structlog.contextvars`` (whose merge_contextvars stays in the chain for anything bound that
way).

Libraries log through the standard ``logging`` module (web3's ``Successfully disconnected from: <RPC
URL>``, aiohttp's ``Error handling request``, asyncio's ``Task exception was never retrieved``). Their
records are rendered by the same processors as ours, so the JSON stream stays one JSON object per line
and their text is redacted like ours (SPEC §10: no RPC URL path, no URL credentials). Below
``verbosity: debug`` only their warnings and errors are kept: their info lines are connection chatter.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Final, Literal, TextIO

import orjson
import structlog

from function_node.redact import redact_text

__all__ = [
    "REQUEST_CONTEXT",
    "RequestLine",
    "bind_request",
    "configure_logging",
    "escape_untrusted",
    "get_logger",
    "merge_request_context",
    "redact_event",
]

REQUEST_CONTEXT: Final[contextvars.ContextVar[dict[str, Any] | None]] = contextvars.ContextVar(
    "fxn_request_context", default=None
)


def bind_request(**values: Any) -> None:
    """Add ``values`` to the current request's context (its log lines carry them); none outside one."""
    context = REQUEST_CONTEXT.get()
    if context is not None:
        context.update(values)


def merge_request_context(
    _logger: object, _method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Processor: the current request's context, under what the line itself says."""
    context = REQUEST_CONTEXT.get()
    if context:
        for key, value in context.items():
            event.setdefault(key, value)
    return event


# Untrusted text (a caller's header) is cut to this many characters before it is logged.
_UNTRUSTED_MAX_CHARS: Final = 128

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
# The least severe level a library's record needs to be logged, unless verbosity is debug.
_LIBRARY_LEVEL: Final = logging.WARNING


class _FxnHandler(logging.StreamHandler[TextIO]):
    """The root handler configure_logging installs (a type of its own, so a second call replaces it)."""


def configure_logging(
    verbosity: Literal["debug", "info", "warn", "error"] = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog, and route the stdlib root logger through it, once per process."""
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    renderer: structlog.types.Processor = (
        _JsonRenderer(out) if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            merge_request_context,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[verbosity]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            merge_request_context,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
    )
    handler = _FxnHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _FxnHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity == "debug" else max(_LEVELS[verbosity], _LIBRARY_LEVEL))
    logging.captureWarnings(True)  # a library's warnings.warn() would otherwise print raw text


def redact_event(_logger: object, _method: str, event: structlog.types.EventDict) -> Mapping[str, Any]:
    """Redact every URL in the event's text values (one level into lists and dicts).

    It runs for every line, the request line included: the ``"://" in`` test is inlined so that a line
    without a URL (nearly all of them) costs a few hundred nanoseconds (bench/log_line.py)."""
    for key, value in event.items():
        if type(value) is str:
            if "://" in value:
                event[key] = redact_text(value)
        elif isinstance(value, list | tuple):
            event[key] = [redact_text(v) if isinstance(v, str) else v for v in value]
        elif isinstance(value, dict):
            event[key] = {k: redact_text(v) if isinstance(v, str) else v for k, v in value.items()}
    return event


class _JsonRenderer(structlog.processors.JSONRenderer):
    """structlog's JSON renderer with orjson, remembering the stream the lines go to (for RequestLine)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(serializer=_orjson_text)
        self.stream = stream


class _UtcStamp:
    """``datetime.now(UTC).isoformat()`` with ``Z`` — TimeStamper(fmt="iso", utc=True)'s text — formatting
    the date and time once a second rather than per line."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        micro = int((now - second) * 1_000_000)
        return f"{self._prefix}.{micro:06d}Z" if micro else f"{self._prefix}Z"


class RequestLine:
    """The one line per request (SPEC §10), on the request path of every answer.

    With the JSON renderer in force (``logger.format: json``, what operators run) the line is rendered
    here: the same keys and values as the processor chain gives it (the bound context, the event, level,
    timestamp, redaction), in one orjson call and one write, without the chain's generic steps. Under any
    other configuration (the console renderer, ``structlog.testing.capture_logs``) it goes through
    structlog like every other line. It is chosen per line, so a reconfiguration takes effect at once.
    """

    __slots__ = ("_log", "_stamp")

    def __init__(self, name: str = "fxn.request") -> None:
        # bind() resolves structlog's lazy proxy once; the proxy would rebuild the logger every line.
        self._log = get_logger(name).bind()
        self._stamp = _UtcStamp()

    def info(self, event: str, **fields: Any) -> None:
        config = structlog.get_config()
        renderer = config["processors"][-1]
        if type(renderer) is not _JsonRenderer or not self._log.is_enabled_for(logging.INFO):
            self._log.info(event, **fields)
            return
        context = REQUEST_CONTEXT.get()
        line = {**context, **fields} if context else fields
        line["event"] = event
        line["level"] = "info"
        line["timestamp"] = self._stamp()
        redact_event(None, "info", line)
        stream = renderer.stream
        stream.write(orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
        stream.flush()


def _orjson_text(event: object, **_: object) -> str:
    # One line per request is rendered on the hot path: orjson is several times faster than the
    # stdlib json that JSONRenderer uses by default. Values orjson cannot encode fall back to str(),
    # as structlog's own fallback does.
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def get_logger(name: str = "fxn") -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]


def escape_untrusted(text: str, limit: int = _UNTRUSTED_MAX_CHARS) -> str:
    """``text`` as printable ASCII, cut to ``limit`` characters: safe to log whatever a caller sent.

    aiohttp decodes header bytes that are not UTF-8 into lone surrogates, which no encoder writes;
    control characters would forge lines in a console log. Both become backslash escapes.
    """
    cut = text[:limit]
    if cut.isascii() and cut.isprintable():
        return cut
    return cut.encode("ascii", "backslashreplace").decode("ascii").encode("unicode_escape").decode("ascii")
