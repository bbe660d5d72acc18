"""Ingest: CSV drops into ``market_snapshots`` exactly once.

Modules, in the order a file goes through them: ``pipeline`` (the entry points: hash a
file, decide duplicate / quarantine / load; parsing and checks come from
:mod:`liquidity_core.inputs`), ``ledger`` (the ``ingest_files`` ledger and the one
transaction of a load), ``copy`` (PostgreSQL COPY and SQLite upserts), ``stream`` (big
files in pieces), ``files`` (the moves to ``processed/`` and ``quarantine/``) and
``result`` (``IngestResult``).

The entry points are re-exported here, imported on first use (PEP 562), so that importing
the package does not pull in the pipeline and its database layer.
"""

from __future__ import annotations

import importlib

__all__ = [
    "IngestResult",
    "ingest_file",
    "ingest_one",
    "ingest_paths",
    "list_ready_files",
    "rows_added",
]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".pipeline", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
