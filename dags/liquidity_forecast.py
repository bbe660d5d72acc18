"""Forecast every new snapshot with the champion, then check how earlier forecasts did.

Runs whenever the ingest DAG updates the Asset ``liquidity://market_snapshots`` and
whenever the retrain DAG publishes a new champion (``liquidity://champion_model``): a new
champion scores the stored snapshots it has not scored yet.
``forecast`` stores the champion's forecast of every coin's next snapshot for each
snapshot time it has not scored yet (idempotent), with the feature drift of those
snapshots. ``monitor`` joins the stored forecasts with what then happened and fails, with
the numbers as the reason, when the champion's realized skill over its last 3 scored
snapshots is below 0 or its interval coverage is outside nominal ± 10 points; its
``on_failure_callback`` sends the reason through ``liquidity_core.monitoring.alerts.notify``.
``request_retrain`` then updates the Asset ``liquidity://retrain_requested``, which
``liquidity_retrain`` is scheduled on (it is skipped when no alert fired). It is a
teardown, so the run's state is the monitor's: a run with an alert is failed.

All the work is in ``liquidity_core.monitoring.forecasts`` and ``.monitoring``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

MARKET_SNAPSHOTS = Asset("liquidity://market_snapshots")
CHAMPION_MODEL = Asset("liquidity://champion_model")
RETRAIN_REQUESTED = Asset("liquidity://retrain_requested")


def _alert(context) -> None:
    """Send a failed task's reason through the project's one alert hook."""
    from liquidity_core.monitoring import alerts

    alerts.on_task_failure(context)


@dag(
    dag_id="liquidity_forecast",
    schedule=MARKET_SNAPSHOTS | CHAMPION_MODEL,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["liquidity", "monitoring"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
)
def liquidity_forecast():
    """Store the champion's forecasts of new snapshots; monitor realized accuracy."""

    @task
    def forecast() -> dict:
        """Score the snapshots the champion has not scored yet; record their drift."""
        from liquidity_core import settings
        from liquidity_core.monitoring import forecasts

        if (done := forecasts.forecast_new_snapshots(settings.load_settings()))["model_version"]:
            return done
        raise AirflowSkipException(done["reason"])  # no model published yet

    @task(on_failure_callback=_alert)
    def monitor(scored: dict) -> dict:
        """Fail with the numbers when the champion's realized skill or coverage alerts."""
        from liquidity_core import settings
        from liquidity_core.monitoring import accuracy as monitoring

        try:
            return monitoring.check(settings.load_settings())
        except monitoring.MonitoringAlert as exc:
            raise AirflowFailException(str(exc)) from None  # no retry: the numbers stand

    @task(outlets=[RETRAIN_REQUESTED])
    def request_retrain() -> str:
        """Update the retrain_requested Asset when the alert fired; skip otherwise."""
        from liquidity_core import settings
        from liquidity_core.monitoring import accuracy as monitoring

        if not (reason := monitoring.alert_reason(settings.load_settings())):
            raise AirflowSkipException("no alert: no retrain requested")
        return reason

    monitor(forecast()) >> request_retrain().as_teardown()


liquidity_forecast()
