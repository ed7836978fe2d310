"""Redaction of URLs before they are shown or logged (SPEC §10).

Providers put their API key in the RPC URL's path (``https://mainnet.infura.io/v3/<key>``) or in its
credentials (``https://user:key@…``), and Redis URLs carry passwords; none of that may reach a log line,
a metric, an error message or the output of ``fxn doctor`` / ``fxn status``. Everything that prints a
URL goes through :func:`redact_url`; :func:`redact_text` applies it to every URL inside free text (a
library's log message, an exception's text).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

__all__ = ["REDACTED", "redact_text", "redact_url"]

REDACTED: Final = "***"
# A URL inside free text: a scheme, "://", then everything up to white space or a quote. Trailing
# punctuation of the sentence around it is given back (see _TRAILING).
_URL_IN_TEXT: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")
_TRAILING: Final = ".,;:!?)]}"


def redact_url(url: str, *, keep_path: bool = False) -> str:
    """``scheme://host[:port]`` with credentials, query and fragment removed, and the path too unless
    ``keep_path`` (a backend's ``/v1`` is worth showing; an RPC URL's path is where its key lives).
    A removed part leaves ``***`` behind, so a reader can tell that something was there."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # not a URL we can take apart (a bad port, an unclosed [): show none of it
        return REDACTED
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    prefix = f"{parts.scheme}://" if parts.scheme else ""
    if parts.username is not None or parts.password is not None:
        prefix += f"{REDACTED}@"
    path = parts.path
    if path not in ("", "/") and not keep_path:
        path = f"/{REDACTED}"
    hidden = f"?{REDACTED}" if parts.query or parts.fragment else ""
    return f"{prefix}{host}{path}{hidden}"


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted by :func:`redact_url`."""
    if "://" not in text:  # the common case, and the cheap test on the logging hot path
        return text
    return _URL_IN_TEXT.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    found = match.group(0)
    url = found.rstrip(_TRAILING)
    return redact_url(url) + found[len(url) :]
