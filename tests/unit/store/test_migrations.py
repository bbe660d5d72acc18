"""liquidity_core.store.migrate: Alembic revisions, our own version table, and databases
that the ``sql/NNN_*.sql`` runner made before Alembic, stamped and upgraded in place."""

import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from support import legacy_schema
from support.paths import REPO

from liquidity_core.errors import LiquidityError
from liquidity_core.store import db, migrate, schema

REVISIONS = [
    "001_ingest",
    "002_models",
    "003_snapshot_key",
    "004_coin_aliases",
    "005_model_skill",
    "006_intervals",
    "007_forecasts",
    "008_alembic",
    "009_text_keys",
]


def _diff(engine) -> list:
    with engine.connect() as conn:
        options = migrate.compare_options(conn.dialect.name)
        return compare_metadata(MigrationContext.configure(conn, opts=options), schema.metadata)


def _tables(engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _rows(engine, table: str, columns: list[str] | None = None) -> list[tuple]:
    """The rows of ``table`` as text, sorted (``columns``, all by default)."""
    listed = ", ".join(columns) if columns else "*"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT {listed} FROM {table}"))
        return sorted(tuple(map(str, r)) for r in rows)


def _columns(engine, table: str) -> list[str]:
    with engine.connect() as conn:
        return [c["name"] for c in sa.inspect(conn).get_columns(table)]


def test_the_schema_declared_and_the_migrated_database_agree(engine):
    assert _diff(engine) == []
    assert db.current(engine) == {
        "revision": migrate.head(),
        "head": migrate.head(),
        "is_head": True,
        "stamped": True,
    }


def test_an_up_to_date_database_is_known_without_loading_alembic(engine):
    assert migrate.HEAD == migrate.head() == REVISIONS[-1]
    code = (
        "import sys; from liquidity_core.store import db; "
        f"assert db.upgrade(db.get_engine({engine.url.render_as_string(False)!r})) == []; "
        "print('alembic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False"]


def test_history_lists_the_revisions_newest_first():
    history = migrate.history()
    assert [h["revision"] for h in history] == REVISIONS[::-1]
    assert [h["is_head"] for h in history] == [True] + [False] * (len(REVISIONS) - 1)
    assert history[-1]["down_revision"] is None
    assert all(h["description"] for h in history)


def test_a_fresh_database_is_at_no_revision(database_url):
    engine = db.get_engine(database_url)
    assert db.current(engine) == {
        "revision": None,
        "head": migrate.head(),
        "is_head": False,
        "stamped": False,
    }


def test_airflows_version_table_and_ours_stay_apart(database_url):
    engine = db.get_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"
        )
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('29ce7909c52b')")
    assert db.upgrade(engine) == REVISIONS
    assert db.upgrade(engine) == []
    assert _rows(engine, "alembic_version") == [("29ce7909c52b",)]
    assert _rows(engine, migrate.VERSION_TABLE) == [(migrate.head(),)]
    # Airflow's table is none of ours: the only difference from our declared tables.
    assert [(d[0], d[1].name) for d in _diff(engine)] == [("remove_table", "alembic_version")]


def test_a_database_of_the_old_runner_is_stamped_and_keeps_every_row(database_url):
    engine = db.get_engine(database_url)
    assert legacy_schema.build(engine) == REVISIONS[:7]
    counts = legacy_schema.fill(engine)
    assert set(counts) == {t.name for t in schema.metadata.sorted_tables}
    before = {table: _rows(engine, table) for table in counts}
    assert db.current(engine)["revision"] == "007_forecasts"
    assert db.current(engine)["stamped"] is False

    assert db.upgrade(engine) == REVISIONS[7:]
    assert {table: _rows(engine, table) for table in counts} == before
    assert db.current(engine) == {
        "revision": migrate.head(),
        "head": migrate.head(),
        "is_head": True,
        "stamped": True,
    }
    assert _tables(engine) == set(counts) | {migrate.VERSION_TABLE}  # schema_migrations gone
    assert _diff(engine) == []
    with engine.connect() as conn:  # the views work on the kept rows
        assert conn.execute(sa.text("SELECT COUNT(*) FROM forecast_outcomes")).scalar() == 1
        assert conn.execute(sa.text("SELECT COUNT(*) FROM coin_snapshots")).scalar() == 4
    keys = {"coin_aliases": "alias_id", "drift_references": "model_version"}
    for tables in legacy_schema.ROWS.values():
        for table in set(tables) & set(keys):
            row = {**tables[table], keys[table]: None}
            insert = f"INSERT INTO {table} ({', '.join(row)}) VALUES (:{', :'.join(row)})"
            with pytest.raises(sa.exc.IntegrityError):  # SQLite took NULL in a TEXT key before
                with engine.begin() as conn:
                    conn.execute(sa.text(insert), row)


def test_a_half_migrated_old_database_is_stamped_there_and_upgraded_through_the_rest(
    database_url,
):
    engine = db.get_engine(database_url)
    legacy_schema.build(engine, until="004_coin_aliases")
    counts = legacy_schema.fill(engine, until="004_coin_aliases")
    columns = {table: _columns(engine, table) for table in counts}
    before = {table: _rows(engine, table, columns[table]) for table in counts}
    assert db.current(engine)["revision"] == "004_coin_aliases"

    assert db.upgrade(engine) == REVISIONS[4:]
    assert {table: _rows(engine, table, columns[table]) for table in counts} == before
    assert db.current(engine)["is_head"]
    assert _diff(engine) == []
    with engine.connect() as conn:
        nulls = conn.execute(sa.text("SELECT holdout_coverage FROM model_versions")).all()
    assert [tuple(r) for r in nulls] == [(None,)]


def test_an_old_database_recording_an_unknown_file_is_refused(database_url):
    engine = db.get_engine(database_url)
    legacy_schema.build(engine, until="002_models")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ('999_later', 'now')"
        )
    with pytest.raises(LiquidityError, match="'999_later'"):
        db.upgrade(engine)
    assert migrate.VERSION_TABLE not in _tables(engine)  # nothing half done


def test_every_revision_goes_down_and_up_again(engine):
    from alembic import command

    with db.transaction(engine) as conn:
        command.downgrade(migrate.config(conn), "base")
    assert _tables(engine) == {migrate.VERSION_TABLE}
    assert db.upgrade(engine) == REVISIONS
    assert _diff(engine) == []


def test_sqlite_checks_foreign_keys_again_after_an_upgrade(tmp_path):
    engine = db.get_engine(f"sqlite:///{tmp_path / 'fk.db'}")
    legacy_schema.build(engine, until="007_forecasts")
    legacy_schema.fill(engine)
    db.upgrade(engine)  # copies model_versions with foreign key checks off
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
        with db.transaction(engine) as conn:
            row = {**legacy_schema.ROWS["002_models"]["model_events"], "version": "missing"}
            insert = f"INSERT INTO model_events ({', '.join(row)}) VALUES (:{', :'.join(row)})"
            conn.execute(sa.text(insert), row)
