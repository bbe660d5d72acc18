"""Ingest: ``liquidity ingest`` of one big CoinGecko file against ``psql \\copy`` of it.

Figures:

- ``ingest_psql_copy``: rows/s of ``psql -c "\\copy ..."`` of the file into a table with
  the file's columns and the primary key ``market_snapshots`` has, time first
  (date, coin): the floor of what PostgreSQL can take, with no checks at all.
- ``ingest_postgres``: rows/s of :func:`liquidity_core.ingest.ingest_paths` (what
  ``liquidity ingest`` runs) on a migrated, empty schema; ratio vs ``ingest_psql_copy``
  (goal >= 0.5).
- ``ingest_sqlite``: rows/s of the same call on a fresh SQLite file.
- ``ingest_dag_latency``: seconds from a one-snapshot drop landing in the ingest folder
  (``os.replace`` of a ``.part`` file) until its rows are queryable from another
  connection, running the ingest DAG's own path (``list_ready_files`` then
  ``ingest_one`` for each file) against the Postgres store holding the big file. The
  DAG adds its scheduling delay and ``LIQUIDITY_FILE_SETTLE_SECONDS`` (5 s by default,
  0 here) on top.
- ``ingest_dag_test_latency`` (full scale, when ``dags/liquidity_ingest.py`` exists): the
  same, through a real ``dag.test()`` in a fresh Airflow process (tests/support/dag_runner.py).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from devtools import airflow_env
from liquidity_core.ingest import ingest_one, ingest_paths, list_ready_files
from liquidity_core.inputs.demo import generate_panel
from liquidity_core.store import db

from .common import REPO, Results, Scale, make_settings, pg_schema, psql_command, psql_env

REF_TABLE = "ref_coingecko"
REF_DDL = """
CREATE TABLE "{schema}".{table} (
    coin TEXT NOT NULL,
    symbol TEXT NOT NULL,
    price DOUBLE PRECISION NOT NULL,
    "1h" DOUBLE PRECISION,
    "24h" DOUBLE PRECISION,
    "7d" DOUBLE PRECISION,
    "24h_volume" DOUBLE PRECISION NOT NULL,
    mkt_cap DOUBLE PRECISION NOT NULL,
    date DATE NOT NULL,
    PRIMARY KEY (date, coin)
)
"""
DAG_ID = "liquidity_ingest"
DROPS = 3


def figure_names(scale: Scale) -> list[str]:
    """The figures :func:`run` records (``ingest_dag_test_latency``: when it could run)."""
    names = ["ingest_psql_copy", "ingest_postgres", "ingest_dag_latency", "ingest_sqlite"]
    return names + (["ingest_dag_test_latency"] if scale.dag_test else [])


def write_file(path: Path, *, coins: int, snapshots: int, seed: int = 20240101) -> pd.DataFrame:
    """One CoinGecko-format CSV with ``coins * snapshots`` rows (many dates); returns it."""
    panel = generate_panel(coins=coins, snapshots=snapshots, seed=seed, start="2022-01-01")
    panel.to_csv(path, index=False)
    return panel


def run(scale: Scale, results: Results) -> None:
    with tempfile.TemporaryDirectory(prefix="liquidity-bench-ingest-") as tmp:
        root = Path(tmp)
        big = root / "coin_gecko_bench.csv"
        t0 = time.perf_counter()
        panel = write_file(big, coins=scale.ingest_coins, snapshots=scale.ingest_snapshots)
        n = len(panel)
        results.note(
            "ingest",
            f"generated {big.name}: {n:,} rows, "
            f"{panel['date'].nunique()} dates, {big.stat().st_size / 1e6:.1f} MB "
            f"in {time.perf_counter() - t0:.1f}s",
        )
        with pg_schema("bench_ingest") as (url, schema):
            _psql_reference(big, schema, n, results)
            settings = make_settings(root / "pg", url)
            db.upgrade(db.get_engine(url))
            _timed_ingest(
                big,
                settings,
                n,
                "ingest_postgres",
                results,
                reference="ingest_psql_copy",
                goal=">= 0.5",
            )
            _dag_latency(scale, settings, panel, results)
        sqlite = make_settings(root / "sq", f"sqlite:///{root / 'sq' / 'liquidity.db'}")
        db.upgrade(db.get_engine(sqlite.database_url))
        _timed_ingest(big, sqlite, n, "ingest_sqlite", results)
        db.get_engine(sqlite.database_url).dispose()


def _psql_reference(path: Path, schema: str, n: int, results: Results) -> None:
    table = REF_TABLE
    ddl = REF_DDL.format(schema=schema, table=table)
    subprocess.run(psql_command(ddl), env=psql_env(), check=True, capture_output=True)
    copy = f"\\copy \"{schema}\".{table} FROM '{path}' WITH (FORMAT csv, HEADER true)"
    t0 = time.perf_counter()
    proc = subprocess.run(psql_command(copy), env=psql_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"psql \\copy failed: {proc.stderr.strip()}")
    results.add(
        "ingest_psql_copy",
        n / seconds,
        "rows/s",
        seconds=round(seconds, 3),
        rows=n,
        note=f"{seconds:.2f}s; the file's columns, PK (date, coin)",
    )


def _timed_ingest(path: Path, settings, n: int, name: str, results: Results, **kw):
    t0, cpu0 = time.perf_counter(), time.process_time()
    (outcome,) = ingest_paths([path], settings=settings)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if outcome.status != "loaded" or outcome.rows_loaded != n:
        raise RuntimeError(f"{name}: expected {n} rows loaded, got {outcome.as_dict()}")
    return results.add(
        name,
        n / seconds,
        "rows/s",
        seconds=round(seconds, 3),
        rows=n,
        cpu_seconds=round(cpu, 3),
        note=f"{seconds:.2f}s for {n:,} rows (client CPU {cpu:.2f}s)",
        **kw,
    )


def _drop(panel: pd.DataFrame, coins: int, k: int) -> tuple[pd.DataFrame, str]:
    """The newest snapshot's rows of ``coins`` coins, dated ``k`` days after it."""
    last = panel["date"].max()
    rows = panel[panel["date"] == last].head(coins).copy()
    date = (pd.Timestamp(last) + pd.Timedelta(days=k)).strftime("%Y-%m-%d")
    rows["date"] = date
    return rows, date


