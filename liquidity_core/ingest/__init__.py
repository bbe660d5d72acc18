"""Ingest stage: CSV drops into ``market_snapshots`` exactly once.

Modules: ``formats`` (format detection from the header, row checks, canonical columns) and
``pipeline`` (hashing, the ``ingest_files`` ledger, the one-transaction load -- COPY on
PostgreSQL, ``executemany`` on SQLite -- and the moves to ``processed/``/``quarantine/``).
The entry points are re-exported here, imported on first use (PEP 562), so importing one
module of the package (``formats`` for the prediction input checks, say) does not pull in
the pipeline and its database layer.
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
