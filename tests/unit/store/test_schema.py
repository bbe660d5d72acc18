"""liquidity_core.store.schema: the Core tables match the migrated database and the COPY files."""

import re

import pytest
import sqlalchemy as sa

from liquidity_core.ingest import binary_copy, copy
from liquidity_core.store import db, migrate, schema

TABLES = [t for t in schema.metadata.sorted_tables]


def _kind(type_) -> str:
    """A coarse type name that both dialects agree on (times are text on SQLite)."""
    generic = type_.as_generic() if hasattr(type_, "as_generic") else type_
    for kind, classes in (
        ("int", (sa.Integer,)),
        ("float", (sa.Float, sa.Numeric)),
        ("time", (sa.DateTime,)),
        ("text", (sa.String, sa.Text)),
    ):
        if isinstance(generic, classes):
            return kind
    return type(generic).__name__


def _declared_kind(column: sa.Column, dialect) -> str:
    """The kind the column's type takes in ``dialect`` (the test engine's own)."""
    return _kind(column.type.dialect_impl(dialect))


def test_every_migrated_table_is_declared(engine):
    with engine.connect() as conn:
        stored = set(sa.inspect(conn).get_table_names())
    assert stored == {t.name for t in TABLES} | {migrate.VERSION_TABLE}


@pytest.mark.parametrize(
    "table", TABLES + [schema.coin_snapshots, schema.forecast_outcomes], ids=lambda t: t.name
)
def test_table_matches_the_migrated_database(engine, table):
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        stored = inspector.get_columns(table.name)
        key = inspector.get_pk_constraint(table.name)["constrained_columns"]
    assert [c["name"] for c in stored] == [c.name for c in table.columns]
    if table.name in schema.views.tables:  # a view: no keys, nullability from its query
        return
    # Key columns are compared as the key: SQLite reports a TEXT PRIMARY KEY as nullable.
    assert {c["name"]: c["nullable"] for c in stored if c["name"] not in key} == {
        c.name: c.nullable for c in table.columns if not c.primary_key
    }
    assert key == [c.name for c in table.primary_key.columns]
    assert {c["name"]: _kind(c["type"]) for c in stored} == {
        c.name: _declared_kind(c, engine.dialect) for c in table.columns
    }


def _copy_columns(name: str) -> list[str]:
    text = (db.SQL_DIR / "queries" / f"{name}.postgresql.sql").read_text()
    match = re.search(r"(?:COPY|INSERT INTO|CREATE TEMP TABLE)\s+\w+\s*\(([^)]*)\)", text)
    assert match, f"{name}: no column list"
    return [part.split()[0] for part in match.group(1).replace("\n", " ").split(",")]


def test_every_copy_column_list_matches_its_table():
    snapshots = [c.name for c in schema.market_snapshots.columns]
    staged = [c for c in binary_copy.BINARY_COLUMNS if c != "source_file_id"]
    # The binary COPY writes the columns in the order binary_copy.BINARY_COLUMNS encodes them.
    assert _copy_columns("ingest_copy_direct") == list(binary_copy.BINARY_COLUMNS)
    assert sorted(binary_copy.BINARY_COLUMNS) == sorted(snapshots)
    assert _copy_columns("ingest_stage_copy") == staged
    assert _copy_columns("ingest_stage_create") == [c for c in snapshots if c != "source_file_id"]
    assert _copy_columns("ingest_stage_upsert") == snapshots
    # A file loaded in pieces (ingest/stream.py) stages each row's line number too.
    assert _copy_columns("ingest_stage_lines_copy") == [*staged, "line"]
    assert _copy_columns("ingest_stage_lines_create") == [
        *[c for c in snapshots if c != "source_file_id"],
        "line",
    ]
    rejected = [c.name for c in schema.rejected_rows.columns if c.name != "id"]
    assert _copy_columns("ingest_copy_rejected") == rejected
    assert list(copy.REJECTED_COLUMNS) == rejected


def test_every_copy_statement_is_checked():
    copies = {
        p.name.split(".")[0]
        for p in (db.SQL_DIR / "queries").glob("*.sql")
        if re.search(r"^\s*COPY\b", p.read_text(), flags=re.MULTILINE)
    }
    assert copies == {
        "ingest_copy_direct",
        "ingest_stage_copy",
        "ingest_stage_lines_copy",
        "ingest_copy_rejected",
    }
