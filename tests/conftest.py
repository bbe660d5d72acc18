"""Shared fixtures.

Storage tests run twice: against a SQLite file in ``tmp_path`` and against PostgreSQL
(``TEST_DATABASE_URL``, e.g. ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``) in a
schema of their own that is dropped afterwards. Without ``TEST_DATABASE_URL`` the
PostgreSQL half is skipped; ``.ci/run`` always sets it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from liquidity_core import db
from liquidity_core.settings import load_settings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PG_URL = os.environ.get("TEST_DATABASE_URL")


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'liquidity.db'}"
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = _pg_schema_url(PG_URL, schema)
    try:
        yield url
    finally:
        db.get_engine(url).dispose()
        db.get_engine.cache_clear()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def settings(database_url, tmp_path):
    """Settings on a fresh database with folders under ``tmp_path``."""
    env = {
        "LIQUIDITY_DATABASE_URL": database_url,
        "LIQUIDITY_VAR_DIR": str(tmp_path / "var"),
        "LIQUIDITY_INGEST_DIR": str(tmp_path / "ingest"),
        "LIQUIDITY_MODEL_DIR": str(tmp_path / "models"),
        "LIQUIDITY_FILE_SETTLE_SECONDS": "0",
        "LIQUIDITY_N_JOBS": "1",
    }
    s = load_settings(env)
    s.ingest_dir.mkdir(parents=True)
    s.model_dir.mkdir(parents=True)
    return s


@pytest.fixture
def engine(settings):
    """A migrated engine for ``settings``."""
    eng = db.get_engine(settings.database_url)
    db.upgrade(eng)
    return eng


@pytest.fixture
def sample_files():
    """The real CoinGecko samples in ``../shared/data``."""
    files = sorted(SHARED_DATA.glob("*.csv"))
    assert files, f"no sample CSVs found in {SHARED_DATA}"
    return files
