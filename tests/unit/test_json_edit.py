"""Body edits that keep every other byte (SPEC §6): the upstreamModel rewrite and the forced stream usage."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from function_node.node.json_edit import insert_member, set_member, set_string_member, with_stream_usage

BIG = b"123456789012345678901234567890123456789"  # past 64 bits: orjson would make it a float


def _edited_usage(body: bytes) -> bytes:
    return with_stream_usage(body, json.loads(body))


def test_stream_options_added_first_and_everything_else_kept() -> None:
    body = b'{"model":"m", "n": ' + BIG + b', "t": 1e5, "x": 1.10, "stream": true}'
    out = _edited_usage(body)
    assert out == b'{"stream_options":{"include_usage":true},' + body[1:]
    assert json.loads(out)["n"] == int(BIG)


def test_leading_whitespace_and_an_empty_object() -> None:
    assert insert_member(b'  \n{ "a": 1}', b'"k":2') == b'  \n{"k":2, "a": 1}'
    assert insert_member(b"{}", b'"k":2') == b'{"k":2}'
    assert insert_member(b"{ }", b'"k":2') == b'{"k":2 }'
    with pytest.raises(ValueError, match="not a JSON object"):
        insert_member(b"[1]", b'"k":2')


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (b"null", b'{"include_usage":true}'),
        (b"{}", b'{"include_usage":true}'),
        (b'{"include_usage": false}', b'{"include_usage": true}'),
        (b'{"continuous_usage_stats":true}', b'{"include_usage":true,"continuous_usage_stats":true}'),
        (
            b'{ "x" : [1, {"include_usage": false}] , "include_usage":0 }',
            b'{ "x" : [1, {"include_usage": false}] , "include_usage":true }',
        ),
    ],
)
def test_existing_stream_options_edited_inside(options: bytes, expected: bytes) -> None:
    body = b'{"model":"m","stream":true,"stream_options":' + options + b',"n":' + BIG + b"}"
    assert (
        _edited_usage(body)
        == b'{"model":"m","stream":true,"stream_options":' + expected + b',"n":' + BIG + b"}"
    )


def test_model_rewritten_in_place_even_after_long_messages() -> None:
    body = (
        b'{"messages":[{"role":"user","content":"say \\"model\\": \\"x\\" \\u00e9"}],'
        b' "model" : "alias", "seed": ' + BIG + b', "temperature": 0.70}'
    )
    out = set_string_member(body, "model", "alias", "org/Real-Model")
    assert out == body.replace(b'"alias"', b'"org/Real-Model"')


def test_model_rewrite_when_a_nested_member_has_the_name_too() -> None:
    # Two occurrences: the fast path does not apply; the walk edits the top level only.
    body = b'{"metadata":{"model":"alias"},"model":"alias","n":' + BIG + b"}"
    assert (
        set_string_member(body, "model", "alias", "up")
        == b'{"metadata":{"model":"alias"},"model":"up","n":' + BIG + b"}"
    )


def test_model_key_written_with_an_escape() -> None:
    # The only plain "model" is nested; the top-level key is spelled with an escape: the check catches it.
    body = b'{"mod\\u0065l":"alias","x":{"model":"alias"}}'
    out = set_string_member(body, "model", "alias", "up")
    assert out == b'{"mod\\u0065l":"up","x":{"model":"alias"}}'


def test_duplicate_top_level_keys_are_all_set() -> None:
    body = b'{"model":"a","x":1,"model":"a"}'
    assert set_member(body, "model", b'"b"') == b'{"model":"b","x":1,"model":"b"}'
    assert set_member(b'{"x":1}', "model", b'"b"') == b'{"model":"b","x":1}'


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    members=st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in ("model", "stream_options")), json_values, max_size=6
    ),
    options=st.none() | st.just({}) | st.dictionaries(st.sampled_from(["include_usage", "x"]), json_values),
    indent=st.booleans(),
)
def test_edits_change_exactly_their_member(
    members: dict[str, Any], options: dict[str, Any] | None, indent: bool
) -> None:
    document = {**members, "model": "alias", "stream": True}
    if options is not None or indent:
        document["stream_options"] = options
    body = json.dumps(document, indent=2 if indent else None).encode()
    out = set_string_member(body, "model", "alias", "upstream/model")
    out = with_stream_usage(out, json.loads(out))
    parsed = json.loads(out)  # the stdlib keeps integers exact
    expected_options = document.get("stream_options")
    expected_options = dict(expected_options) if isinstance(expected_options, dict) else {}
    expected_options["include_usage"] = True
    assert parsed == {**document, "model": "upstream/model", "stream_options": expected_options}
    # Every other member's bytes are the client's own.
    for key, value in members.items():
        text = json.dumps(value, indent=2 if indent else None)
        if indent:
            text = text.replace("\n", "\n  ")
        assert text.encode() in out, key


def test_orjson_would_have_changed_the_values() -> None:
    # Why the edit is a splice: re-serialising loses a big integer and rewrites floats.
    body = b'{"model":"a","n":' + BIG + b',"f":1e5}'
    assert orjson.dumps(orjson.loads(body)) != body
    assert set_string_member(body, "model", "a", "b") == b'{"model":"b","n":' + BIG + b',"f":1e5}'
