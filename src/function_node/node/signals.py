"""SIGHUP while the node is still starting: remembered, then applied once it serves.

SIGHUP's default action ends a process, and the event loop's own handler exists only once the node
is about to listen (about a second after ``fxn start``). A reload asked for in between (a deploy
script that edits backend.yaml and signals right after a restart) must neither kill the node nor be
lost. So:

* ``fxn start`` installs :class:`EarlyHangup` first thing (``function_node.cli.entry``), before the
  CLI's imports; it only records that a reload was asked for. The server, once it has installed the
  loop's handler, re-reads backend.yaml once if the early one recorded a SIGHUP (:func:`early_hangup`).
* The worker supervisor keeps :data:`SUPERVISOR_SIGNALS` blocked (it waits for them with
  ``sigtimedwait``), and a child inherits the mask: a SIGHUP sent to a worker that has no handler yet
  is held by the kernel, and the worker, once it has installed :class:`EarlyHangup`, unblocks them
  (:func:`unblock_inherited_signals`). No window is left at all there.

The one window left is the interpreter's own start before ``fxn``'s first line (tens of ms); a
service manager that reloads during it is told so in docs/operator-guide.md.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Final

__all__ = [
    "SUPERVISOR_SIGNALS",
    "EarlyHangup",
    "early_hangup",
    "install_early_hangup",
    "unblock_inherited_signals",
]

# What the supervisor waits for; blocked in it, so blocked in each worker it spawns until unblocked.
SUPERVISOR_SIGNALS: Final = frozenset({signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})


class EarlyHangup:
    """A SIGHUP handler that only records the signal (a reload to do once the node serves)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True


def install_early_hangup() -> EarlyHangup:
    """From now on a SIGHUP is recorded instead of ending the process."""
    handler = EarlyHangup()
    signal.signal(signal.SIGHUP, handler)
    return handler


def early_hangup() -> EarlyHangup | None:
    """The early handler if it is the one installed; read its ``pending`` after replacing it.

    Replace it first (the event loop's ``add_signal_handler``), then look at ``pending``: a SIGHUP
    that came in between is then either recorded here or taken by the new handler, never lost. The
    handler is found through ``signal.getsignal``: the disposition is process-wide state already, so
    no second copy of it is kept in a module variable.
    """
    handler = signal.getsignal(signal.SIGHUP)
    return handler if isinstance(handler, EarlyHangup) else None


def unblock_inherited_signals() -> None:
    """In a worker, after :func:`install_early_hangup`: signals held since spawn are delivered now."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)
