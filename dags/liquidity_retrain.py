"""Retrain the liquidity model every night and promote it only when it forecasts better.

Runs at 02:00 UTC, and also when new market data lands (the Asset
``liquidity://market_snapshots``) or the forecast DAG's monitor requests a retrain
(``liquidity://retrain_requested``, after an alert).

``check_data`` loads the snapshots up to the run's data interval end and checks there
are enough snapshot times for the folds and the holdout; with too few the run is skipped
with the counts as the reason. ``train_challenger`` grid-searches the forest with
time-ordered folds on the tuning rows only and scores it and the baselines on the
holdout. ``compare_with_champion`` re-scores the champion's verified artifact on the same
holdout and decides (a corrupt champion fails the run and stays champion).
``publish_and_record`` writes the version folder and the ``model_versions`` row (every
run) and, on promotion, switches ``current.json``. ``announce_champion`` updates the Asset
``liquidity://champion_model`` on promotion and is skipped otherwise; ``write_report``
rewrites the EDA and model report (``liquidity report``) that the web app serves.

Large objects (features, the fitted model) pass between tasks as files under
``MODEL_DIR/staging/<run id>/``; XCom only carries small summaries. Trigger by hand with
conf ``{"grid": "fast"}`` for a quick run or ``{"promote": false}`` to only evaluate.

The tasks that hold the panel, the features or the models in memory run on the Celery
queue ``training``, so heavy nights go to the workers started with
``airflow celery worker --queues training`` (docker-compose: ``airflow-worker-training``);
the others run on the default queue.
All the work is in ``liquidity_core.training.cycle``; this file only wires tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from liquidity_core.dag_args import retry_policy

CHAMPION_MODEL = Asset("liquidity://champion_model")
#: Celery queue of the memory- and CPU-heavy tasks (docs/operations.md, "Scaling").
TRAINING_QUEUE = "training"
MARKET_SNAPSHOTS = Asset("liquidity://market_snapshots")
RETRAIN_REQUESTED = Asset("liquidity://retrain_requested")


@dag(
    dag_id="liquidity_retrain",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
        assets=MARKET_SNAPSHOTS | RETRAIN_REQUESTED,
    ),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["liquidity", "training"],
    default_args=retry_policy(2, first=timedelta(minutes=1), most=timedelta(minutes=10)),
    params={
        "grid": Param("default", enum=["default", "fast"], description="forest grid"),
        "promote": Param(True, type="boolean", description="false: evaluate only"),
        "candidates": Param(True, type="boolean", description="also score HGB and SVR"),
    },
    doc_md=__doc__,
)
def liquidity_retrain():
    """Nightly champion/challenger retraining."""

    @task(queue=TRAINING_QUEUE)
    def check_data(run_id=None, data_interval_end=None) -> dict:
        """Stage features for this run, or skip when there are too few snapshots."""
        from liquidity_core import errors, settings
        from liquidity_core.training import cycle as train

        try:
            return train.prepare_data(
                settings.load_settings(), run_id=run_id, until=data_interval_end
            )
        except errors.NotEnoughData as exc:
            raise AirflowSkipException(str(exc)) from None

    @task(queue=TRAINING_QUEUE)
    def train_challenger(prepared: dict, params=None) -> dict:
        """Grid-search the forest on time-ordered folds; score it on the holdout."""
        from liquidity_core import settings
        from liquidity_core.training import cycle as train

        return train.train_challenger(
            settings.load_settings(),
            run_id=prepared["run_id"],
            grid=params["grid"],
            candidates=params["candidates"],
        )

    @task(queue=TRAINING_QUEUE)
    def compare_with_champion(challenger: dict, run_id=None, params=None) -> dict:
        """Re-score the verified champion on the same holdout and decide."""
        from liquidity_core import settings
        from liquidity_core.training import cycle as train

        return train.compare_or_reject(
            settings.load_settings(), run_id=run_id, promote=params["promote"]
        )

    @task(queue=TRAINING_QUEUE)
    def publish_and_record(decision: dict, run_id=None) -> dict:
        """Record the run in model_versions; switch current.json on promotion."""
        from liquidity_core import settings
        from liquidity_core.training import cycle as train

        return train.publish_result(settings.load_settings(), run_id=run_id)

    @task(outlets=[CHAMPION_MODEL])
    def announce_champion(result: dict) -> str:
        """Update the champion_model Asset when a new champion was published."""
        if not result["promoted"]:
            raise AirflowSkipException(f"{result['version']}: {result['reason']}")
        return result["version"]

    @task
    def write_report(result: dict) -> str:
        """Rewrite the EDA and model report that the web app serves at /report."""
        from liquidity_core import settings
        from liquidity_core.reporting import report

        return str(report.build_report(settings.load_settings()))

    published = publish_and_record(compare_with_champion(train_challenger(check_data())))
    announce_champion(published)
    write_report(published)


liquidity_retrain()
