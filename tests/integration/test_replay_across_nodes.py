"""Replays across real node processes (``fxn start``) sharing a real redis-server; ``fxn request``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from function_node.client import FxnSigner, verify_response_signature
from function_node.devnet.redis_server import RedisServer
from function_node.keys import write_plaintext
from function_node.signing import LocalSigner
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import FXN, NodeProcess, model_doc

pytestmark = pytest.mark.integration

GATEWAY = LocalSigner.from_hex(DEV_KEYS[0])
NODE_A_KEY, NODE_B_KEY = DEV_KEYS[2], DEV_KEYS[3]
# /v1/models answers from backend.yaml alone, so no model server is needed; the backend URL is a
# closed loopback port that is never asked for a completion.
MODELS = [model_doc("m", ["http://127.0.0.1:9/v1"])]


def start_pair(
    node_factory: Callable[..., NodeProcess], redis: RedisServer | None, keys: tuple[str, str]
) -> tuple[NodeProcess, NodeProcess]:
    config: dict[str, Any] = {}
    if redis is not None:
        config["nonceCache"] = {"backend": "redis", "redisUrl": redis.url}
    a, b = (
        node_factory(models=MODELS, gateways=[GATEWAY.address], schedulers=[], config=config, key_hex=key)
        for key in keys
    )
    return a, b


def get_models(node: NodeProcess, headers: dict[str, str]) -> tuple[int, str, httpx.Response]:
    resp = httpx.get(node.url + "/v1/models", headers=headers, timeout=10)
    body = resp.json()
    return resp.status_code, body["error"]["code"] if "error" in body else "", resp


def test_legacy_request_replayed_to_a_replica_is_refused(
    node_factory: Callable[..., NodeProcess], redis_server: RedisServer
) -> None:
    a, b = start_pair(node_factory, redis_server, (NODE_A_KEY, NODE_A_KEY))
    headers = FxnSigner(GATEWAY).headers("GET", "/v1/models", b"")
    status, _, resp = get_models(a, headers)
    assert status == 200
    assert verify_response_signature(
        a.signer.address,
        caller_address=GATEWAY.address,
        request_body=b"",
        nonce=headers["X-Nonce"],
        status=200,
        body=resp.content,
        signature=resp.headers["X-Fxn-Response-Signature"],
    )
    assert get_models(b, headers)[:2] == (401, "replayed_nonce")
    assert get_models(a, headers)[:2] == (401, "replayed_nonce")
    fresh = FxnSigner(GATEWAY).headers("GET", "/v1/models", b"")
    assert get_models(b, fresh)[:2] == (200, "")


def test_v2_replica_replay_is_refused_by_the_shared_store(
    node_factory: Callable[..., NodeProcess], redis_server: RedisServer
) -> None:
    a, b = start_pair(node_factory, redis_server, (NODE_A_KEY, NODE_A_KEY))
    headers = FxnSigner(GATEWAY).headers("GET", "/v1/models", b"", a.signer.address)
    assert get_models(a, headers)[:2] == (200, "")
    assert get_models(b, headers)[:2] == (401, "replayed_nonce")


def test_without_a_shared_store_v2_still_stops_replay_to_another_node(
    node_factory: Callable[..., NodeProcess],
) -> None:
    # Two different nodes with their own memory stores: the legacy form would be replayable to B,
    # which is why v2 binds the node's address into the signed message.
    a, b = start_pair(node_factory, None, (NODE_A_KEY, NODE_B_KEY))
    legacy = FxnSigner(GATEWAY).headers("GET", "/v1/models", b"")
    assert get_models(a, legacy)[:2] == (200, "")
    assert get_models(b, legacy)[:2] == (200, "")  # the weakness SPEC §5 describes
    v2 = FxnSigner(GATEWAY).headers("GET", "/v1/models", b"", a.signer.address)
    assert get_models(a, v2)[:2] == (200, "")
    assert get_models(b, v2)[:2] == (401, "bad_signature")


def test_fxn_request_signs_v2_for_whichever_node_it_asks(
    node_factory: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    a, b = start_pair(node_factory, None, (NODE_A_KEY, NODE_B_KEY))
    key = tmp_path / "gateway.json"
    write_plaintext(key, GATEWAY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FXN_")}
    for node in (a, b):
        done = subprocess.run(
            [
                FXN,
                "--home",
                str(tmp_path / "cli-home"),
                "request",
                "/v1/models",
                "--node",
                node.url,
                "--key",
                str(key),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["object"] == "list"
        assert done.stderr == (
            f"trusting node {node.signer.address.lower()} (from its /health) on first use; "
            "--node-address pins it\n"
            f"response signature: valid (node {node.signer.address})\n"
        )
