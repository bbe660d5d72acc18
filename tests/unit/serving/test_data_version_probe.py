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


def test_a_found_version_is_trusted_for_the_check_interval_then_asked_again(
    settings, engine, tmp_path, monkeypatch
):
    """With an interval set (the web app's DATA_CHECK_INTERVAL), calls within it ask the
    store nothing and serve the copy they have, even after an ingest; the first call after
    it asks, and reads the new snapshots. With 0 (the default) every call asks."""
    from liquidity_core.ingest import ingest_paths
    from liquidity_core.inputs.demo import generate_panel

    panel = generate_panel(coins=5, snapshots=6, seed=3)
    times = sorted(panel["date"].unique())
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    panel[panel["date"] < times[-1]].to_csv(first, index=False)
    panel[panel["date"] == times[-1]].to_csv(second, index=False)
    ingest_paths([first], settings=settings)

    asked = []
    real = history._data_version
    monkeypatch.setattr(history, "_data_version", lambda e: asked.append(1) or real(e))
    clock = [1000.0]
    monkeypatch.setattr(history, "_clock", lambda: clock[0])

    history.set_check_interval(60)
    old = history.recent_history(engine)
    assert len(asked) == 1
    ingest_paths([second], settings=settings)
    clock[0] += 59
    assert history.recent_history(engine) is old and len(asked) == 1
    clock[0] += 2
    new = history.recent_history(engine)
    assert len(asked) == 2 and new is not old
    assert new.columns["snapshot_ts"].max() > old.columns["snapshot_ts"].max()

    history.set_check_interval(0)
    assert history.recent_history(engine) is new and len(asked) == 3
    with pytest.raises(ValueError, match="0 or more seconds"):
        history.set_check_interval(-1)


def test_the_web_app_sets_its_data_check_interval(settings):
    from webapp import create_app

    create_app({"SETTINGS": settings, "PRELOAD_MODEL": False})
    assert history._check_interval == 1.0  # the default
    create_app({"SETTINGS": settings, "PRELOAD_MODEL": False, "DATA_CHECK_INTERVAL": 0})
    assert history._check_interval == 0.0
