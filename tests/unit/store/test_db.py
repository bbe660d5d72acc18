import pytest
import sqlalchemy as sa

from liquidity_core.errors import DatabaseUnavailable
from liquidity_core.store import db, migrate


def test_upgrade_applies_every_revision_once(settings):
    engine = db.get_engine(settings.database_url)
    first = db.upgrade(engine)
    assert first == [h["revision"] for h in reversed(migrate.history())]
    assert db.upgrade(engine) == []
    with engine.connect() as conn:
        recorded = conn.execute(sa.text(f"SELECT version_num FROM {migrate.VERSION_TABLE}"))
        assert list(recorded.scalars()) == [first[-1]]
        tables = set(sa.inspect(conn).get_table_names())
    assert {"ingest_files", "market_snapshots", "rejected_rows", "model_versions"} <= tables


def test_unreachable_database_names_the_host():
    engine = db.get_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseUnavailable, match="127.0.0.1:1"):
        db.upgrade(engine)


def test_missing_schema_is_a_named_error_not_raw_sql(database_url):
    import sqlalchemy as sa

    from liquidity_core.errors import DatabaseError

    engine = db.get_engine(database_url)
    with pytest.raises(DatabaseError, match="no schema.*liquidity db upgrade"):
        with db.transaction(engine) as conn:
            conn.execute(sa.text("SELECT COUNT(*) FROM market_snapshots"))


def test_snapshot_key_migration_keeps_the_rows_and_rekeys_time_first(settings):
    engine = db.get_engine(settings.database_url)
    db.upgrade(engine, until="002_models")
    rows = [
        {"coin_id": c, "ts": ts, "cap": cap}
        for c, ts, cap in [
            ("bitcoin", "2024-01-02T00:00:00+00:00", 9e11),
            ("ethereum", "2024-01-01T00:00:00+00:00", 3e11),
            ("bitcoin", "2024-01-01T00:00:00+00:00", 8e11),
        ]
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ingest_files (sha256, file_name, status, started_at, finished_at) "
                "VALUES (:sha, 'f.csv', 'loaded', :ts, :ts)"
            ),
            {"sha": "a" * 64, "ts": rows[0]["ts"]},
        )
        conn.execute(
            sa.text(
                "INSERT INTO market_snapshots (coin_id, snapshot_ts, coin_name, symbol, price, "
                "volume_24h, market_cap, source_file_id) "
                "VALUES (:coin_id, :ts, :coin_id, 'X', 1.0, 5.0, :cap, 1)"
            ),
            rows,
        )
    assert db.upgrade(engine, until="003_snapshot_key") == ["003_snapshot_key"]
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        key = inspector.get_pk_constraint("market_snapshots")["constrained_columns"]
        indexes = inspector.get_indexes("market_snapshots")
        foreign_keys = inspector.get_foreign_keys("market_snapshots")
        stored = conn.execute(
            sa.text("SELECT coin_id, market_cap FROM market_snapshots ORDER BY coin_id, market_cap")
        ).all()
    assert key == ["snapshot_ts", "coin_id"]
    assert indexes == []  # the time index and the symbol index are gone with the old key
    assert foreign_keys == []  # a per-row ledger lookup on every ingested row (see 003)
    assert [tuple(r) for r in stored] == [("bitcoin", 8e11), ("bitcoin", 9e11), ("ethereum", 3e11)]
