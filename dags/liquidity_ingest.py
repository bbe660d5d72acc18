"""Ingest market-data CSV drops into ``market_snapshots`` every five minutes.

``list_files`` finds the ``*.csv`` files in ``LIQUIDITY_INGEST_DIR`` that are no longer
being written (``*.part``/``*.tmp`` and files modified in the last few seconds are left
alone). ``ingest_file`` loads each one as a mapped task, exactly once, and moves it to
``processed/`` or ``quarantine/`` (with a reason file). ``publish`` updates the Asset
``liquidity://market_snapshots`` when rows were added, and is skipped otherwise, so the
retraining DAG only hears about real new data.

All the work is in ``liquidity_core.ingest``; this file only wires tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from liquidity_core.dag_args import retry_policy

MARKET_SNAPSHOTS = Asset("liquidity://market_snapshots")


@dag(
    dag_id="liquidity_ingest",
    schedule=timedelta(minutes=5),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["liquidity", "ingest"],
    default_args=retry_policy(3, first=timedelta(seconds=20), most=timedelta(minutes=5)),
    doc_md=__doc__,
)
def liquidity_ingest():
    """Ingest the CSV drops that are ready, then announce new rows."""

    @task
    def list_files() -> list[str]:
        """The CSV files in the ingest folder that are ready to load."""
        from liquidity_core import ingest, settings

        return ingest.list_ready_files(settings.load_settings())

    @task
    def ingest_file(path: str) -> dict:
        """Load one file exactly once and move it to processed/ or quarantine/."""
        from liquidity_core import ingest, settings

        return ingest.ingest_one(path, settings.load_settings())

    @task(outlets=[MARKET_SNAPSHOTS], trigger_rule="none_failed")
    def publish(results) -> int:
        """Update the market_snapshots Asset when rows were added; skip otherwise."""
        from liquidity_core import ingest

        if not (added := ingest.rows_added(results)):
            raise AirflowSkipException("no new rows: the market_snapshots Asset is unchanged")
        return added

    publish(ingest_file.expand(path=list_files()))


liquidity_ingest()
