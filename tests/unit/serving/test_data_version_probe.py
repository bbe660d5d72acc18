"""The request path's data-version probe: one round trip, and a dead pooled connection
costs a retry, not a failed request."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from liquidity_core.serving import recent as history
from liquidity_core.store import db


def test_probe_answers_the_data_version_and_survives_a_dropped_connection(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server connection to lose")
    before = history._data_version(engine)
    assert before[0] == 0  # no ingest yet: no ledger rows
    probe = db.get_probe_engine(engine.url)
    assert probe is not engine and probe is db.get_probe_engine(engine.url)
    with probe.connect() as conn:  # the pooled connection the next probe will reuse
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    assert history._data_version(engine) == before
    with probe.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar() != pid


def test_sqlite_probes_through_the_shared_engine(settings):
    url = str(settings.database_url)
    if not url.startswith("sqlite"):
        pytest.skip("SQLite only")
    assert db.get_probe_engine(url) is db.get_engine(url)


def test_probe_names_a_missing_schema(settings):
    from liquidity_core.errors import DatabaseError
    from liquidity_core.store.snapshots import DATA_VERSION

    with pytest.raises(DatabaseError, match="has no schema .* run `liquidity db upgrade`"):
        db.probe_row(settings.database_url, DATA_VERSION)
