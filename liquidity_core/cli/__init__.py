"""The ``liquidity`` command line.

``commands`` holds the command table and ``main``; one module per command group registers
its commands on import: ``data`` (db, ingest, demo-data), ``models`` (train, models,
rollback, predict), ``forecasting`` (forecast, monitor), ``report`` and ``keys``.
``python -m liquidity_core.cli`` and the ``liquidity`` console script both run :func:`main`.
"""

# Importing the command groups registers their commands.
from liquidity_core.cli import data, forecasting, keys, models, report  # noqa: F401
from liquidity_core.cli.commands import COMMANDS, EXIT_CODES, ExitCode, build_parser, command, main

__all__ = ["COMMANDS", "EXIT_CODES", "ExitCode", "build_parser", "command", "main"]
