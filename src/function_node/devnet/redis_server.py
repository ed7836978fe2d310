"""A throw-away redis-server on loopback, for the devnet's shared nonce store and the tests.

Nothing is persisted (``--save "" --appendonly no``); it can be stopped and started again on the
same port, which is how the tests show that a node recovers by itself when Redis comes back.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

from function_node.devnet.process import ManagedProcess, free_port

__all__ = ["RedisServer"]

_HOST: Final = "127.0.0.1"


class RedisServer:
    """``redis-server`` bound to 127.0.0.1 on ``port`` (a free one by default), logging into ``directory``."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        executable: str = "redis-server",
        ready_timeout: float = 15.0,
    ) -> None:
        self.directory = directory
        self.port = port if port is not None else free_port(_HOST)
        self.executable = executable
        self.ready_timeout = ready_timeout
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{_HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def start(self) -> RedisServer:
        if self.running:
            return self
        binary = shutil.which(self.executable)
        if binary is None:
            raise RuntimeError(f"{self.executable} is not installed; install redis-server (or Valkey)")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            _HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        self._process = ManagedProcess(
            "redis-server",
            argv,
            self.directory / "redis.log",
            port=self.port,
            host=_HOST,
            ready_timeout=self.ready_timeout,
        ).start()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace=5.0)
            self._process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
