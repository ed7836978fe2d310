"""Comparing what the node relays with what the server answers directly, on the raw bytes.

Two answers to the same greedy request differ only in their ids and timestamps; :func:`normalized`
blanks those (and nothing else). A stream through the node may carry one thing more: the node's
signature comment line after the backend's last event (SPEC §5), which :func:`split_signature` takes
off; any other difference is a relay defect.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["events", "normalized", "split_signature"]

_ID: Final = re.compile(rb'"id": ?"[^"]*"')
_CREATED: Final = re.compile(rb'"created": ?\d+')
_SIGNATURE_LINE: Final = re.compile(rb": fxn-signature 0x[0-9a-fA-F]{130}\n\n\Z")
_EVENT_END: Final = re.compile(rb"(?<=\r\n\r\n)|(?<=\n\n)(?<!\r\n\r\n)")


def normalized(body: bytes) -> bytes:
    return _CREATED.sub(b'"created":0', _ID.sub(b'"id":"-"', body))


def split_signature(body: bytes) -> tuple[bytes, bytes | None]:
    """The stream without the node's trailing signature line, and that line (None when absent)."""
    found = _SIGNATURE_LINE.search(body)
    if found is None:
        return body, None
    return body[: found.start()], found.group(0)


def events(body: bytes) -> list[bytes]:
    """The SSE events of ``body``, each with its own line ends (so a re-encoded event shows)."""
    return [event for event in _EVENT_END.split(body) if event]
