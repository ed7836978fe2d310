"""What the node's performance work relies on: lazy numpy, the GC set-up, the orjson log renderer."""

from __future__ import annotations

import gc
import io
import logging
import subprocess
import sys
from collections.abc import Iterator

import orjson
import pytest
import structlog

from function_node.logs import configure_logging, get_logger
from function_node.node import server

# Build everything `fxn start` builds for the challenges (the node app and the challenge registry),
# then report which heavy numeric modules the process holds.
_STARTUP_IMPORTS = """
import sys
from function_node.config.settings import Settings
from function_node.challenges.registry import default_challenges
import function_node.node.app, function_node.node.server, function_node.node.challenge
default_challenges(Settings())
print(",".join(name for name in ("numpy", "torch") if name in sys.modules))
"""

_FIRST_CHALLENGE_IMPORTS = """
import asyncio, sys
from function_node.challenges.matmul.challenge import MatmulService
from function_node.config.settings import Settings
service = MatmulService(Settings().challenge.matmul)
backend = asyncio.run(service.choose("cpu", 8))
print(type(backend).__name__, "numpy" in sys.modules)
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_node_start_does_not_import_numpy() -> None:
    assert _run(_STARTUP_IMPORTS) == ""


def test_first_cpu_matrix_challenge_builds_the_numpy_backend() -> None:
    assert _run(_FIRST_CHALLENGE_IMPORTS) == "NumpyBackend True"


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    _, gen1, gen2 = gc.get_threshold()
    server.tune_gc()
    assert gc.get_threshold() == (server._GC_GEN0_THRESHOLD, gen1, gen2)
    assert gc.get_freeze_count() > 0


def test_json_log_lines_are_rendered_by_orjson_with_context_and_fallback() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("info", "json", stream=out)
    try:
        structlog.contextvars.bind_contextvars(request_id="abc123")
        get_logger("fxn.test").info("request", status=200, latency_ms=1.5, odd={1: object})
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level
    line = orjson.loads(out.getvalue().splitlines()[-1])
    assert line["event"] == "request"
    assert (line["status"], line["latency_ms"], line["request_id"]) == (200, 1.5, "abc123")
    assert line["level"] == "info"
    assert line["odd"] == {"1": str(object)}  # non-str keys and unknown values fall back to str()
