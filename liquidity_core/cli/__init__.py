"""The ``liquidity`` command line.

``registry`` holds the command registry and ``main``; one module per command group
registers its commands on import: ``data`` (db, ingest, demo-data), ``models`` (train,
models, rollback, predict), ``loop`` (forecast, monitor) and ``report``.
``python -m liquidity_core.cli`` and the ``liquidity`` console script both run :func:`main`.
"""

from . import data, loop, models, report  # noqa: F401  (importing registers the commands)
from .registry import COMMANDS, build_parser, command, main

__all__ = ["COMMANDS", "build_parser", "command", "main"]
