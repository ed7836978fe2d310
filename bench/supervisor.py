"""Worker supervision: the node's own supervisor against gunicorn's arbiter with aiohttp's worker.

Run: .venv/bin/python bench/supervisor.py [--runs 3] [--workers 2]   (gunicorn: pip install gunicorn)

Both run the same app (create_app) with N workers, the Redis nonce store and a dev backend that
streams a token every 0.1 s. For each: start -> /health 200; memory (PSS of every process, after 200
requests); kill -9 of one worker -> its replacement ready; SIGHUP after backend.yaml gains a model ->
the first 200 for it, and whether the workers were replaced; a stream in flight across SIGHUP and
across SIGTERM (does it finish?) and the exit code; then, started again, SIGHUP with a broken
backend.yaml: does it still serve? gunicorn runs ``--preload`` (key read once in the
arbiter, inherited by fork) with bench/_gunicorn_node.py.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from function_node.devnet.process import ManagedProcess, free_port
from function_node.devnet.redis_server import RedisServer
from function_node.keys import write_plaintext
from function_node.signing import LocalSigner

NODE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil account 2
BIN = Path(sys.executable).parent
STREAM_TOKENS = 20


def chat(model: str, **extra: object) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **extra}
    return orjson.dumps(body)


def wait(predicate: Callable[[], bool], timeout: float = 60.0) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("condition not met")
        time.sleep(0.005)
    return time.perf_counter() - start


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024


class Node:
    """One node (ours or gunicorn) in a home of its own."""

    def __init__(self, kind: str, root: Path, workers: int, redis_url: str, backend_url: str) -> None:
        self.kind, self.workers = kind, workers
        self.home = root / kind
        self.home.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "node": {"listenAddress": "127.0.0.1", "listenPort": self.port, "drainTimeout": "10s"},
            "logger": {"format": "json"},
            "registry": {"bypassAuth": True},
            "nonceCache": {"backend": "redis", "redisUrl": redis_url},
        }
        (self.home / "config.yaml").write_text(yaml.safe_dump(config))
        self.backend_url = backend_url
        self.write_models(["dev"])
        write_plaintext(self.home / "nodekey.json", LocalSigner.from_hex(NODE_KEY))
        if kind == "fxn":
            argv = [str(BIN / "fxn"), "--home", str(self.home), "start", "--workers", str(workers)]
        else:
            argv = [
                str(BIN / "gunicorn"),
                "--preload",
                "-w",
                str(workers),
                "-k",
                "aiohttp.GunicornUVLoopWebWorker",
            ]
            argv += [
                "-b",
                f"127.0.0.1:{self.port}",
                "--graceful-timeout",
                "10",
                "--chdir",
                str(Path(__file__).parent),
            ]
            argv += ["_gunicorn_node:app"]
        env = {**os.environ, "FXN_HOME": str(self.home)}
        self.process = ManagedProcess(kind, argv, root / f"{kind}.log", env=env)

    def write_models(self, names: list[str]) -> None:
        models = [
            {"name": n, "backends": [{"url": self.backend_url}], "healthCheck": {"enabled": False}}
            for n in names
        ]
        (self.home / "backend.yaml").write_text(yaml.safe_dump({"models": models}))

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    def ready_lines(self) -> int:
        event = "listening" if self.kind == "fxn" else "worker ready"
        count = 0
        for line in self.process.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                doc = orjson.loads(line)
                count += isinstance(doc, dict) and doc.get("event") == event
        return count

    def ok(self, model: str = "dev") -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return (
                httpx.post(self.url + "/v1/chat/completions", content=chat(model), timeout=5).status_code
                == 200
            )
        return False


def stream_finishes(node: Node, action: Callable[[], None]) -> bool:
    """Start a slow stream, run ``action`` once it is flowing, and say whether it ended with [DONE]."""
    received: list[bytes] = []
    flowing = threading.Event()

    def read() -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=30) as http:
            body = chat("dev", stream=True, max_tokens=STREAM_TOKENS)
            with http.stream("POST", node.url + "/v1/chat/completions", content=body) as resp:
                for chunk in resp.iter_raw():
                    received.append(chunk)
                    flowing.set()

    reader = threading.Thread(target=read)
    reader.start()
    flowing.wait(10)
    action()
    reader.join(40)
    return b"\n\ndata: [DONE]\n\n" in b"".join(received)  # the node's signature line may follow


def measure(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    start = time.perf_counter()
    node.process.start()
    wait(lambda: node.ok() and node.ready_lines() >= node.workers)
    out["start_s"] = time.perf_counter() - start
    for _ in range(200):
        node.ok()
    tree = [node.pid, *children(node.pid)]
    out["pss_mb"] = pss_mb(tree)
    # kill -9 one worker: the time until its replacement is ready (its ready line), serving meanwhile.
    workers_before = children(node.pid)
    ready = node.ready_lines()
    os.kill(workers_before[0], signal.SIGKILL)
    out["restart_s"] = wait(lambda: node.ready_lines() > ready)
    wait(lambda: len(children(node.pid)) == node.workers)
    # SIGHUP after backend.yaml gained a model: until the first 200 for it; were the workers replaced?
    pids = sorted(children(node.pid))
    node.write_models(["dev", "second"])
    os.kill(node.pid, signal.SIGHUP)
    out["reload_s"] = wait(lambda: node.ok("second"))
    time.sleep(1.5)
    out["hup_replaces_workers"] = sorted(children(node.pid)) != pids
    out["stream_survives_hup"] = stream_finishes(node, lambda: os.kill(node.pid, signal.SIGHUP))
    time.sleep(1.5)
    out["stream_survives_term"] = stream_finishes(node, lambda: os.kill(node.pid, signal.SIGTERM))
    assert node.process.process is not None
    out["exit_code"] = node.process.process.wait(30)
    node.process.stop()
    # Started again: SIGHUP with a broken backend.yaml (SPEC §4: refused, the old one stays in force).
    node.write_models(["dev"])
    before = node.ready_lines()
    node.process.start()
    wait(lambda: node.ok() and node.ready_lines() >= before + node.workers)
    (node.home / "backend.yaml").write_text("models: [\n")
    os.kill(node.pid, signal.SIGHUP)
    time.sleep(5)
    out["serves_after_broken_hup"] = node.process.running and node.ok()
    node.process.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    kinds = ["fxn"] + (["gunicorn"] if importlib.util.find_spec("gunicorn") else [])
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as redis:
        root = Path(tmp)
        port = free_port()
        backend_argv = [sys.executable, "-m", "function_node.devnet.dev_backend", "--port", str(port)]
        backend_argv += ["--model", "dev", "--model", "second", "--token-delay", "0.1"]
        with ManagedProcess("backend", backend_argv, root / "backend.log", port=port):
            for run in range(args.runs):
                for kind in kinds:  # interleaved, so both see the same machine load
                    node = Node(kind, root / f"run{run}", args.workers, redis.url, f"http://127.0.0.1:{port}")
                    try:
                        results[kind].append(measure(node))
                    finally:
                        node.process.stop()
    print(f"\n{args.workers} workers, {args.runs} runs each, interleaved; medians (min-max)\n")
    print(f"{'measurement':<36}" + "".join(f"{k:>26}" for k in kinds))
    for key, unit in (("start_s", "s"), ("pss_mb", "MB"), ("restart_s", "s"), ("reload_s", "s")):
        cells = []
        for kind in kinds:
            values = [r[key] for r in results[kind]]
            cells.append(f"{statistics.median(values):.2f} {unit} ({min(values):.2f}-{max(values):.2f})")
        print(f"{key:<36}" + "".join(f"{c:>26}" for c in cells))
    flags = ("hup_replaces_workers", "stream_survives_hup", "stream_survives_term", "exit_code")
    for key in (*flags, "serves_after_broken_hup"):
        print(f"{key:<36}" + "".join(f"{sorted({r[key] for r in results[k]})!s:>26}" for k in kinds))
    print(f"\ncommand: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
