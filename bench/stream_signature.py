"""What the trust binding (issue 9) costs: the streamed response signature, and the prover-bound matrix keys.

1. Per stream, on the node: the running sha256 over a typical 20-event chat stream (what the relay feeds
   ``StreamSigner.update`` chunk by chunk) plus the one signature of ``StreamSigner.line()``. Goal: <= 50 µs
   of CPU per stream. The caller's check (``StreamCheck``: the same hashing plus one recovery) is shown too.
2. The bound generator: one ``MatrixKeys.bind`` (sha256 of domain || seed || address) per challenge, against
   the challenge computation it keys (``NumpyBackend.compute``: generate, GEMM, digests) at n = 256 and
   1024. Goal: nothing measurable. Bound and precomputed keys are timed interleaved in the same rounds.

Run: .venv/bin/python bench/stream_signature.py [--streams 2000] [--runs 9] [--sizes 256,1024] [--repeats 9]
Prints medians (and min/max over the runs) and the command that made them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import orjson

from function_node.challenges.matmul.compute import NumpyBackend
from function_node.challenges.matmul.generate import MatrixKeys, Seed
from function_node.protocol import AnswerSigner, ExpectedAnswer
from function_node.signing import LocalSigner, body_sha256

NODE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # public dev key (anvil #2)
CALLER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil #0
REQUEST = b'{"model":"llama-3-8b","messages":[{"role":"user","content":"Hello!"}],"stream":true}'
EVENTS = 20  # a short answer: role chunk, 18 tokens, finish chunk (then [DONE])


def chat_stream() -> list[bytes]:
    """The chunks of a typical streamed chat answer, one SSE event per chunk, as vLLM sends them."""
    base = {
        "id": "chatcmpl-0123456789abcdef01234567",
        "object": "chat.completion.chunk",
        "created": 1700000000,
    }
    base["model"] = "meta-llama/Llama-3.1-8B-Instruct"
    deltas: list[dict[str, object]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": f" word{i}"} for i in range(EVENTS - 2)]
    chunks = [
        b"data: "
        + orjson.dumps(
            {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
        )
        + b"\n\n"
        for d in deltas
    ]
    finish = {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    chunks.append(b"data: " + orjson.dumps(finish) + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def per_op_us(fn: Callable[[], object], batch: int, runs: int) -> list[float]:
    fn()  # warm caches and lazy imports outside the timed runs
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return samples


def stream_costs(streams: int, runs: int) -> float:
    node = LocalSigner.from_hex(NODE_KEY)
    answers = AnswerSigner(node, CALLER, body_sha256(REQUEST), "1f2e3d4c5b6a7980")
    expected = ExpectedAnswer.for_request(node.address, CALLER, REQUEST, "1f2e3d4c5b6a7980")
    chunks = chat_stream()
    wire = b"".join(chunks)

    def sign_stream() -> bytes:
        signer = answers.stream(200)
        for chunk in chunks:
            signer.update(chunk)
        return signer.line()

    def hash_only() -> None:
        signer = answers.stream(200)
        for chunk in chunks:
            signer.update(chunk)

    line = sign_stream()

    def check_stream() -> str | None:
        check = expected.stream(200)
        for chunk in [*chunks, line]:
            check.update(chunk)
        return check.problem()

    assert check_stream() is None, "the benchmark's stream does not verify"
    cases: list[tuple[str, Callable[[], object], int]] = [
        (f"node: hash {len(chunks)} chunks ({len(wire)} B) + sign", sign_stream, streams),
        ("  of which: the hash updates alone", hash_only, streams * 5),
        ("  of which: the one signature", lambda: answers.sign(200, body_sha256(wire)), streams),
        ("caller: StreamCheck (hash + recover)", check_stream, streams),
    ]
    medians: dict[str, float] = {}
    print(f"{'per stream':<44} {'median µs':>10} {'min':>8} {'max':>8}")
    for name, fn, batch in cases:
        samples = per_op_us(fn, batch, runs)
        medians[name] = statistics.median(samples)
        print(f"{name:<44} {medians[name]:>10.1f} {min(samples):>8.1f} {max(samples):>8.1f}")
    return medians[cases[0][0]]


def bind_costs(sizes: list[int], repeats: int, runs: int) -> None:
    seed = Seed(bytes(range(32)))
    prover = LocalSigner.from_hex(NODE_KEY).address
    bind = statistics.median(per_op_us(lambda: MatrixKeys.bind(seed, prover), 20_000, runs))
    print(f"\nMatrixKeys.bind (one per challenge): median {bind:.2f} µs")
    print(f"{'n':>6} {'compute ms (bound now)':>23} {'compute ms (keys given)':>24} {'bind / compute':>15}")
    keys = MatrixKeys.bind(seed, prover)
    with ThreadPoolExecutor(2) as pool:
        backend = NumpyBackend(executor=pool)
        for n in sizes:
            backend.compute(n, keys)  # warm up
            bound: list[float] = []
            given: list[float] = []
            for i in range(repeats):  # interleaved, alternating which goes first, so load hits both alike
                for variant in ("bound", "given") if i % 2 == 0 else ("given", "bound"):
                    start = time.perf_counter()
                    backend.compute(n, MatrixKeys.bind(seed, prover) if variant == "bound" else keys)
                    (bound if variant == "bound" else given).append((time.perf_counter() - start) * 1e3)
            compute = statistics.median(given)
            print(
                f"{n:>6} {statistics.median(bound):>23.2f} {compute:>24.2f} "
                f"{bind / (compute * 1e3) * 100:>14.4f}%"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=2000, help="streams per timed run")
    parser.add_argument("--runs", type=int, default=9, help="timed runs; the median is reported")
    parser.add_argument("--sizes", default="256,1024", help="matrix sizes for the bound-generator comparison")
    parser.add_argument("--repeats", type=int, default=9, help="challenge computations per size and variant")
    args = parser.parse_args()
    print(f"command: {' '.join(['.venv/bin/python', *sys.argv])}")
    signed = stream_costs(args.streams, args.runs)
    bind_costs([int(s) for s in args.sizes.split(",")], args.repeats, args.runs)
    verdict = "met" if signed <= 50 else "NOT met"
    print(f"\ngoal streamed signature <= 50 µs CPU per stream: {verdict} ({signed:.1f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
