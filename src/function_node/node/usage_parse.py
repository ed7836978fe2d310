"""The token counts of an answer, read with as little parsing as the relay can afford (SPEC §6, §11).

* A plain JSON answer: its ``usage`` object, found from the end of the body (where OpenAI-compatible
  servers put it) and parsed alone when it is flat; else the whole body is parsed.
* An event stream: :class:`StreamUsageTap` sees every chunk the backend sends. When the node asked for
  the usage itself (the client did not), it holds back the usage-only event (``"choices": []``) so the
  client never meets it: then, and only then, it relays whole events (a chunk's unfinished last event
  waits for its end, so no byte of the usage event can leave before it is recognised); the bytes are
  the backend's, in order, all but that event. Whatever the mode, it keeps the last few KiB it saw, so
  the usage of a stream the client asked it for, or of one the client cut, is read once, at the end.

Content events are never parsed: a chunk costs a few substring searches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = ["StreamUsageTap", "Usage", "usage_of_json", "usage_of_value"]

_USAGE_KEY: Final = b'"usage"'
_EMPTY_CHOICES: Final = (b'"choices":[]', b'"choices": []')
_USAGE_OBJECT: Final = (b'"usage":{', b'"usage": {')
_DATA: Final = b"data:"
_TAIL_BYTES: Final = 8192  # the usage event is a few hundred bytes; keep a few events' worth


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def usage_of_value(usage: object) -> Usage | None:
    """A parsed ``usage`` object as token counts; None unless it has a valid ``prompt_tokens``."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    # bool is an int subclass: True tokens are no count.
    if type(prompt) is not int or type(completion) is not int or prompt < 0 or completion < 0:
        return None
    return Usage(prompt, completion)


def usage_of_json(body: bytes) -> Usage | None:
    """The ``usage`` of a JSON answer body; None when it has none (or is not JSON).

    The usage object is parsed alone when it is flat (its details ``null``, as vLLM sends them): from
    the ``{`` after the last ``"usage":`` to the first ``}``; otherwise the whole body is parsed."""
    at = body.rfind(_USAGE_KEY)
    if at < 0:
        return None
    colon = body.find(b":", at + len(_USAGE_KEY))
    opening = body.find(b"{", colon)
    if colon >= 0 and opening >= 0 and not body[colon + 1 : opening].strip():
        closing = body.find(b"}", opening)
        try:
            return usage_of_value(orjson.loads(body[opening : closing + 1]))
        except orjson.JSONDecodeError:
            pass  # a nested object (prompt_tokens_details), or not the member after all
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return usage_of_value(document.get("usage")) if isinstance(document, dict) else None


def _last_event_end(data: bytes) -> int:
    """The index just past the last complete event of ``data`` (LF or CRLF line ends); -1 if none."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\n\r\n")
    return max(lf + 2 if lf >= 0 else -1, crlf + 3 if crlf >= 0 else -1)


def _event_bounds(data: bytes, at: int) -> tuple[int, int]:
    """The start and end of the complete event of ``data`` that holds index ``at``."""
    lf = data.rfind(b"\n\n", 0, at)
    crlf = data.rfind(b"\n\r\n", 0, at)
    start = max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)
    lf_end = data.find(b"\n\n", at)
    crlf_end = data.find(b"\n\r\n", at)
    ends = [e for e in (lf_end + 2 if lf_end >= 0 else -1, crlf_end + 3 if crlf_end >= 0 else -1) if e >= 0]
    return start, min(ends) if ends else len(data)


def _event_json(event: bytes) -> Any:
    """The JSON of an event's ``data:`` lines; None if it has none or they are not JSON."""
    lines = [line[len(_DATA) :] for line in event.splitlines() if line.startswith(_DATA)]
    if not lines:
        return None
    try:
        return orjson.loads(b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines))
    except orjson.JSONDecodeError:
        return None


def _find_any(data: bytes, needles: tuple[bytes, ...], start: int = 0) -> int:
    found = [i for i in (data.find(n, start) for n in needles) if i >= 0]
    return min(found) if found else -1


def _rfind_any(data: bytes, needles: tuple[bytes, ...]) -> int:
    return max(data.rfind(n) for n in needles)


class StreamUsageTap:
    """One stream's usage. ``strip``: the node asked for the usage, so the usage-only event is not
    relayed. Call :meth:`feed` with every chunk the backend sends and relay what it returns;
    :meth:`flush` returns what is still held when the stream ends early; :meth:`finish` the usage."""

    __slots__ = ("_pending", "_recent", "_recent_bytes", "strip", "usage")

    def __init__(self, *, strip: bool) -> None:
        self.strip = strip
        self.usage: Usage | None = None
        self._pending = b""
        self._recent: deque[bytes] = deque()
        self._recent_bytes = 0

    def feed(self, chunk: bytes) -> bytes:
        """The bytes of ``chunk`` (and of what was held before it) to relay now."""
        recent = self._recent
        recent.append(chunk)
        self._recent_bytes += len(chunk)
        while self._recent_bytes - len(recent[0]) >= _TAIL_BYTES:
            self._recent_bytes -= len(recent.popleft())
        if not self.strip:
            return chunk
        data = self._pending + chunk if self._pending else chunk
        if data.endswith(b"\n\n"):  # the common case: a chunk of whole events
            self._pending = b""
            complete = data
        else:
            end = _last_event_end(data)
            if end < 0:
                self._pending = data
                return b""
            complete, self._pending = data[:end], data[end:]
        if b"[]" in complete and (_EMPTY_CHOICES[0] in complete or _EMPTY_CHOICES[1] in complete):
            complete = self._without_usage_events(complete)
        return complete

    def flush(self) -> bytes:
        """What is held back (an unfinished event), for a stream that ends without finishing it."""
        pending, self._pending = self._pending, b""
        return pending

    def finish(self) -> Usage | None:
        """The stream's usage: the held-back usage event's, else the last one reported in the tail."""
        if self.usage is None and self._recent:
            self.usage = self._last_reported(b"".join(self._recent))
        return self.usage

    def _without_usage_events(self, data: bytes) -> bytes:
        pos = 0
        while True:
            at = _find_any(data, _EMPTY_CHOICES, pos)
            if at < 0:
                return data
            start, end = _event_bounds(data, at)
            document = _event_json(data[start:end])
            usage = usage_of_value(document.get("usage")) if isinstance(document, dict) else None
            if usage is None or document.get("choices") != []:
                pos = end  # an event with empty choices but no usage is the backend's: relay it
                continue
            self.usage = usage
            data = data[:start] + data[end:]
            pos = start

    @staticmethod
    def _last_reported(tail: bytes) -> Usage | None:
        while True:
            at = _rfind_any(tail, _USAGE_OBJECT)
            if at < 0:
                return None
            start, end = _event_bounds(tail, at)
            complete = tail[end - 2 : end] == b"\n\n" or tail[end - 3 : end] == b"\n\r\n"
            document = _event_json(tail[start:end]) if complete else None
            if isinstance(document, dict):
                usage = usage_of_value(document.get("usage"))
                if usage is not None:
                    return usage
            tail = tail[:start]
