"""``fxn devnet up``: a whole local Function Network in one command.

In order: anvil, the registry contracts (deployed, with the development gateway and scheduler keys
registered), one provider entry per node replica, registered through ``fxn provider register``'s code path
with the replica's ``node.publicUrl`` as its metadata, Redis (with
``--redis``), the development backend (or ``--backend URL``), the node replica(s) via ``fxn start``, the
scheduler via ``fxn scheduler run``. Then the scenario: a signed streamed chat completion through the
``openai`` SDK, a replayed request refused, and the scheduler's first round (IDENTITY, ENDPOINT_REACHABLE,
the two-round matrix proof verified, an inference probe). Every process is stopped by :meth:`Devnet.down`,
whatever happened before.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from function_node.devnet.homes import (
    DEV_GATEWAY_KEY,
    DEV_PROVIDER_KEY,
    DEV_SCHEDULER_KEY,
    DevnetLayout,
    NodeHome,
    write_gateway_key,
    write_node_home,
    write_scheduler_home,
)
from function_node.devnet.process import ManagedProcess, free_port
from function_node.devnet.scenario import (
    Row,
    chat_completion,
    replay_refused,
    scheduler_rows,
    wait_ready,
    wait_scheduler_round,
)
from function_node.errors import FxnError
from function_node.signing import LocalSigner

__all__ = ["Devnet", "DevnetError", "DevnetOptions"]

_DEV_MODEL: Final = "dev-model"  # what the development backend serves (dev_backend.DEFAULT_MODEL)
_CHAIN_ID: Final = 31337  # anvil's default chain id, written into each node's config.yaml


class DevnetError(FxnError):
    """A devnet component could not start; the message names it and its log file."""


@dataclass(frozen=True, slots=True)
class DevnetOptions:
    directory: Path
    replicas: int = 1
    redis: bool = False
    backend_url: str = ""  # "": start the development backend
    model: str = _DEV_MODEL
    fxn_id: int = 1
    matrix_size: int = 256
    proof_rows: int = 16
    scheduler_interval: float = 30.0
    ready_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("--replicas must be at least 1")
        if self.replicas > 1 and not self.redis:
            raise ValueError("--replicas > 1 needs --redis: replicas must share one nonce store")


def _fxn() -> list[str]:
    """The ``fxn`` of this interpreter's environment (children must run the same code as the parent)."""
    script = Path(sys.executable).parent / "fxn"
    if script.exists():
        return [str(script)]
    found = shutil.which("fxn")
    if found is None:
        raise DevnetError("the fxn command is not on PATH; install the package (pip install -e .)")
    return [found]


