"""The ``fxn`` console script: for ``fxn start``, take SIGHUP over before anything else is imported.

Importing the CLI (typer, rich, every command group) takes 0.1-0.4 s; a SIGHUP in that time, or later
while the node starts, would end the process (its default action). It is recorded instead and applied
once the node serves (:mod:`function_node.node.signals`). Other commands keep the default: a closed
terminal still ends ``fxn request``.
"""

from __future__ import annotations

import sys

__all__ = ["run"]


def run() -> None:
    if "start" in sys.argv[1:]:
        from function_node.node.signals import install_early_hangup

        install_early_hangup()
    from function_node.cli.main import run as main

    main()
