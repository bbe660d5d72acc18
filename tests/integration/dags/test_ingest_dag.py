"""dags/liquidity_ingest.py, run for real with dag.test() (the ``run_dag`` fixture)."""

import shutil

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.slow


def _count(engine, sql):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


@pytest.fixture
def sqlite_only(settings):
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("one backend is enough for the DAG run that finds nothing")


def test_dag_loads_moves_and_publishes(run_dag, settings, engine, sample_files):
    for f in sample_files:
        shutil.copy(f, settings.ingest_dir / f.name)
    (settings.ingest_dir / "bad.csv").write_text("foo,bar\n1,2\n", encoding="utf-8")
    (settings.ingest_dir / "half.csv.part").write_text("coin,symbol\n", encoding="utf-8")

    result = run_dag("liquidity_ingest", settings)

    assert result.state == "success", result.log[-4000:]
    assert result.tasks["list_files"] == "success"
    mapped = {k: v for k, v in result.tasks.items() if k.startswith("ingest_file[")}
    assert len(mapped) == 3 and set(mapped.values()) == {"success"}
    assert result.tasks["publish"] == "success"  # rows were added: the Asset is updated
    assert _count(engine, "SELECT COUNT(*) FROM market_snapshots") == 497 + 496
    processed = sorted(p.name for p in (settings.ingest_dir / "processed").iterdir())
    assert processed == [f.name for f in sample_files]
    quarantined = sorted(p.name for p in (settings.ingest_dir / "quarantine").iterdir())
    assert quarantined == ["bad.csv", "bad.csv.reason.txt"]
    reason = (settings.ingest_dir / "quarantine" / "bad.csv.reason.txt").read_text()
    assert "unknown header" in reason and "coin,symbol,price" in reason
    assert (settings.ingest_dir / "half.csv.part").exists()  # still being written: left alone

    # A second run finds nothing new: the publish task is skipped (no Asset event).
    shutil.copy(sample_files[0], settings.ingest_dir / sample_files[0].name)
    again = run_dag("liquidity_ingest", settings)
    assert again.state == "success", again.log[-4000:]
    assert again.tasks["publish"] == "skipped"
    assert _count(engine, "SELECT COUNT(*) FROM ingest_files WHERE status = 'duplicate'") == 1
    assert (settings.ingest_dir / "processed" / f"{sample_files[0].stem}.1.csv").exists()


def test_dag_with_no_files_skips_publish(run_dag, settings, engine, sqlite_only):
    result = run_dag("liquidity_ingest", settings)
    assert result.state == "success", result.log[-4000:]
    assert result.tasks["publish"] == "skipped"
    assert _count(engine, "SELECT COUNT(*) FROM ingest_files") == 0