@dataclass(slots=True)
class Devnet:
    """Start with :meth:`up` (returns the summary rows), stop with :meth:`down`; or use ``with``."""

    options: DevnetOptions
    layout: DevnetLayout = field(init=False)
    nodes: list[NodeHome] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    rpc_url: str = ""
    scheduler_database: Path | None = None
    # How to stop each started component, newest last; and how to tell whether each is alive.
    _stoppers: list[Callable[[], object]] = field(default_factory=list)
    _processes: list[ManagedProcess] = field(default_factory=list)
    _alive: dict[str, Callable[[], bool]] = field(default_factory=dict)
    _logs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layout = DevnetLayout(self.options.directory.expanduser().resolve())

    # -- lifecycle ---------------------------------------------------------------------------------

    def _start(self, name: str, process: ManagedProcess) -> ManagedProcess:
        self._processes.append(process)
        self._stoppers.append(lambda: process.stop(grace=10.0))
        self._alive[name] = lambda: process.running
        self._logs[name] = process.log_path
        try:
            process.start()
        except (RuntimeError, OSError) as exc:
            raise DevnetError(f"{name} did not start: {exc}") from exc
        return process

    def up(self) -> list[Row]:
        opts, layout = self.options, self.layout
        layout.logs.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        self._chain()
        backend_url = opts.backend_url or self._dev_backend()
        redis_url = self._redis() if opts.redis else ""
        ports = [free_port() for _ in range(opts.replicas)]
        deployment = self._deploy()
        for index, port in enumerate(ports):
            home = write_node_home(
                layout.node(index),
                port=port,
                rpc_url=self.rpc_url,
                router=deployment["router"],
                model=opts.model,
                fxn_id=opts.fxn_id,
                backend_url=backend_url,
                redis_url=redis_url,
                chain_id=_CHAIN_ID,
            )
            self.nodes.append(home)
        self._register_providers()
        for index, home in enumerate(self.nodes):
            self._start(
                f"node-{index}",
                ManagedProcess(
                    f"node-{index}",
                    [*_fxn(), "--home", str(home.path), "start"],
                    layout.logs / f"node-{index}.log",
                    port=home.port,
                    ready_timeout=opts.ready_timeout,
                ),
            )
        for index, home in enumerate(self.nodes):
            name = f"node-{index}"
            try:
                ready = wait_ready(home.url, opts.ready_timeout, self._alive[name])
            except RuntimeError as exc:
                raise DevnetError(f"{exc}; see {self._logs[name]}") from exc
            self.rows.append(
                Row(f"node-{index} ({home.address})", home.url, True, _ready_detail(ready, home.path))
            )
        self._scheduler(deployment["router"])
        self._scenario()
        self.rows.append(
            Row("devnet", str(layout.root), None, f"up in {time.perf_counter() - started:.1f} s")
        )
        return self.rows

    def down(self) -> None:
        """Stop every process this devnet started, newest first."""
        # SIGTERM to all at once first, so the nodes drain in parallel instead of one after another.
        for process in self._processes:
            process.signal(signal.SIGTERM)
        self._processes.clear()
        while self._stoppers:
            self._stoppers.pop()()

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def dead(self) -> list[str]:
        """Names of started processes that have exited (the long-running mode watches for these)."""
        return [name for name, alive in self._alive.items() if not alive()]

    def log_of(self, name: str) -> Path | None:
        return self._logs.get(name)

    # -- the components ----------------------------------------------------------------------------

    def _chain(self) -> None:
        from function_node.devnet.anvil import AnvilProcess

        state = self.layout.chain_state
        state.unlink(
            missing_ok=True
        )  # every devnet starts from an empty chain; the state is kept for inspection
        anvil = AnvilProcess(self.layout.logs / "anvil.log", state_file=state)
        self._start("anvil", anvil)
        self.rpc_url = anvil.rpc_url
        self.rows.append(Row("chain (anvil)", anvil.rpc_url, True, f"chain id 31337, state {state}"))

    def _dev_backend(self) -> str:
        port = free_port()
        argv = [sys.executable, "-m", "function_node.devnet.dev_backend", "--port", str(port)]
        argv += ["--model", self.options.model]
        self._start(
            "dev-backend",
            ManagedProcess("dev-backend", argv, self.layout.logs / "dev-backend.log", port=port),
        )
        url = f"http://127.0.0.1:{port}"
        self.rows.append(
            Row("development backend (not a model)", url, True, f"serves {self.options.model!r}")
        )
        return url

    def _redis(self) -> str:
        from function_node.devnet.redis_server import RedisServer

        server = RedisServer(self.layout.redis)
        try:
            server.start()
        except RuntimeError as exc:
            raise DevnetError(f"redis did not start: {exc}") from exc
        self._stoppers.append(server.stop)
        self._alive["redis"] = lambda: server.running
        self.rows.append(Row("nonce store (redis)", server.url, True, "shared by every replica"))
        return server.url

    def _deploy(self) -> dict[str, str]:
        from function_node.devnet.deploy import deploy_network

        # Addresses derived from the keys the homes are written with, so the two cannot disagree.
        gateway, scheduler = (
            LocalSigner.from_hex(k).address.lower() for k in (DEV_GATEWAY_KEY, DEV_SCHEDULER_KEY)
        )
        started = time.perf_counter()
        try:
            deployment = deploy_network(self.rpc_url, gateways=[gateway], schedulers=[scheduler])
        except FxnError as exc:
            raise DevnetError(f"deploying the registry contracts failed: {exc}") from exc
        self.layout.deployment.parent.mkdir(parents=True, exist_ok=True)
        self.layout.deployment.write_text(json.dumps(deployment.as_dict(), indent=2) + "\n")
        self.rows.append(
            Row(
                "registry contracts",
                f"Router {deployment.router}",
                True,
                f"deployed in {time.perf_counter() - started:.1f} s; registered gateway {gateway[:10]}… and "
                f"scheduler {scheduler[:10]}…",
            )
        )
        return {"router": deployment.router}

    def _register_providers(self) -> None:
        """Each node registers itself as an operator would: ``fxn provider register``'s code path, with
        the default metadata (its ``node.publicUrl``); replica 0 under the default id (its address)."""
        import asyncio

        from function_node.chain.metadata import metadata_from_options
        from function_node.chain.provider_lifecycle import Operator, register_provider
        from function_node.config.loader import load_settings

        started = time.perf_counter()
        signer = LocalSigner.from_hex(DEV_PROVIDER_KEY)  # the key write_node_home gave every replica
        for index, home in enumerate(self.nodes):
            settings = load_settings(home.path)
            # Replicas share the key; each needs an id of its own to publish its own URL.
            entry_id = None if index == 0 else bytes.fromhex(signer.address[2:]) + bytes([index])
            try:
                asyncio.run(
                    register_provider(
                        Operator(settings, signer.address, lambda: signer),
                        model_id=self.options.fxn_id,
                        metadata=metadata_from_options(None, None, settings.node.public_url),
                        entry_id=entry_id,
                    )
                )
            except FxnError as exc:
                raise DevnetError(f"registering node-{index} as a provider failed: {exc}") from exc
        count = len(self.nodes)
        self.rows.append(
            Row(
                "provider registration (fxn provider register)",
                self.nodes[0].address,
                True,
                f"{count} provider id{'s' if count > 1 else ''} for model id {self.options.fxn_id} "
                f"in {time.perf_counter() - started:.1f} s",
            )
        )

    def _scheduler(self, router: str) -> None:
        opts = self.options
        config = write_scheduler_home(
            self.layout.scheduler,
            rpc_url=self.rpc_url,
            router=router,
            matrix_size=opts.matrix_size,
            rows=opts.proof_rows,
            interval=opts.scheduler_interval,
        )
        database = self.layout.scheduler / "scheduler.db"
        for stale in (database, database.with_suffix(".db-wal"), database.with_suffix(".db-shm")):
            stale.unlink(missing_ok=True)  # verdicts of an earlier devnet would describe other nodes
        self.scheduler_database = database
        process = self._start(
            "scheduler",
            ManagedProcess(
                "scheduler",
                [*_fxn(), "scheduler", "run", "--config", str(config)],
                self.layout.logs / "scheduler.log",
            ),
        )
        try:
            wait_scheduler_round(database, opts.ready_timeout, self._alive["scheduler"])
        except RuntimeError as exc:
            raise DevnetError(f"{exc}; see {process.log_path}:\n{process.tail()}") from exc

    def _scenario(self) -> None:
        gateway_key = write_gateway_key(self.layout.gateway)
        gateway = LocalSigner.from_hex(DEV_GATEWAY_KEY)
        first = self.nodes[0]
        self.rows.append(Row("gateway key", str(gateway_key), None, gateway.address))
        self.rows.append(chat_completion(first.url, first.address, gateway, self.options.model))
        second = self.nodes[1] if len(self.nodes) > 1 else first
        self.rows.append(replay_refused(first.url, second.url, gateway, self.options.model))
        assert self.scheduler_database is not None  # set by _scheduler, which runs first
        self.rows.extend(scheduler_rows(self.scheduler_database))


def _ready_detail(ready: dict[str, object], home: Path) -> str:
    registries = ready.get("registries")
    count = len(registries) if isinstance(registries, list) else 0
    return f"ready ({count} registries loaded), home {home}"
