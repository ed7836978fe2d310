"""Forced stream usage against the real servers (SPEC §6, §11): a stream that did not ask for usage gets
none through the node, and the node's ledger gets the server's own token counts.

llama-cpp-python's server ignores ``stream_options``: its streams carry no usage, asked or not, so the
ledger has no tokens for them (the request is counted, its tokens are not; nothing is made up).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.backends.conftest import Front
from tests.backends.wire import events, split_signature
from tests.fixtures.node import FXN

PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
_FLUSH_S = 1.2  # a little over the ledger writer's 1 s interval
BODIES: dict[str, dict[str, Any]] = {
    "chat": {"messages": [{"role": "user", "content": "count the nodes"}], "temperature": 0, "max_tokens": 7},
    "completions": {"prompt": "the function network", "temperature": 0, "max_tokens": 7},
}


def _ledger(front: Front, model: str) -> dict[str, Any]:
    result = subprocess.run(
        [FXN, "--home", str(front.node.home), "usage", "--json", "--since", "all", "--by", "model"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [row for row in json.loads(result.stdout) if row["model"] == model]
    return rows[0] if rows else {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}


def _settled_ledger(front: Front, model: str) -> dict[str, Any]:
    """The ledger's row once two reads a flush apart agree: the node writes it once a second, so rows
    of the requests earlier tests sent through the same node may still be on their way."""
    deadline = time.monotonic() + 20
    last = _ledger(front, model)
    while time.monotonic() < deadline:
        time.sleep(_FLUSH_S)
        now = _ledger(front, model)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the usage ledger of {model} never settled: {last}")


def _usage_events(body: bytes) -> list[bytes]:
    return [e for e in events(body) if b'"choices":[]' in e.replace(b" ", b"")]


@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_forced_stream_usage_reaches_the_ledger_not_the_client(
    front: Front, signed: httpx.Client, direct: httpx.Client, kind: str
) -> None:
    model = front.server.model
    before = _settled_ledger(front, model)
    body = orjson.dumps({**BODIES[kind], "model": model, "stream": True})
    through = signed.post(front.node.url + PATHS[kind], content=body)
    assert through.status_code == 200
    relayed, _signature = split_signature(through.content)
    assert _usage_events(relayed) == []  # the client did not ask: no usage event reaches it
    assert events(relayed)[-1].startswith(b"data: [DONE]")
    # What the server reports when asked itself, for the same greedy request.
    asked = orjson.dumps(
        {**BODIES[kind], "model": model, "stream": True, "stream_options": {"include_usage": True}}
    )
    reported = _usage_events(direct.post(front.server.url + PATHS[kind], content=asked).content)
    if front.server.kind == "vllm":
        (event,) = reported
        usage = orjson.loads(event.removeprefix(b"data: "))["usage"]
        expected = (usage["prompt_tokens"], usage["completion_tokens"])
        assert expected[1] == BODIES[kind]["max_tokens"]
    else:
        assert reported == []  # llama-cpp-python sends no usage in streams
        expected = (0, 0)
    deadline = time.monotonic() + 10  # the ledger is written once a second
    while _ledger(front, model)["requests"] == before["requests"] and time.monotonic() < deadline:
        time.sleep(0.2)
    after = _settled_ledger(front, model)
    assert after["requests"] == before["requests"] + 1
    assert (
        after["prompt_tokens"] - before["prompt_tokens"],
        after["completion_tokens"] - before["completion_tokens"],
    ) == expected
