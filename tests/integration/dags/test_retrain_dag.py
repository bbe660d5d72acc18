"""The retrain DAG run for real with ``dag.test()`` on a migrated Airflow metadata DB."""

import pytest

from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import write_demo_drops
from liquidity_core.registry import champion as registry
from liquidity_core.reporting.report import report_path
from liquidity_core.store import db

FAST = {"grid": "fast", "candidates": False}


def assert_pointer_matches_file(settings):
    pointer = registry.read_current_pointer(settings.model_dir)
    path = settings.model_dir / pointer["artifact_path"]
    assert registry.sha256_file(path) == pointer["sha256"]
    champion = registry.get_champion(db.get_engine(settings.database_url))
    assert champion["version"] == pointer["version"]
    assert champion["artifact_sha256"] == pointer["sha256"]
    return pointer


@pytest.mark.slow
def test_first_run_promotes_second_records_a_non_promotion(settings, engine, run_dag, tmp_path):
    write_demo_drops(tmp_path / "drops", coins=30, snapshots=24, seed=5, start="2024-01-01")
    ingest_paths([tmp_path / "drops"], settings=settings)

    first = run_dag("liquidity_retrain", settings, conf=FAST)
    assert first.state == "success", first.log[-5000:]
    assert first.tasks["announce_champion"] == "success", first.tasks
    pointer = assert_pointer_matches_file(settings)
    (v1,) = registry.list_versions(engine)
    assert v1["status"] == "champion" and v1["version"] == pointer["version"]
    assert v1["run_id"].startswith("manual__")
    assert not list((settings.model_dir / "staging").glob("*/*")), "staging is cleaned up"
    assert first.tasks["write_report"] == "success", first.tasks
    assert pointer["version"] in report_path(settings).read_text(encoding="utf-8")

    second = run_dag("liquidity_retrain", settings, conf=FAST)
    assert second.state == "success", second.log[-5000:]
    assert second.tasks["publish_and_record"] == "success"
    assert second.tasks["announce_champion"] == "skipped", second.tasks
    newest, older = registry.list_versions(engine)
    assert older["version"] == v1["version"] and older["status"] == "champion"
    assert newest["status"] == "rejected"
    assert "no new data since the champion was trained" in newest["reason"]
    assert newest["champion_version"] == v1["version"]
    assert assert_pointer_matches_file(settings)["version"] == v1["version"]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # one backend: no writes
def test_too_little_data_skips_with_the_counts(settings, engine, run_dag, sample_files):
    ingest_paths(sample_files, settings=settings)
    result = run_dag("liquidity_retrain", settings, conf=FAST)
    assert result.tasks["check_data"] == "skipped", result.tasks
    assert all(state == "skipped" for state in result.tasks.values()), result.tasks
    assert "2 snapshots" in result.log and "needs at least" in result.log
    assert registry.list_versions(engine) == []
