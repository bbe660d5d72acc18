"""Ingest stage: CSV drops into ``market_snapshots`` exactly once.

Modules, in the order a file goes through them:

- ``pipeline`` -- the entry points: hash a file, decide duplicate / quarantine / load;
- ``formats``  -- the three input formats, detection from the header, coin slugs;
- ``reader``   -- CSV bytes into rows (``parse_csv``), ``checks`` -- the row checks
  (``check_frame``), ``records`` -- the same checks for prediction input;
- ``ledger``   -- the ``ingest_files`` ledger and the one transaction of a load;
- ``copy``     -- PostgreSQL COPY (binary streams, staging table) and SQLite upserts;
- ``files``    -- the moves to ``processed/``/``quarantine/``; ``result`` -- ``IngestResult``.

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