def _land(rows: pd.DataFrame, folder: Path, date: str) -> Path:
    path = folder / f"coin_gecko_{date}.csv"
    part = path.with_name(path.name + ".part")
    rows.to_csv(part, index=False)
    os.replace(part, path)
    return path


def _count_at(url: str, date: str) -> int:
    """Rows stored at ``date`` seen from a new connection (not the ingest's own)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT COUNT(*) FROM market_snapshots WHERE snapshot_ts = :ts"),
                {"ts": pd.Timestamp(date, tz="UTC").to_pydatetime()},
            ).scalar_one()
    finally:
        engine.dispose()


def _dag_latency(scale: Scale, settings, panel: pd.DataFrame, results: Results) -> None:
    latencies = []
    for k in range(1, DROPS + 1):
        rows, date = _drop(panel, scale.drop_coins, k)
        _land(rows, settings.ingest_dir, date)
        t0 = time.perf_counter()
        for path in list_ready_files(settings):
            ingest_one(path, settings)
        seen = _count_at(settings.database_url, date)
        latencies.append(time.perf_counter() - t0)
        if seen != len(rows):
            raise RuntimeError(f"drop {date}: {seen} rows queryable, expected {len(rows)}")
    results.add(
        "ingest_dag_latency",
        statistics.median(latencies),
        "s",
        note=(
            f"median of {DROPS} drops of {scale.drop_coins:,} rows into a store of "
            f"{len(panel):,}; measured in process via list_ready_files + ingest_one (the "
            "ingest DAG's task path), settle time 0, no scheduler delay"
        ),
        runs=[round(v, 4) for v in latencies],
    )
    if scale.dag_test:
        try:
            _dag_test_latency(scale, settings, panel, results)
        except Exception as exc:  # the in-process figure above stands; say why this one is missing
            results.note(
                "ingest", f"ingest_dag_test_latency not measured: {type(exc).__name__}: {exc}"
            )


def _dag_test_latency(scale: Scale, settings, panel: pd.DataFrame, results: Results) -> None:
    if not (REPO / "dags" / f"{DAG_ID}.py").exists():
        results.note(
            "ingest", f"ingest_dag_test_latency not measured: dags/{DAG_ID}.py is not in the tree"
        )
        return
    home = Path(tempfile.mkdtemp(prefix="liquidity-bench-airflow-"))
    try:
        env = airflow_env(home, settings)
        migrate = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if migrate.returncode != 0:
            results.note(
                "ingest",
                "ingest_dag_test_latency not measured: airflow db migrate "
                f"failed: {migrate.stderr.strip()[-300:]}",
            )
            return
        rows, date = _drop(panel, scale.drop_coins, DROPS + 1)
        _land(rows, settings.ingest_dir, date)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(REPO / "tests" / "support" / "dag_runner.py"), DAG_ID],
            env=env,
            cwd=str(home),
            capture_output=True,
            text=True,
            timeout=900,
        )
        seen = _count_at(settings.database_url, date)
        seconds = time.perf_counter() - t0
        marker = [ln for ln in proc.stdout.splitlines() if ln.startswith("DAG_RESULT ")]
        if seen != len(rows):
            tail = (proc.stdout + proc.stderr)[-600:]
            results.note(
                "ingest",
                f"ingest_dag_test_latency not measured: after dag.test() "
                f"{seen} of {len(rows)} rows queryable ({marker or tail})",
            )
            return
        results.add(
            "ingest_dag_test_latency",
            seconds,
            "s",
            note="real dag.test() of the ingest DAG in a fresh Airflow process "
            "(includes interpreter start, Airflow import and DAG parse)",
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
