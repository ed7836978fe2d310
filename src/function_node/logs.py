"""structlog set-up from ``logger.verbosity`` and ``logger.format``.

Context (request id, route, caller) is bound with ``structlog.contextvars`` in the middleware and
merged into every line; it is cleared per request.

Libraries log through the standard ``logging`` module (web3's ``Successfully disconnected from: <RPC
URL>``, aiohttp's ``Error handling request``, asyncio's ``Task exception was never retrieved``). Their
records are rendered by the same processors as ours, so the JSON stream stays one JSON object per line
and their text is redacted like ours (SPEC §10: no RPC URL path, no URL credentials). Below
``verbosity: debug`` only their warnings and errors are kept: their info lines are connection chatter.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, Final, Literal, TextIO

import orjson
import structlog

from function_node.redact import redact_text

__all__ = ["configure_logging", "escape_untrusted", "get_logger", "redact_event"]

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
        structlog.processors.JSONRenderer(serializer=_orjson_text)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
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
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, timestamper],
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
