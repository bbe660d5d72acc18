"""A fresh database on either backend.

SQLite: a file in a folder of the test. PostgreSQL: a schema of its own on
``TEST_DATABASE_URL`` (e.g. ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``), dropped
afterwards; without that variable the test is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devtools import scratch_schema

PG_URL = os.environ.get("TEST_DATABASE_URL")


@contextmanager
def fresh_database(kind: str, root: Path, *, prefix: str = "t") -> Iterator[str]:
    """A fresh, empty database URL of ``kind`` ("sqlite" or "postgresql"), dropped after.

    SQLite: a file under ``root``. PostgreSQL: a schema of its own on ``TEST_DATABASE_URL``
    (skips the test when that is not set).
    """
    if kind == "sqlite":
        yield f"sqlite:///{root / 'liquidity.db'}"
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    with scratch_schema(PG_URL, prefix) as (url, _schema):
        yield url
