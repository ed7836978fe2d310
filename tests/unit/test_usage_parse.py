"""Token counts from answers: the plain ``usage`` object, and a stream's usage event held back or read
from the tail, on the bytes, whatever the chunking."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from function_node.node.usage_parse import StreamUsageTap, Usage, usage_of_json

CONTENT = [
    b'data: {"id":"c","object":"chat.completion.chunk",'
    b'"choices":[{"index":0,"delta":{"content":"%d"}}],"usage":null}\n\n' % i
    for i in range(4)
]
USAGE_EVENT = (
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":4,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0}}}\n\n'
)
DONE = b"data: [DONE]\n\n"
STREAM = b"".join(CONTENT) + USAGE_EVENT + DONE
WITHOUT_USAGE = b"".join(CONTENT) + DONE


def _relay(tap: StreamUsageTap, raw: bytes, cuts: list[int]) -> tuple[bytes, list[bytes]]:
    points = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    chunks = [raw[a:b] for a, b in itertools.pairwise(points)]
    writes = [tap.feed(c) for c in chunks]
    return b"".join(writes) + tap.flush(), writes


@settings(max_examples=300, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30), crlf=st.booleans())
def test_the_usage_event_is_held_back_whatever_the_chunks(cuts: list[int], crlf: bool) -> None:
    raw, expected = STREAM, WITHOUT_USAGE
    if crlf:
        raw, expected = raw.replace(b"\n", b"\r\n"), expected.replace(b"\n", b"\r\n")
    tap = StreamUsageTap(strip=True)
    relayed, writes = _relay(tap, raw, cuts)
    assert relayed == expected
    assert tap.finish() == Usage(7, 4)
    # Bytes leave as whole events only: no write ends inside one.
    assert all(w.endswith((b"\n\n", b"\r\n\r\n")) for w in writes if w)


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_a_stream_that_asked_is_relayed_as_it_came(cuts: list[int]) -> None:
    tap = StreamUsageTap(strip=False)
    relayed, writes = _relay(tap, STREAM, cuts)
    assert relayed == STREAM
    points = sorted({0, len(STREAM), *(c % (len(STREAM) + 1) for c in cuts)})
    assert len(writes) == len(points) - 1  # every chunk written as it came, none held
    assert tap.finish() == Usage(7, 4)


def test_an_event_with_empty_choices_but_no_usage_is_relayed() -> None:
    odd = b'data: {"choices":[],"note":"backend-specific"}\n\n'
    tap = StreamUsageTap(strip=True)
    assert tap.feed(odd + DONE) == odd + DONE
    assert tap.finish() is None


def test_a_stream_without_usage_has_none() -> None:
    # llama-cpp-python ignores stream_options: nothing to hold back, and no tokens for the ledger.
    tap = StreamUsageTap(strip=True)
    assert tap.feed(WITHOUT_USAGE) == WITHOUT_USAGE
    assert tap.finish() is None


def test_a_cut_stream_has_the_usage_reported_so_far() -> None:
    # vLLM's continuous_usage_stats: every event carries the running usage.
    events = [
        b'data: {"choices":[{"delta":{"content":"a"}}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":%d}}\n\n' % n
        for n in (1, 2, 3)
    ]
    tap = StreamUsageTap(strip=False)
    for event in events:
        tap.feed(event)
    tap.feed(b'data: {"choices":[{"delta":{"content":"b"}}],"usage":{"prompt_tok')  # cut mid-event
    assert tap.finish() == Usage(3, 3)


def test_a_cut_stream_without_usage_has_none() -> None:
    tap = StreamUsageTap(strip=True)
    tap.feed(CONTENT[0] + CONTENT[1][:20])
    assert tap.flush() == CONTENT[1][:20]
    assert tap.finish() is None


def test_only_the_tail_is_kept() -> None:
    tap = StreamUsageTap(strip=False)
    for _ in range(10_000):
        tap.feed(CONTENT[0])
    assert tap._recent_bytes < 8192 + len(CONTENT[0])  # the bound is the point


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "id": "x",
                "choices": [{"message": {"content": '"usage": {"prompt_tokens": 99}'}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            },
            Usage(5, 2),
        ),
        ({"usage": {"prompt_tokens": 4, "total_tokens": 4}, "data": []}, Usage(4, 0)),  # embeddings
        (
            {
                "usage": {
                    "prompt_tokens": 1,
                    "completion_tokens_details": {"reasoning_tokens": 0},
                    "completion_tokens": 3,
                }
            },
            Usage(1, 3),
        ),
        ({"choices": [{"text": "usage"}]}, None),
        ({"usage": None}, None),
        ({"usage": {"prompt_tokens": -1, "completion_tokens": 2}}, None),
        ({"usage": {"prompt_tokens": True, "completion_tokens": 2}}, None),
        ({"usage": {"completion_tokens": 2}}, None),
    ],
)
def test_usage_of_plain_answers(body: object, expected: Usage | None) -> None:
    assert usage_of_json(orjson.dumps(body)) == expected
    assert usage_of_json(orjson.dumps(body, option=orjson.OPT_INDENT_2)) == expected


def test_usage_of_a_body_that_is_not_json() -> None:
    assert usage_of_json(b'<html>"usage"</html>') is None
    assert usage_of_json(b"") is None
