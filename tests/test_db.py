import pytest
import sqlalchemy as sa

from liquidity_core import db
from liquidity_core.errors import DatabaseUnavailable


def test_upgrade_applies_every_migration_once(settings):
    engine = db.get_engine(settings.database_url)
    first = db.upgrade(engine)
    assert first == [v for v, _ in db.migration_files()]
    assert db.upgrade(engine) == []
    with engine.connect() as conn:
        recorded = conn.execute(sa.text("SELECT version FROM schema_migrations")).scalars()
        assert sorted(recorded) == first
        tables = set(sa.inspect(conn).get_table_names())
    assert {"ingest_files", "market_snapshots", "rejected_rows", "model_versions"} <= tables


def test_unreachable_database_names_the_host():
    engine = db.get_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseUnavailable, match="127.0.0.1:1"):
        db.upgrade(engine)


def test_split_statements_ignores_comments():
    text = "-- a comment; with a semicolon\nCREATE TABLE a (x INT);\n\nCREATE TABLE b (y INT);\n"
    assert db.split_statements(text) == ["CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)"]


def test_missing_schema_is_a_named_error_not_raw_sql(database_url):
    import sqlalchemy as sa

    from liquidity_core.errors import DatabaseError

    engine = db.get_engine(database_url)
    with pytest.raises(DatabaseError, match="no schema.*liquidity db upgrade"):
        with db.transaction(engine) as conn:
            conn.execute(sa.text("SELECT COUNT(*) FROM market_snapshots"))
