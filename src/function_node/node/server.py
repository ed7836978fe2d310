"""Run the node: uvloop, the listener(s), signals, and ``--workers N``.

* SIGHUP re-reads backend.yaml; a broken file is refused, logged, and the one in force is kept. One
  that arrived while the node was starting is applied once it serves (:mod:`function_node.node.signals`).
* SIGTERM / SIGINT stop accepting connections, let in-flight requests and streams finish for up to
  ``node.drainTimeout``, close every resource, and exit 0.
* ``workers > 1`` starts that many worker processes bound to the same port with SO_REUSEPORT (the
  kernel spreads connections over them), kept running by :class:`function_node.node.supervisor.Supervisor`:
  it decrypts the key once and hands it to each worker on its stdin, never in argv or the environment,
  restarts a worker that dies, and passes SIGHUP and SIGTERM on.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from function_node.config.backends import BackendConfig
from function_node.config.settings import Settings
from function_node.errors import ConfigError
from function_node.logs import get_logger
from function_node.metrics import NodeMetrics
from function_node.node.signals import early_hangup, install_early_hangup, unblock_inherited_signals
from function_node.signing import LocalSigner

__all__ = ["reload_backends", "run_node", "serve", "tune_gc"]

_BACKLOG: Final = 2048
_READY_POLL_S: Final = 0.5
# The cyclic GC's first-generation threshold while serving (CPython's default is 700). Each request in
# flight holds a few hundred tracked objects, so with 64 requests in flight the default ran a young
# collection every ~15 requests (~30 µs per request, bench/proxy.py); most of those objects die by
# reference counting anyway, and at 7,000 the collector rarely runs on the request path.
_GC_GEN0_THRESHOLD: Final = 7000


def tune_gc() -> None:
    """Freeze what start-up allocated and make young collections rarer (see _GC_GEN0_THRESHOLD).

    Everything alive once the app has started (modules, config, pools: ~100,000 tracked objects) lives
    as long as the process; without the freeze every full collection walked all of it again, a pause
    of ~100 ms under load every few thousand requests.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(_GC_GEN0_THRESHOLD, gen1, gen2)


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def reload_backends(app: web.Application, path: Path) -> bool:
    """Serve the backend.yaml at ``path`` from now on; False (logged, old kept) if it is refused."""
    from function_node.config.loader import load_backends_file
    from function_node.node.backends import BACKENDS

    log = get_logger("fxn.node")
    try:
        config = load_backends_file(path)
        app[BACKENDS].replace(config)
    except ConfigError as exc:
        log.error(
            "backend.yaml refused on reload; the previous one stays in force",
            path=str(path),
            problems=[str(p) for p in exc.problems],
        )
        return False
    log.info("backend.yaml reloaded", path=str(path), models=[m.name for m in config.models])
    return True


def _split_host_port(address: str) -> tuple[str, int]:
    # Validated with config.yaml (config check and fxn start refuse a bad one); this only splits it.
    from function_node.config.settings import split_host_port

    return split_host_port(address)


async def serve(
    settings: Settings, backends: BackendConfig, signer: LocalSigner, home: Path, *, reuse_port: bool = False
) -> None:
    """Serve until SIGTERM/SIGINT, then drain and return."""
    from function_node.config.home import backends_path
    from function_node.node.app import create_app
    from function_node.node.health import metrics_app

    log = get_logger("fxn.node")
    metrics = NodeMetrics()
    app = create_app(settings, backends, signer, home, metrics=metrics)
    runners: list[web.AppRunner] = []
    runners_tasks: set[asyncio.Task[None]] = set()
    runner = web.AppRunner(
        app,
        access_log=None,  # the observe middleware writes one line per request
        handler_cancellation=True,  # a client that leaves cancels its handler, and so the upstream call
        shutdown_timeout=settings.node.drain_timeout,
        handle_signals=False,
    )
    await runner.setup()
    runners.append(runner)
    tune_gc()
    try:
        host, port = settings.node.listen_address, settings.node.listen_port
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=_BACKLOG).start()
        if settings.metrics.listen_address:
            m_host, m_port = _split_host_port(settings.metrics.listen_address)
            m_runner = web.AppRunner(metrics_app(metrics), access_log=None, handle_signals=False)
            await m_runner.setup()
            runners.append(m_runner)
            await web.TCPSite(m_runner, m_host, m_port, reuse_port=reuse_port or None).start()
        log.info(
            "listening", url=f"http://{host}:{port}", metrics=settings.metrics.listen_address or "/metrics"
        )
        watcher = asyncio.create_task(announce_ready(app), name="announce-ready")
        runners_tasks.add(watcher)
        watcher.add_done_callback(runners_tasks.discard)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        early = early_hangup()  # before the loop's handler replaces it; its flag is read after
        loop.add_signal_handler(signal.SIGHUP, reload_backends, app, backends_path(home))
        if early is not None and early.pending:
            log.info("SIGHUP arrived while starting; re-reading backend.yaml now")
            reload_backends(app, backends_path(home))
        await stop.wait()
        log.info("stopping: draining in-flight requests", drain_timeout_s=settings.node.drain_timeout)
    finally:
        for task in runners_tasks:
            task.cancel()
        for r in reversed(runners):
            await r.cleanup()
    log.info("stopped")


