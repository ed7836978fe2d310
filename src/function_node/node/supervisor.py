"""``fxn start --workers N``: start N worker processes on one port, keep them running, pass signals on.

* Each worker is ``python -m function_node.node.server`` with SO_REUSEPORT; the key is written to its
  stdin once (never argv or the environment) and the supervisor keeps it in memory for restarts.
* A worker that dies while the node is not stopping is restarted, after a delay that doubles from
  :data:`RESTART_MIN_S` to :data:`RESTART_MAX_S` and falls back once a worker has stayed up for
  :data:`STABLE_AFTER_S`; each restart is logged (``worker restarted``, with the slot's and the total
  count) and, with ``PROMETHEUS_MULTIPROC_DIR`` set, counted in ``fxn_worker_restarts_total`` (every
  worker's ``/metrics`` shows it), where a dead worker's live gauges are also dropped. The other
  workers keep serving meanwhile.
* SIGHUP is passed to every worker, which re-reads backend.yaml in place (no restart: in-flight
  requests, pools and counters stay). SIGTERM or SIGINT is passed on as SIGTERM: workers drain, and
  any still running ``node.drainTimeout`` + :data:`KILL_GRACE_S` later are killed.
* Signals are waited for with ``sigtimedwait`` while blocked, so one that arrives at any moment (during
  a spawn included) is taken in order, never lost, and a worker's death (SIGCHLD) is seen at once.
  Workers inherit the mask and unblock it themselves once they can handle a SIGHUP
  (:mod:`function_node.node.signals`).

docs/architecture.md compares this with gunicorn's arbiter and aiohttp's worker, measured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import Counter

from function_node.logs import get_logger
from function_node.metrics import MULTIPROC_DIR_ENV
from function_node.node.signals import SUPERVISOR_SIGNALS

__all__ = ["KILL_GRACE_S", "RESTART_MAX_S", "RESTART_MIN_S", "STABLE_AFTER_S", "Supervisor"]

RESTART_MIN_S: Final = 0.5
RESTART_MAX_S: Final = 30.0
STABLE_AFTER_S: Final = 30.0
KILL_GRACE_S: Final = 5.0
_WAIT_S: Final = 0.5  # the longest the loop sleeps without a signal (to start a delayed restart)


@dataclass(slots=True)
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    delay: float = RESTART_MIN_S
    restart_at: float | None = None  # monotonic time of a scheduled restart


@dataclass(slots=True)
class Supervisor:
    """Runs ``workers`` copies of ``argv``; :meth:`run` returns the exit code once they have stopped."""

    argv: Sequence[str]
    key: bytes
    workers: int
    drain_timeout: float
    clock: Callable[[], float] = time.monotonic
    _slots: list[_Slot] = field(init=False, default_factory=list)
    _stopping: bool = field(init=False, default=False)
    _kill_at: float | None = field(init=False, default=None)
    _restarts: int = field(init=False, default=0)
    _unclean: int = field(init=False, default=0)  # workers that ended badly while stopping
    _restart_counter: Counter | None = field(init=False, default=None)

    def run(self) -> int:
        log = get_logger("fxn.node")
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
        if os.environ.get(MULTIPROC_DIR_ENV):
            # Multiprocess mode: the value goes to this process's file in the shared directory, which
            # every worker's /metrics reads; no registry of the supervisor's own is ever served.
            self._restart_counter = Counter(
                "fxn_worker_restarts_total", "Worker processes restarted after they died", registry=None
            )
        try:
            self._slots = [_Slot(i) for i in range(self.workers)]
            for slot in self._slots:
                self._spawn(slot)
            log.info("workers started", workers=self.workers, pids=self.pids())
            while any(s.process is not None or s.restart_at is not None for s in self._slots):
                info = signal.sigtimedwait(SUPERVISOR_SIGNALS, self._timeout())
                if info is not None:
                    self._on_signal(info.si_signo)
                self._reap()
                self._restart_due()
                self._kill_if_overdue()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        log.info("workers stopped", restarts=self._restarts, unclean=self._unclean)
        return 1 if self._unclean else 0

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process is not None]

    # --- events ------------------------------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP and not self._stopping:
            self._send(signal.SIGHUP)
        elif signum in (signal.SIGTERM, signal.SIGINT) and not self._stopping:
            get_logger("fxn.node").info("stopping workers", signal=signal.Signals(signum).name)
            self._stopping = True
            self._kill_at = self.clock() + self.drain_timeout + KILL_GRACE_S
            for slot in self._slots:
                slot.restart_at = None
            self._send(signal.SIGTERM)

    def _reap(self) -> None:
        log = get_logger("fxn.node")
        for slot in self._slots:
            process = slot.process
            if process is None or process.poll() is None:
                continue
            code = process.returncode
            _forget_live_gauges(process.pid)
            if self._stopping:
                slot.process = None
                # -SIGTERM: a worker still starting (no handler yet) dies of the stop it was sent.
                if code not in (0, -signal.SIGTERM):
                    self._unclean += 1
                    log.warning(
                        "worker ended while stopping", slot=slot.index, pid=process.pid, exit_code=code
                    )
                continue
            uptime = self.clock() - slot.started_at
            if uptime >= STABLE_AFTER_S:
                slot.delay = RESTART_MIN_S
            slot.restart_at = self.clock() + slot.delay
            log.error(
                "worker exited; restarting it",
                slot=slot.index,
                pid=process.pid,
                exit_code=code,
                uptime_s=round(uptime, 1),
                restart_in_s=slot.delay,
            )
            slot.delay = min(RESTART_MAX_S, slot.delay * 2)
            slot.process = None

    def _restart_due(self) -> None:
        now = self.clock()
        for slot in self._slots:
            if slot.restart_at is not None and now >= slot.restart_at and not self._stopping:
                slot.restart_at = None
                self._spawn(slot)
                slot.restarts += 1
                self._restarts += 1
                if self._restart_counter is not None:
                    self._restart_counter.inc()
                get_logger("fxn.node").warning(
                    "worker restarted",
                    slot=slot.index,
                    pid=slot.process.pid if slot.process else None,
                    restarts=slot.restarts,
                    restarts_total=self._restarts,
                )

    def _kill_if_overdue(self) -> None:
        if self._kill_at is None or self.clock() < self._kill_at:
            return
        for slot in self._slots:
            if slot.process is not None and slot.process.poll() is None:
                get_logger("fxn.node").error(
                    "worker still draining after node.drainTimeout; killing it", pid=slot.process.pid
                )
                with contextlib.suppress(ProcessLookupError):
                    slot.process.kill()
        self._kill_at = None

    # --- helpers -----------------------------------------------------------------------------------
    def _timeout(self) -> float:
        due = [s.restart_at for s in self._slots if s.restart_at is not None]
        if self._kill_at is not None:
            due.append(self._kill_at)
        if not due:
            return _WAIT_S
        return max(0.0, min(_WAIT_S, min(due) - self.clock()))

    def _spawn(self, slot: _Slot) -> None:
        # A pending restart while this slot is respawned has a process again: the loop keeps running.
        process = subprocess.Popen(self.argv, stdin=subprocess.PIPE)
        if process.stdin is not None:  # always, with stdin=PIPE
            with contextlib.suppress(BrokenPipeError):  # a worker that died at once is reaped as dead
                process.stdin.write(self.key.hex().encode())
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        slot.process, slot.started_at = process, self.clock()

    def _send(self, signum: int) -> None:
        for slot in self._slots:
            if slot.process is not None and slot.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)


def _forget_live_gauges(pid: int) -> None:
    """In multiprocess mode, drop a dead worker's live* gauges (its in-flight counts, health)."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # untyped upstream
