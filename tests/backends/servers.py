"""The real model servers of the tier: vLLM (CPU build) and llama.cpp's Python server, on loopback.

Both live in ``.venv-backends`` (scripts/setup-backends.sh), which records in ``.stamps/backends-NAME``
whether each could be installed on this machine; :func:`unavailable` turns that record into the reason
a test skips with. Each server serves the tiny model of :mod:`tests.backends.models`, generated once per
test session, and writes its output to a log file that the tests read (vLLM's abort messages, llama.cpp's
request lines).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from function_node.devnet.process import ManagedProcess, free_port
from tests.backends.models import GGUF_NAME, HF_DIR

__all__ = [
    "BACKENDS_PYTHON",
    "LLAMA_MODEL",
    "VLLM_MODEL",
    "ModelFiles",
    "ModelServer",
    "generate_models",
    "start_llama",
    "start_vllm",
    "unavailable",
]

REPO: Final = Path(__file__).resolve().parents[2]
BACKENDS_VENV: Final = Path(os.environ.get("FXN_BACKENDS_VENV", REPO / ".venv-backends"))
BACKENDS_PYTHON: Final = BACKENDS_VENV / "bin" / "python"
STAMPS: Final = REPO / ".stamps"
VLLM_MODEL: Final = "tiny-vllm"  # the name each server answers with, so a test sees which one answered
LLAMA_MODEL: Final = "tiny-gguf"
CONTEXT: Final = 256  # tokens: the model's own limit, vLLM's --max-model-len
# llama.cpp generates ~8,000 tokens/s here: 256 of them end before a client's hang-up reaches it, so it
# gets a longer context (past the model's own, which llama.cpp allows with a warning) to abort within.
LLAMA_CONTEXT: Final = 2048
_VLLM_START_S: Final = 420.0  # ~25 s on a quiet machine, minutes while other suites load both cores
_LLAMA_START_S: Final = 60.0
_MODELS_S: Final = 180.0


def unavailable(name: str) -> str | None:
    """Why server ``name`` ("vllm" or "llama") cannot run here, or None when it can."""
    stamp = STAMPS / f"backends-{name}"
    if not BACKENDS_PYTHON.exists():
        return f"{BACKENDS_PYTHON} is missing: run `make test-backends` (it runs scripts/setup-backends.sh)"
    if not stamp.exists():
        return f"{name} was never installed into {BACKENDS_VENV}: run `make test-backends` (no {stamp})"
    state = stamp.read_text().strip()
    if state != "ok":
        return (
            f"{name} could not be installed into {BACKENDS_VENV} on this machine ({state}; see {stamp}.log)"
        )
    return None


@dataclass(frozen=True, slots=True)
class ModelFiles:
    hf_dir: Path
    gguf: Path


def generate_models(out: Path) -> ModelFiles:
    """The tiny model in both formats under ``out``, written by the servers' own interpreter."""
    done = subprocess.run(
        [str(BACKENDS_PYTHON), "-m", "tests.backends.models", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=_MODELS_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the tiny model could not be generated:\n{done.stderr[-3000:]}")
    return ModelFiles(out / HF_DIR, out / GGUF_NAME)


@dataclass(frozen=True, slots=True)
class ModelServer:
    """A started server. ``url`` is its root; ``model`` the name it answers with."""

    kind: str
    model: str
    port: int
    process: ManagedProcess
    context: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self) -> None:
        self.process.stop(15)


def _wait_ready(process: ManagedProcess, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=5) as resp,
        ):
            if resp.status == 200:
                return
        if not process.running:
            break
        time.sleep(0.2)
    process.stop(5)
    raise RuntimeError(f"{process.name} did not become ready at {url}; log:\n{process.tail(40)}")


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(extra)
    return env


def start_vllm(models: ModelFiles, log_dir: Path) -> ModelServer:
    """``python -m vllm.entrypoints.openai.api_server`` (its ``vllm`` script fails on a package-metadata
    lookup here), eager mode (starts in ~25 s), float32, the model's own context of 256 tokens."""
    port = free_port()
    argv = [
        str(BACKENDS_PYTHON),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(models.hf_dir),
        "--served-model-name",
        VLLM_MODEL,
        "--dtype",
        "float32",
        "--max-model-len",
        str(CONTEXT),
        "--enforce-eager",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # 1 GiB of KV cache is plenty for a 256-token model (vLLM's default would take 4 GiB of the 24).
    env = _environment(VLLM_CPU_KVCACHE_SPACE="1", VLLM_NO_USAGE_STATS="1", HF_HUB_OFFLINE="1")
    process = ManagedProcess("vllm", argv, log_dir / "vllm.log", env=env, cwd=log_dir).start()
    _wait_ready(process, f"http://127.0.0.1:{port}/health", _VLLM_START_S)
    return ModelServer("vllm", VLLM_MODEL, port, process, CONTEXT)


def start_llama(models: ModelFiles, log_dir: Path, *, name: str = "llama") -> ModelServer:
    """``python -m llama_cpp.server`` with ChatML and embeddings on (mean-pooled: the GGUF says so), a
    context of :data:`LLAMA_CONTEXT` tokens, one thread, requests queued rather than interrupted."""
    port = free_port()
    argv = [
        str(BACKENDS_PYTHON),
        "-m",
        "llama_cpp.server",
        "--model",
        str(models.gguf),
        "--model_alias",
        LLAMA_MODEL,
        "--chat_format",
        "chatml",
        "--n_ctx",
        str(LLAMA_CONTEXT),
        # Its default interrupts the running request when another arrives (cut streams under
        # concurrency); off, requests queue.
        "--interrupt_requests",
        "false",
        "--n_threads",
        "1",
        "--embedding",
        "true",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = ManagedProcess(name, argv, log_dir / f"{name}.log", env=_environment(), cwd=log_dir).start()
    _wait_ready(process, f"http://127.0.0.1:{port}/v1/models", _LLAMA_START_S)
    return ModelServer("llama", LLAMA_MODEL, port, process, LLAMA_CONTEXT)


if __name__ == "__main__":  # pragma: no cover - a manual aid: serve both until Ctrl-C
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fxn-tiny")
    files = generate_models(out)
    servers = [start_vllm(files, out), start_llama(files, out)]
    print(*(f"{s.kind}: {s.url}" for s in servers), sep="\n")
    try:
        while True:
            time.sleep(3600)
    finally:
        for server in servers:
            server.stop()
