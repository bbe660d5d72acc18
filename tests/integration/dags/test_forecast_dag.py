"""The forecast DAG run for real with ``dag.test()`` on a migrated Airflow metadata DB."""

import pandas as pd
import pytest
import sqlalchemy as sa

from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import write_demo_drops
from liquidity_core.training.cycle import run_training_cycle


def _forecast_count(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT COUNT(*) FROM forecasts")).scalar_one())


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_forecast_then_monitor_and_alert_requests_a_retrain(settings, engine, run_dag, tmp_path):
    coins = 10
    drops = write_demo_drops(tmp_path / "drops", coins=coins, snapshots=30, seed=4)
    ingest_paths(drops[:24], settings=settings)
    assert run_training_cycle(settings, grid="fast", candidates=False)["promoted"]
    ingest_paths(drops[24:26], settings=settings)

    calm = run_dag("liquidity_forecast", settings)
    assert calm.state == "success", calm.log[-5000:]
    assert calm.tasks == {
        "forecast": "success",
        "monitor": "success",
        "request_retrain": "skipped",
    }
    assert _forecast_count(engine) == coins * 3

    # Turnover jumps up and down at each new snapshot: the alert must fire.
    for i, path in enumerate(drops[26:]):
        frame = pd.read_csv(path)
        if i % 2 == 0:
            frame["24h_volume"] = (frame["24h_volume"] * 25).round()
        frame.to_csv(path, index=False)
    ingest_paths(drops[26:], settings=settings)
    alarmed = run_dag("liquidity_forecast", settings)
    assert alarmed.state == "failed", alarmed.log[-5000:]
    assert alarmed.tasks == {
        "forecast": "success",
        "monitor": "failed",
        "request_retrain": "success",
    }
    assert _forecast_count(engine) == coins * 7
    assert "coverage" in alarmed.log and "last 3 scored snapshots" in alarmed.log
    assert "ALERT: " in alarmed.log, "the on_failure_callback went through alerts.notify"
