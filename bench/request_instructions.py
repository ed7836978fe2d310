"""Instructions per chat request: the node against the minimal correct node (``aiohttp_auth``), counted by
valgrind (callgrind), so the figure does not depend on what else the shared machine is doing.

    .venv/bin/python bench/request_instructions.py [--requests 400] [--target node|aiohttp_auth|both]
        [--src DIR] [--anchors ../shared/bench-anchors]

One process serves everything on loopback (the proxy under test, a backend answering the yardstick's
fixed chat body, and a client sending pre-signed requests 8 at a time), so both targets meet the same
client and backend. Each target is run twice under ``valgrind --tool=callgrind``, with N and 2N
requests; the difference divided by N is the instruction count of one request's whole exchange (the
client's and the backend's share included, which is the same for both targets), and the node's figure
minus aiohttp_auth's is the node's own overhead. A count is not a time (a syscall or a cache miss costs
more than its instructions), but it moves only when the code does: use it to compare changes, and the
yardstick (``make bench-anchors``) for times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
GATEWAY_KEY: Final = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
NODE_KEY: Final = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
CONCURRENCY: Final = 8


async def serve(app: Any, port: int) -> Any:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def child(target: str, requests: int, anchors: Path) -> None:
    """The measured process: backend, proxy and client on one loop."""
    import orjson
    from aiohttp import ClientSession, web

    from function_node.client import FxnSigner
    from function_node.devnet.process import free_port
    from function_node.signing import LocalSigner

    sys.path.insert(0, str(anchors))
    import payloads  # type: ignore[import-not-found]  # the yardstick's own module

    body = payloads.chat_request().encode()
    answer = payloads.chat_response().encode()

    async def backend_handler(_: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json")

    async def models_handler(_: web.Request) -> web.Response:
        return web.Response(body=payloads.models_response().encode(), content_type="application/json")

    backend = web.Application()
    backend.router.add_post("/v1/chat/completions", backend_handler)
    backend.router.add_get("/v1/models", models_handler)  # the node's health check
    backend_port, proxy_port = free_port(), free_port()
    runners = [await serve(backend, backend_port)]
    base = f"http://127.0.0.1:{backend_port}"
    if target == "aiohttp_auth":
        import ref_proxy_aiohttp_auth  # type: ignore[import-not-found]

        app = ref_proxy_aiohttp_auth.build_app(
            {"bench-chat": base}, [LocalSigner.from_hex(GATEWAY_KEY).address], 300.0, 600.0, NODE_KEY
        )
    else:
        from function_node.config.backends import BackendConfig
        from function_node.config.settings import Settings
        from function_node.logs import configure_logging
        from function_node.node.app import create_app

        home = Path(tempfile.mkdtemp(prefix="fxn-instr-"))
        log = (home / "node.log").open("w")
        configure_logging("info", "json", stream=log)
        settings = Settings.model_validate(
            {"registry": {"static": {"gateways": [LocalSigner.from_hex(GATEWAY_KEY).address]}}}
        )
        config = BackendConfig.model_validate(
            {"models": [{"name": "bench-chat", "backends": [{"url": base}]}]}
        )
        app = create_app(settings, config, LocalSigner.from_hex(NODE_KEY), home)
    runners.append(await serve(app, proxy_port))
    signer = FxnSigner(GATEWAY_KEY)
    headers = [
        {**signer.headers("POST", "/v1/chat/completions", body), "Content-Type": "application/json"}
        for _ in range(requests)
    ]
    url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
    async with ClientSession() as session:

        async def worker(i: int) -> None:
            for h in headers[i::CONCURRENCY]:
                async with session.post(url, data=body, headers=h) as resp:
                    data = await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"HTTP {resp.status}: {data[:200]!r}")

        await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    del orjson
    for runner in reversed(runners):
        await runner.cleanup()


def count(target: str, requests: int, anchors: Path, src: Path | None) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")  # the same hashes, so the same dict layouts, every run
    if src is not None:
        env["PYTHONPATH"] = str(src)
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    argv += ["--child", target, "--requests", str(requests), "--anchors", str(anchors)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{target} under valgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--target", choices=["node", "aiohttp_auth", "both"], default="both")
    parser.add_argument("--src", type=Path, default=None, help="run the node from this copy of src/")
    parser.add_argument("--anchors", type=Path, default=ROOT.parent / "shared" / "bench-anchors")
    parser.add_argument("--child", default="")
    args = parser.parse_args()
    if args.child:
        import uvloop

        uvloop.run(child(args.child, args.requests, args.anchors.resolve()))
        return 0
    targets = ["aiohttp_auth", "node"] if args.target == "both" else [args.target]
    per_request: dict[str, float] = {}
    for target in targets:
        n = args.requests
        small, large = count(target, n, args.anchors, args.src), count(target, 2 * n, args.anchors, args.src)
        per_request[target] = (large - small) / n
        print(f"{target:<13} {per_request[target]:12,.0f} instructions per request", flush=True)
    if len(per_request) == 2:
        extra = per_request["node"] - per_request["aiohttp_auth"]
        share = extra / per_request["node"]
        print(f"node - aiohttp_auth: {extra:,.0f} instructions per request ({share:.0%} of node)")
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
