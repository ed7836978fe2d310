"""Cost of the URL redaction in every log line: the request log line rendered with and without it.

Run:  .venv/bin/python bench/log_line.py [--rounds 7] [--lines 20000]

The same structlog chain as ``configure_logging("info", "json")`` renders the proxy's request line into a
StringIO ``--lines`` times per round, once with ``redact_event`` in the chain and once without; the table
shows the median µs per line over ``--rounds`` rounds, for a line with no URL (every request line) and for
one carrying an RPC URL (the rare line that has one), and the processor timed alone (steadier on a loaded
machine than the difference of two whole renders).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from typing import Any

import structlog

from function_node.logs import _orjson_text, redact_event

REQUEST_LINE: dict[str, Any] = {
    "request_id": "3f2c9a7e5b1d4c08",
    "route": "/v1/chat/completions",
    "method": "POST",
    "caller": "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
    "model": "meta/llama-3.1-8b-instruct",
    "status": 200,
    "latency_ms": 12.3,
}
URL_LINE: dict[str, Any] = {
    **REQUEST_LINE,
    "error": "eth_call failed on https://rpc.example/v3/0123456789abcdef",
}


def logger(redact: bool, out: io.StringIO) -> Any:
    chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        *([redact_event] if redact else []),
        structlog.processors.JSONRenderer(serializer=_orjson_text),
    ]
    return structlog.wrap_logger(
        structlog.PrintLogger(file=out),
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(20),
        cache_logger_on_first_use=True,
    )


def per_line_us(redact: bool, fields: dict[str, Any], lines: int) -> float:
    out = io.StringIO()
    log = logger(redact, out)
    start = time.perf_counter()
    for _ in range(lines):
        log.info("request", **fields)
    elapsed = time.perf_counter() - start
    return elapsed / lines * 1e6


def processor_alone_us(fields: dict[str, Any], lines: int) -> float:
    events = [dict(fields, event="request", level="info") for _ in range(lines)]
    start = time.perf_counter()
    for event in events:
        redact_event(None, "info", event)
    return (time.perf_counter() - start) / lines * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"{'line':<28} {'without µs':>11} {'with µs':>9} {'added µs':>9} {'redact alone':>13}")
    for name, fields in (("request line (no URL)", REQUEST_LINE), ("line with an RPC URL", URL_LINE)):
        without, with_ = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same machine load
            without.append(per_line_us(False, fields, args.lines))
            with_.append(per_line_us(True, fields, args.lines))
        a, b = statistics.median(without), statistics.median(with_)
        alone = statistics.median(processor_alone_us(fields, args.lines) for _ in range(args.rounds))
        print(f"{name:<28} {a:>11.2f} {b:>9.2f} {b - a:>9.2f} {alone:>13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
