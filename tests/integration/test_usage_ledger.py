"""The usage ledger written by real node processes (``fxn start``) and read with ``fxn usage`` (SPEC §6,
§11): the stream usage the node asks for and holds back, a restart, and two workers writing one file."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from openai import OpenAI

from function_node.client import FxnAuth
from function_node.devnet.dev_backend import reply_tokens
from function_node.devnet.redis_server import RedisServer
from function_node.signing import LocalSigner
from tests.fixtures.backend import USAGE_STREAM, USAGE_STREAM_TOKENS, FakeBackend, usage_stream_events
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import FXN, NodeProcess, model_doc

pytestmark = pytest.mark.integration

GATEWAY = LocalSigner.from_hex(DEV_KEYS[0])
CALLER = GATEWAY.address.lower()
QUESTION = "what is the function network?"


def usage(node: NodeProcess, *args: str) -> list[dict[str, Any]]:
    """``fxn usage --json`` on the node's home, as an operator runs it."""
    result = subprocess.run(
        [FXN, "--home", str(node.home), "usage", "--json", "--since", "all", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def start_node(node_factory: Callable[..., NodeProcess], backend: FakeBackend, **kwargs: Any) -> NodeProcess:
    models = [model_doc(name, [backend.url]) for name in ("dev", USAGE_STREAM)]
    return node_factory(models=models, gateways=[GATEWAY.address], schedulers=[], **kwargs)


@pytest.fixture
def signed() -> Iterator[httpx.Client]:
    with httpx.Client(auth=FxnAuth(GATEWAY), timeout=30) as client:
        yield client


def test_a_stream_that_did_not_ask_gets_the_backends_events_and_the_ledger_its_tokens(
    node_factory: Callable[..., NodeProcess], fake_backend: FakeBackend, signed: httpx.Client
) -> None:
    node = start_node(node_factory, fake_backend)
    body = orjson.dumps(
        {"model": USAGE_STREAM, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )
    resp = signed.post(node.url + "/v1/chat/completions", content=body)  # FxnAuth checks the signature line
    assert resp.status_code == 200
    relayed = resp.content[: resp.content.rindex(b": fxn-signature 0x")]
    assert relayed == b"".join(e for e in usage_stream_events(asked=True) if b'"choices":[]' not in e)
    # The official SDK streams from the dev backend without asking: every chunk has a choice.
    http = httpx.Client(auth=FxnAuth(GATEWAY), timeout=30)
    sdk = OpenAI(base_url=node.url + "/v1", api_key="-", http_client=http, max_retries=0)  # type: ignore[arg-type]
    chunks = list(
        sdk.chat.completions.create(
            model="dev", messages=[{"role": "user", "content": QUESTION}], max_tokens=6, stream=True
        )
    )
    http.close()
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(reply_tokens(QUESTION, 6))
    assert all(c.usage is None for c in chunks)
    assert node.stop() == 0  # the last batch is written at shutdown
    rows = {row["model"]: row for row in usage(node)}
    assert (
        rows[USAGE_STREAM]["prompt_tokens"],
        rows[USAGE_STREAM]["completion_tokens"],
    ) == USAGE_STREAM_TOKENS
    assert (rows["dev"]["prompt_tokens"], rows["dev"]["completion_tokens"]) == (len(QUESTION.split()), 6)
    assert {row["caller"] for row in rows.values()} == {CALLER}


def test_the_ledger_survives_a_restart(
    node_factory: Callable[..., NodeProcess], fake_backend: FakeBackend, signed: httpx.Client
) -> None:
    node = start_node(node_factory, fake_backend)
    chat = orjson.dumps({"model": "dev", "messages": [{"role": "user", "content": "a b c"}], "max_tokens": 4})
    for _ in range(3):
        assert signed.post(node.url + "/v1/chat/completions", content=chat).status_code == 200
    assert node.stop() == 0
    node.start()
    for _ in range(2):
        assert signed.post(node.url + "/v1/chat/completions", content=chat).status_code == 200
    assert signed.post(node.url + "/v1/chat/completions", content=b"{}").status_code == 400
    assert node.stop() == 0
    rows = usage(node)
    assert [
        (r["model"], r["requests"], r["errors"], r["prompt_tokens"], r["completion_tokens"]) for r in rows
    ] == [
        ("-", 1, 1, 0, 0),
        ("dev", 5, 0, 15, 20),
    ]
    (hourly,) = usage(node, "--by", "hour")
    assert hourly["requests"] == 6


def test_two_workers_write_one_consistent_ledger(
    node_factory: Callable[..., NodeProcess], fake_backend: FakeBackend, redis_server: RedisServer
) -> None:
    config = {"nonceCache": {"backend": "redis", "redisUrl": redis_server.url}}
    node = start_node(node_factory, fake_backend, config=config, args=["--workers", "2"])
    expected_prompt = expected_completion = 0
    auth = FxnAuth(GATEWAY)
    for i in range(24):
        # A connection of its own each time, so the kernel spreads them over both workers.
        body = {
            "model": "dev",
            "messages": [{"role": "user", "content": "w " * (i % 3 + 1)}],
            "max_tokens": i % 5 + 1,
        }
        with httpx.Client(auth=auth, timeout=30) as client:
            answer = client.post(node.url + "/v1/chat/completions", content=orjson.dumps(body)).json()
        expected_prompt += answer["usage"]["prompt_tokens"]
        expected_completion += answer["usage"]["completion_tokens"]
    assert node.stop() == 0
    closed = [line["requests"] for line in node.log_lines() if line.get("event") == "usage ledger closed"]
    assert len(closed) == 2 and min(closed) > 0 and sum(closed) == 24  # both workers served and wrote
    (row,) = usage(node)
    assert (row["caller"], row["model"], row["requests"], row["errors"]) == (CALLER, "dev", 24, 0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (expected_prompt, expected_completion)
