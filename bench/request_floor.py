"""What each per-request feature of the node costs, in instructions per chat request: the node's source is
copied, one feature is cut out of the copy, and the copy is counted by ``bench/request_instructions.py``
against the full node and the minimal correct node (``aiohttp_auth``).

    .venv/bin/python bench/request_floor.py [--requests 400] [--only NAME ...] [--list]

The cuts are for measuring only: each one removes a behaviour an issue requires (the request log line,
the metrics, the usage ledger and limits, the header relay, the trace spans), so the difference to the full
node is that behaviour's price, and "all cuts" is what is left when every priced feature is gone: the
node's bookkeeping that no feature names (middleware layers, request state, error handling). A cut is a
textual replacement that must match exactly once; when the source moves on, the script says which one no
longer applies instead of counting something else.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent))
from request_instructions import ROOT, count  # a sibling bench script

Cut = tuple[str, str, str]  # file under src/function_node, text, replacement
_4, _8, _12, _16 = (" " * n for n in (4, 8, 12, 16))

CUTS: Final[dict[str, list[Cut]]] = {
    "request log line": [
        ("node/observe.py", _16 + "request_line.info(\n", _16 + "(lambda *a, **k: None)(\n"),
    ],
    "request metrics": [
        ("node/observe.py", "                record(route, request.method, status, elapsed)\n", ""),
    ],
    "backend metrics": [
        ("node/backends.py", "        best.in_flight_metric.inc()\n", ""),
        ("node/backends.py", "        backend.in_flight_metric.dec()\n", ""),
        (
            "node/relay.py",
            _4 + "backend.ttfb_metric.observe(time.perf_counter() - started)\n" + _4 + "parts",
            _4 + "parts",
        ),
        ("node/relay.py", "    backend.latency_metric.observe(time.perf_counter() - started)\n", ""),
    ],
    "usage ledger record": [
        (
            "node/metering.py",
            "        ctx.usage.record(caller, meter.model, outcome, usage, meter.upstream_seconds)\n",
            "",
        ),
    ],
    "metering middleware (ledger, limits, usage parse)": [
        ("node/app.py", "auth_middleware, metering_middleware]", "auth_middleware]"),
    ],
    "trace spans (tracing off)": [
        (
            "node/auth.py",
            '        with ctx.tracing.span("auth"):\n            caller',
            "        if True:\n            caller",
        ),
        ("node/auth.py", '            with ctx.tracing.span("auth.nonce"):', "            if True:"),
        (
            "node/relay.py",
            _12 + 'with tracing.span("backend.choose", **{"fxn.model": pool.name}):',
            _12 + "if True:",
        ),
        (
            "node/relay.py",
            _12 + 'with tracing.span("upstream", **{"fxn.backend": backend.name}):',
            _12 + "if True:",
        ),
    ],
    "header relay (only Content-Type, as aiohttp_auth)": [
        (
            "node/relay.py",
            "                headers = request_headers(request.headers, backend.headers, traced=traced)\n",
            '                headers = [("Content-Type", "application/json")]\n',
        ),
        (
            "node/relay.py",
            "        headers=response_headers(resp.headers),\n    )",
            _8 + 'headers=[("Content-Type", resp.headers.get("Content-Type", "application/json"))],\n    )',
        ),
    ],
}
ALL: Final = "all cuts"


def apply(src: Path, cuts: list[Cut]) -> None:
    for relative, text, replacement in cuts:
        path = src / "function_node" / relative
        code = path.read_text()
        found = code.count(text)
        if found != 1:
            raise SystemExit(f"cut no longer applies: {relative} has {found} copies of {text.strip()!r}")
        path.write_text(code.replace(text, replacement))


def copy_with(cuts: list[Cut], work: Path, name: str) -> Path:
    src = work / name.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    apply(src, cuts)
    return src


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--only", action="append", default=[], help="a cut's name (repeatable)")
    parser.add_argument("--list", action="store_true", help="print the cuts' names and stop")
    parser.add_argument("--anchors", type=Path, default=ROOT.parent / "shared" / "bench-anchors")
    args = parser.parse_args()
    if args.list:
        print("\n".join([*CUTS, ALL]))
        return 0
    names = args.only or [*CUTS, ALL]
    unknown = [name for name in names if name not in CUTS and name != ALL]
    if unknown:
        parser.error(f"unknown cut(s) {unknown}; see --list")
    n: int = args.requests

    def per_request(target: str, src: Path | None) -> float:
        large: int = count(target, 2 * n, args.anchors, src)
        small: int = count(target, n, args.anchors, src)
        return (large - small) / n

    with tempfile.TemporaryDirectory(prefix="fxn-floor-") as tmp:
        work = Path(tmp)
        minimal = per_request("aiohttp_auth", None)
        full = per_request("node", copy_with([], work, "full"))
        print(f"{'aiohttp_auth':<52} {minimal:12,.0f}")
        print(f"{'node':<52} {full:12,.0f}   node - aiohttp_auth {full - minimal:10,.0f}", flush=True)
        for name in names:
            cuts = [cut for group in CUTS.values() for cut in group] if name == ALL else CUTS[name]
            cut = per_request("node", copy_with(cuts, work, name))
            print(f"{'node without ' + name:<52} {cut:12,.0f}   saves {full - cut:10,.0f}", flush=True)
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
