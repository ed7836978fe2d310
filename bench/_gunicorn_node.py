"""For bench/supervisor.py only: the node's app under gunicorn's arbiter and aiohttp's uvloop worker.

Run by ``gunicorn --preload -k aiohttp.GunicornUVLoopWebWorker _gunicorn_node:app`` with FXN_HOME
set. With ``--preload`` this module is imported in the arbiter before it forks, so the key is read
once and inherited in memory (no argv, no environment), as the hand-written supervisor hands it over
on stdin. ``app`` returns an AppRunner so the worker uses the node's own runner settings (handler
cancellation, drain timeout) instead of its defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from function_node.config.loader import load_backends, load_settings
from function_node.keys import load_node_signer
from function_node.logs import configure_logging
from function_node.node.app import create_app

_HOME = Path(os.environ["FXN_HOME"])
_SETTINGS = load_settings(_HOME)
configure_logging(_SETTINGS.logger.verbosity, _SETTINGS.logger.format)
_SIGNER = load_node_signer(_HOME, _SETTINGS)


async def _ready(app: web.Application) -> None:
    # bench/supervisor.py times restarts by this line (the node's own "listening" is not logged here).
    print(f'{{"event": "worker ready", "pid": {os.getpid()}}}', flush=True)


async def app() -> web.AppRunner:
    # backend.yaml is read in each worker: with --preload, a file read in the arbiter would never be
    # read again, and gunicorn's SIGHUP (new workers) is the only way this setup can reload it.
    application = create_app(_SETTINGS, load_backends(_HOME), _SIGNER, _HOME)
    application.on_startup.append(_ready)
    return web.AppRunner(
        application,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=_SETTINGS.node.drain_timeout,
        handle_signals=False,
    )
