"""Ingest stage: CSV drops into ``market_snapshots`` exactly once.

Modules: ``formats`` (format detection from the header, row checks, canonical columns) and
``pipeline`` (hashing, the ``ingest_files`` ledger, the one-transaction load -- COPY on
PostgreSQL, ``executemany`` on SQLite -- and the moves to ``processed/``/``quarantine/``).
The entry points are re-exported here.
"""

from .pipeline import (
    IngestResult,
    ingest_file,
    ingest_one,
    ingest_paths,
    list_ready_files,
    rows_added,
)

__all__ = [
    "IngestResult",
    "ingest_file",
    "ingest_one",
    "ingest_paths",
    "list_ready_files",
    "rows_added",
]
