"""Edits of a JSON request body that keep every other byte as the client sent it (SPEC §6).

The node edits at most two top-level members of a body: ``"model"`` (rewritten to ``upstreamModel``) and
``"stream_options"`` (usage asked for in streams). Re-serialising the parsed document would change values
the node has no business touching: orjson turns an integer beyond 64 bits into a float, and writes every
float in its own shortest form (``1e5`` becomes ``100000.0``). So the edit is a splice: the members of the
top-level object are located by the standard library's C JSON scanner (``raw_decode`` gives the end
of each value; integers and floats are kept as text, so no size limit applies), and only the bytes of the
member concerned are replaced or inserted.

Inserting a member that the document does not have costs nothing more than a copy: it goes right after
the opening ``{``. Only a replacement walks the members.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

__all__ = ["insert_member", "set_member", "set_string_member", "with_stream_usage"]

# Numbers as text: no conversion (and no int-digit limit), only their extent matters here.
_DECODER: Final = json.JSONDecoder(parse_int=str, parse_float=str)
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
_BYTES_WHITESPACE: Final = re.compile(rb"[ \t\n\r]*")
_WHITESPACE_BYTES: Final = (b" ", b"\t", b"\n", b"\r")
_STRING_TAIL: Final = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string after its opening quote
_INCLUDE_USAGE: Final = '"include_usage":true'
_STREAM_OPTIONS: Final = "stream_options"


class _Member:
    __slots__ = ("key", "value_end", "value_start")

    def __init__(self, key: str, value_start: int, value_end: int) -> None:
        self.key = key
        self.value_start = value_start
        self.value_end = value_end


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)  # [ \t\n\r]* always matches
    return match.end() if match else pos


def _skip_bytes(body: bytes, pos: int) -> int:
    match = _BYTES_WHITESPACE.match(body, pos)
    return match.end() if match else pos


def _members(text: str, start: int = 0) -> tuple[int, list[_Member]]:
    """The opening brace of the object at ``start`` and its members; ValueError if it is not one."""
    pos = _skip(text, start)
    if not text.startswith("{", pos):
        raise ValueError("not a JSON object")
    opening = pos
    members: list[_Member] = []
    pos = _skip(text, pos + 1)
    if text.startswith("}", pos):
        return opening, members
    while True:
        if not text.startswith('"', pos):
            raise ValueError("a member name must be a string")
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise ValueError("a member name must be followed by ':'")
        value_start = _skip(text, pos + 1)
        _, pos = _DECODER.raw_decode(text, value_start)  # JSONDecodeError (a ValueError) if none
        members.append(_Member(key, value_start, pos))
        pos = _skip(text, pos)
        if text.startswith(",", pos):
            pos = _skip(text, pos + 1)
        elif text.startswith("}", pos):
            return opening, members
        else:
            raise ValueError("members must be separated by ','")


def insert_member(body: bytes, member: bytes) -> bytes:
    """``member`` (``"key":value``) added as the first member of the object ``body``, which must not
    have that key already (the caller knows it from the parsed document)."""
    opening = 0 if body.startswith(b"{") else _skip_bytes(body, 0)
    if not body.startswith(b"{", opening):
        raise ValueError("not a JSON object")
    following = body[opening + 1 : opening + 2]
    after = opening + 1 if following not in _WHITESPACE_BYTES else _skip_bytes(body, opening + 1)
    separator = b"" if body.startswith(b"}", after) else b","
    return body[: opening + 1] + member + separator + body[opening + 1 :]


def set_string_member(body: bytes, key: str, old: str, new: str) -> bytes:
    """``body``, whose top-level ``key`` is the string ``old``, with ``new`` in its place.

    Fast path: when the key's plain spelling occurs once in the body, that occurrence is almost always
    the top-level member; the result is checked by parsing it (a nested member of that name with the
    top-level one spelled with escapes would fail the check), and the full walk runs otherwise.
    """
    quoted = json.dumps(key).encode()
    first = body.find(quoted)
    if first >= 0 and body.find(quoted, first + len(quoted)) < 0:
        at = first + len(quoted)
        colon = _skip_bytes(body, at)
        if body.startswith(b":", colon):
            start = _skip_bytes(body, colon + 1)
            end = _string_end(body, start)
            if end is not None:
                edited = body[:start] + orjson.dumps(new) + body[end:]
                parsed = orjson.loads(edited)
                if isinstance(parsed, dict) and parsed.get(key) == new and old != new:
                    return edited
    return set_member(body, key, orjson.dumps(new))


def _string_end(body: bytes, start: int) -> int | None:
    if not body.startswith(b'"', start):
        return None
    match = _STRING_TAIL.match(body, start + 1)
    return match.end() if match else None


def set_member(body: bytes, key: str, value: bytes) -> bytes:
    """``body`` with every top-level member ``key`` given the JSON ``value`` (added first when absent)."""
    text = body.decode()
    _, members = _members(text)
    targets = [m for m in members if m.key == key]
    if not targets:
        return insert_member(body, json.dumps(key).encode() + b":" + value)
    return _replace(text, [(m.value_start, m.value_end, value.decode()) for m in targets]).encode()


def with_stream_usage(body: bytes, document: dict[str, Any]) -> bytes:
    """``body`` (parsed as ``document``) asking for ``stream_options.include_usage``, every other option
    and value kept: the member is added when absent, replaced when it is not an object (``null``), and
    given ``include_usage: true`` inside when it is one."""
    if _STREAM_OPTIONS not in document:
        return insert_member(body, b'"stream_options":{' + _INCLUDE_USAGE.encode() + b"}")
    text = body.decode()
    _, members = _members(text)
    edits: list[tuple[int, int, str]] = []
    for member in members:
        if member.key != _STREAM_OPTIONS:
            continue
        value = text[member.value_start : member.value_end]
        edits.append((member.value_start, member.value_end, _options_with_usage(value)))
    return _replace(text, edits).encode()


def _options_with_usage(value: str) -> str:
    if not value.startswith("{"):
        return "{" + _INCLUDE_USAGE + "}"
    opening, members = _members(value)
    flags = [m for m in members if m.key == "include_usage"]
    if flags:
        return _replace(value, [(m.value_start, m.value_end, "true") for m in flags])
    separator = "" if not members else ","
    return value[: opening + 1] + _INCLUDE_USAGE + separator + value[opening + 1 :]


def _replace(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with each (start, end, new) span replaced; spans are in order and do not overlap."""
    parts: list[str] = []
    pos = 0
    for start, end, new in edits:
        parts.append(text[pos:start])
        parts.append(new)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
