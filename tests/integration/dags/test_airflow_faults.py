"""Airflow behaviour under faults: a task that dies is re-run safely.

(``max_active_runs=1`` is asserted in test_dags.py; running each DAG twice on the same
data is in test_ingest_dag.py and test_retrain_dag.py.)

- The ingest DAG's task body (``ingest_one``) is SIGKILLed mid-load of a 50,000-row file,
  as when a worker dies; the next DAG run (``dag.test()`` on a migrated metadata DB)
  loads the file exactly once and moves it; one more run adds nothing.
- The retrain DAG's ``publish_and_record`` task body runs twice for the same run id (a
  retry after the commit, when the worker died before reporting success): one
  ``model_versions`` row, the same answer, the pointer on the champion.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from support.faults import liquidity_env, write_big_csv
from support.paths import REPO

from devtools import airflow_env
from liquidity_core.registry import champion as registry
from liquidity_core.store import db

INGEST_ONE = (
    "import json,sys; from liquidity_core.settings import load_settings; "
    "from liquidity_core.ingest import ingest_one; "
    "print(json.dumps(ingest_one(sys.argv[1], load_settings())))"
)


def _counts(settings) -> tuple[int, int]:
    with db.transaction(db.get_engine(settings.database_url)) as conn:
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM market_snapshots")).scalar_one()
        loaded = conn.execute(
            sa.text("SELECT COUNT(*) FROM ingest_files WHERE status = 'loaded'")
        ).scalar_one()
    return rows, loaded


@pytest.mark.slow
def test_a_killed_ingest_task_is_rerun_safely_by_the_dag(settings, engine, run_dag):
    path = settings.ingest_dir / "big.csv"
    n = write_big_csv(path, coins=500, snapshots=100)
    proc = subprocess.Popen(
        [sys.executable, "-c", INGEST_ONE, str(path)],
        env=liquidity_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    delay = random.uniform(1.5, 4.0)
    time.sleep(delay)
    finished = proc.poll() is not None
    proc.kill()
    proc.communicate(timeout=30)
    rows, loaded = _counts(settings)
    assert (rows, loaded) in ((0, 0), (n, 1)), (rows, loaded)  # all or nothing
    if not path.exists():  # it completed before the kill: drop the same bytes again
        write_big_csv(path, coins=500, snapshots=100)
    print(f"\nworker killed after {delay:.1f} s ({'finished' if finished else 'mid-load'})")

    first = run_dag("liquidity_ingest", settings)
    assert first.state == "success", first.log[-4000:]
    assert _counts(settings) == (n, 1)
    assert not path.exists()
    again = run_dag("liquidity_ingest", settings)
    assert again.state == "success", again.log[-4000:]
    assert again.tasks["publish"] == "skipped"
    assert _counts(settings) == (n, 1)


PUBLISH_TWICE = """
import json
from airflow.dag_processing.dagbag import DagBag
from airflow.settings import DAGS_FOLDER
dag = DagBag(dag_folder=DAGS_FOLDER).dags["liquidity_retrain"]
run = lambda task_id, *a, **k: dag.get_task(task_id).python_callable(*a, **k)
params = {"grid": "fast", "candidates": False, "promote": True}
rid = "scheduled__retry-test"
prepared = run("check_data", run_id=rid, data_interval_end=None)
challenger = run("train_challenger", prepared, params=params)
decision = run("compare_with_champion", challenger, run_id=rid, params=params)
first = run("publish_and_record", decision, run_id=rid)
second = run("publish_and_record", decision, run_id=rid)   # the retry
print("PUBLISHED " + json.dumps([first, second], default=str))
"""


def test_publish_task_retried_after_its_commit_records_once(tmp_path):
    from support.webapp import database, ingest_demo, settings_for

    with database("sqlite", tmp_path) as url:
        store = settings_for(tmp_path / "store", url)
        db.upgrade(db.get_engine(url))
        ingest_demo(store, snapshots=30)
        env = {
            **liquidity_env(store),
            **{
                k: v
                for k, v in airflow_env(tmp_path / "airflow", store).items()
                if k.startswith("AIRFLOW")
            },
        }
        proc = subprocess.run(
            [sys.executable, "-c", PUBLISH_TWICE],
            env=env,
            text=True,
            capture_output=True,
            timeout=600,
            cwd=str(REPO),
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PUBLISHED ")]
        assert lines, proc.stdout[-2000:] + proc.stderr[-4000:]
        first, second = json.loads(lines[-1][len("PUBLISHED ") :])
        assert first == second
        engine = db.get_engine(url)
        versions = registry.list_versions(engine)
        assert [v["version"] for v in versions] == [first["version"]]
        champion = registry.get_champion(engine)
        if first["promoted"]:
            pointer = registry.read_current_pointer(store.model_dir)
            assert pointer["version"] == champion["version"] == first["version"]
