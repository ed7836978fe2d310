"""structlog set-up from ``logger.verbosity`` and ``logger.format``.

Context (request id, route, caller) is bound with ``structlog.contextvars`` in the middleware and
merged into every line; it is cleared per request.
"""

from __future__ import annotations

import logging
import sys
from typing import Final, Literal, TextIO

import orjson
import structlog

__all__ = ["configure_logging", "escape_untrusted", "get_logger"]

# Untrusted text (a caller's header) is cut to this many characters before it is logged.
_UNTRUSTED_MAX_CHARS: Final = 128

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(
    verbosity: Literal["debug", "info", "warn", "error"] = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog (and the stdlib root logger it may feed) once per process."""
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_text)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[verbosity]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=_LEVELS[verbosity], stream=out, format="%(levelname)s %(name)s %(message)s")


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