async def announce_ready(app: web.Application, poll: float = _READY_POLL_S) -> None:
    """Log ``node ready`` once, when the node really serves (listening, registries loaded and fresh,
    the nonce store answering, a backend healthy); until then, say once what it is waiting for."""
    from function_node.node.health import readiness

    log = get_logger("fxn.node")
    waiting_logged = False
    while True:
        ready, state = await readiness(app)
        if ready:
            log.info(
                "node ready",
                models=sorted({str(b["model"]) for b in state["backends"]}),
                registries=[r["name"] for r in state["registries"]],
                nonce_store=state["nonceStore"]["backend"],
            )
            return
        if not waiting_logged:
            log.warning("node not ready yet", waiting_for=_not_ready_reasons(state))
            waiting_logged = True
        await asyncio.sleep(poll)


def _not_ready_reasons(state: dict[str, Any]) -> list[str]:
    reasons = [
        f"registry {r['name']} ({r['error'] or 'not loaded'})" for r in state["registries"] if not r["usable"]
    ]
    if not state["nonceStore"]["ok"]:
        reasons.append(f"the nonce store ({state['nonceStore']['error']})")
    if not any(b["healthy"] for b in state["backends"]):
        reasons.append("a healthy backend" if state["backends"] else "a model in backend.yaml")
    return reasons


def run_node(settings: Settings, backends: BackendConfig, signer: LocalSigner, home: Path) -> int:
    """Run the node in this process, or supervise ``node.workers`` worker processes. Returns the exit code."""
    if settings.node.workers <= 1:
        _run(lambda: serve(settings, backends, signer, home))
        return 0
    return _supervise(settings, signer, home)


def _supervise(settings: Settings, signer: LocalSigner, home: Path) -> int:
    from function_node.metrics import multiprocess_mode
    from function_node.node.supervisor import Supervisor

    argv = [sys.executable, "-m", "function_node.node.server", "--home", str(home)]
    argv += ["--workers", str(settings.node.workers), "--port", str(settings.node.listen_port)]
    supervisor = Supervisor(
        argv, signer.private_key, settings.node.workers, drain_timeout=settings.node.drain_timeout
    )
    # Every worker writes its metrics to one directory and serves all of them (SPEC §10): a scrape
    # that reaches any worker sees the whole node, and counters never go backwards.
    with multiprocess_mode():
        return supervisor.run()


def _worker_main() -> None:
    """A worker process: key from stdin, config from the home directory, SO_REUSEPORT listener."""
    install_early_hangup()
    unblock_inherited_signals()  # a SIGHUP the supervisor passed on since the spawn is taken now
    import argparse

    from function_node.config.loader import load_backends, load_settings
    from function_node.logs import configure_logging

    parser = argparse.ArgumentParser(prog="fxn-worker")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    signer = LocalSigner(bytes.fromhex(sys.stdin.read().strip()))
    settings = load_settings(args.home)
    node = settings.node.model_copy(update={"workers": args.workers, "listen_port": args.port})
    settings = settings.model_copy(update={"node": node})
    configure_logging(settings.logger.verbosity, settings.logger.format)
    backends = load_backends(args.home)
    _run(lambda: serve(settings, backends, signer, args.home, reuse_port=True))


if __name__ == "__main__":
    _worker_main()
