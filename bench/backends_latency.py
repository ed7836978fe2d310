"""The node's added latency in front of real model servers (vLLM CPU, llama.cpp), streamed, in one run.

    .venv/bin/python bench/backends_latency.py [--rounds 5] [--tokens 32]

Needs ``.venv-backends`` (``make setup``). Generates the tests' tiny model (tests/backends/models.py),
starts vLLM and llama.cpp serving it and a real ``fxn start`` node in front of both, on free loopback
ports, then sends the same streamed completion (greedy, ``--tokens`` tokens) to each server directly and
through the node, at 1 and at 16 concurrent, the cases interleaved round by round. Node requests carry
v2 signatures made before the timed loop. TTFT is the time to the first body chunk, total the time to
``data: [DONE]``; the table gives medians over every request of the case and the node's added median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tier's server starters, in tests/

import aiohttp
import orjson
from tests.backends.servers import ModelServer, generate_models, start_llama, start_vllm, unavailable
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import NodeProcess, model_doc

from function_node.client import FxnSigner
from function_node.signing import LocalSigner

PATH = "/v1/completions"
CONCURRENCY = (1, 16)
Sample = tuple[float, float]  # (ttft, total) in seconds


def body_for(model: str, tokens: int) -> bytes:
    return orjson.dumps(
        {
            "model": model,
            "prompt": "the function network routes",
            "max_tokens": tokens,
            "temperature": 0,
            "stream": True,
        }
    )


async def one(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> Sample:
    started = time.perf_counter()
    async with session.post(url + PATH, data=body, headers=headers) as resp:
        first = await resp.content.readany()
        ttft = time.perf_counter() - started
        rest = await resp.read()
        total = time.perf_counter() - started
    if resp.status != 200 or b"data: [DONE]" not in first + rest:
        raise RuntimeError(f"{url}: {resp.status} {(first + rest)[:200]!r}")
    return ttft, total


async def wave(url: str, body: bytes, headers: list[dict[str, str]]) -> list[Sample]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        return await asyncio.gather(*(one(session, url, body, h) for h in headers))


def run(
    servers: list[ModelServer], node: NodeProcess, rounds: int, tokens: int
) -> dict[tuple[str, int, str], list[Sample]]:
    signer = FxnSigner(LocalSigner.from_hex(DEV_KEYS[0]))
    samples: dict[tuple[str, int, str], list[Sample]] = {}
    plain = {"Content-Type": "application/json"}
    for server in servers:
        body = body_for(server.model, tokens)
        for concurrency in CONCURRENCY:
            asyncio.run(wave(server.url, body, [plain] * concurrency))  # warm the server's caches
            for _ in range(rounds):
                signed = [
                    {**signer.headers("POST", PATH, body, node.signer.address), **plain}
                    for _ in range(concurrency)
                ]
                for case, url, headers in (
                    ("direct", server.url, [plain] * concurrency),
                    ("node", node.url, signed),
                ):
                    got = asyncio.run(wave(url, body, headers))
                    samples.setdefault((server.kind, concurrency, case), []).extend(got)
    return samples


def report(samples: dict[tuple[str, int, str], list[Sample]]) -> None:
    print("| server | concurrent | TTFT direct | TTFT node | added | total direct | total node | added |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    kinds = sorted({k for k, _, _ in samples}, reverse=True)
    for kind in kinds:
        for concurrency in CONCURRENCY:
            d = samples[(kind, concurrency, "direct")]
            n = samples[(kind, concurrency, "node")]
            ttft = [statistics.median(s[0] for s in x) * 1000 for x in (d, n)]
            total = [statistics.median(s[1] for s in x) * 1000 for x in (d, n)]
            cells = [f"{ttft[0]:.1f} ms", f"{ttft[1]:.1f} ms", f"{ttft[1] - ttft[0]:+.1f} ms"]
            cells += [f"{total[0]:.1f} ms", f"{total[1]:.1f} ms", f"{total[1] - total[0]:+.1f} ms"]
            print(f"| {kind} | {concurrency} | " + " | ".join(cells) + " |")
    print(f"\n{len(next(iter(samples.values())))} requests per case at 1 concurrent.")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args(argv)
    missing = [f"{name}: {why}" for name in ("models", "vllm", "llama") if (why := unavailable(name))]
    if missing:
        sys.exit("cannot run: " + "; ".join(missing))
    with tempfile.TemporaryDirectory(prefix="fxn-bench-backends-") as tmp:
        root = Path(tmp)
        files = generate_models(root / "model")
        servers: list[ModelServer] = []
        node: NodeProcess | None = None
        try:
            servers = [start_vllm(files, root), start_llama(files, root)]
            timeouts = {"connect": "2s", "firstByte": "120s", "total": "300s"}
            models = [model_doc(s.model, [s.url], timeouts=timeouts) for s in servers]
            gateway = LocalSigner.from_hex(DEV_KEYS[0])
            node = NodeProcess(
                root / "node", models=models, gateways=[gateway.address], schedulers=[]
            ).start()
            report(run(servers, node, args.rounds, args.tokens))
        finally:
            if node is not None:
                node.stop(10)
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
