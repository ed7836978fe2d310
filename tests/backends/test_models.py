"""The generated tiny model: the same bytes from the same seeds, and the same greedy tokens from both
servers (one set of weights in two formats)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import orjson

from tests.backends.conftest import JSON
from tests.backends.servers import ModelFiles, ModelServer, generate_models


def _digests(files: ModelFiles) -> dict[str, str]:
    paths = [files.gguf, *sorted(files.hf_dir.iterdir())]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_generated_twice_is_the_same_bytes(tiny_models: ModelFiles, tmp_path: Path) -> None:
    again = generate_models(tmp_path / "again")
    assert _digests(again) == _digests(tiny_models)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tiny.gguf"} <= set(_digests(again))


def test_both_servers_give_the_same_greedy_tokens(
    vllm_server: ModelServer, llama_server: ModelServer
) -> None:
    texts = []
    with httpx.Client(timeout=60, headers=JSON) as http:
        for server in (vllm_server, llama_server):
            body = {"model": server.model, "prompt": "the function network routes", "max_tokens": 24}
            # Greedy, and without llama-cpp-python's default repeat_penalty of 1.1 (vLLM's is 1.0).
            body |= (
                {"temperature": 0, "repeat_penalty": 1.0} if server.kind == "llama" else {"temperature": 0}
            )
            answer = http.post(server.url + "/v1/completions", content=orjson.dumps(body)).json()
            assert answer["usage"]["completion_tokens"] == 24
            texts.append(answer["choices"][0]["text"])
    assert texts[0] == texts[1]
    assert len(texts[0]) > 24
