"""Static checks of dags/: they import cleanly, cheaply, and without touching storage.

Running the DAGs for real is in test_ingest_dag.py and test_retrain_dag.py.
"""

import json
import subprocess
import sys

import pytest
from support.paths import REPO

from devtools import airflow_env

EXPECTED = {
    "liquidity_ingest": "dags/liquidity_ingest.py",
    "liquidity_retrain": "dags/liquidity_retrain.py",
    "liquidity_forecast": "dags/liquidity_forecast.py",
}

# Parses the DAG folder in a fresh interpreter whose liquidity database is unreachable:
# a DAG file that touched storage at parse time would fail to import.
PARSE_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
from airflow.settings import DAGS_FOLDER
before = set(sys.modules)
t1 = time.perf_counter()
bag = DagBag(dag_folder=DAGS_FOLDER)
t2 = time.perf_counter()
heavy = sorted(m for m in set(sys.modules) - before
               if m.split(".")[0] in ("sklearn", "matplotlib", "flask", "psycopg2")
               or m in ("liquidity_core.training.cycle", "liquidity_core.ingest"))
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "fileloc": dag.fileloc,
        "schedule": type(dag.timetable).__name__,
        "catchup": dag.catchup,
        "tags": sorted(dag.tags),
        "max_active_runs": dag.max_active_runs,
        "doc": bool(dag.doc_md or dag.description),
        "start_tz": str(dag.start_date.tzinfo) if dag.start_date else None,
        "edges": sorted([t.task_id, d] for t in dag.tasks for d in t.downstream_task_ids),
        "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
        "downstream": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
        "retries": {t.task_id: t.retries for t in dag.tasks},
        "queues": {t.task_id: t.queue for t in dag.tasks},
    }
print("PARSED " + json.dumps({"errors": bag.import_errors, "dags": dags, "heavy": heavy,
                               "parse_seconds": t2 - t1}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_parse")
    env = airflow_env(home)
    env["LIQUIDITY_DATABASE_URL"] = "postgresql+psycopg2://nobody@127.0.0.1:1/unreachable"
    env["LIQUIDITY_MODEL_DIR"] = str(home / "no-such-models")
    env["LIQUIDITY_INGEST_DIR"] = str(home / "no-such-ingest")
    proc = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PARSED ")]
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[-1][len("PARSED ") :])


def test_no_import_errors(parsed):
    assert parsed["errors"] == {}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_expected_dag_is_well_formed(parsed, dag_id):
    assert dag_id in parsed["dags"], sorted(parsed["dags"])
    dag = parsed["dags"][dag_id]
    assert dag["fileloc"].endswith(EXPECTED[dag_id])
    assert dag["catchup"] is False
    assert dag["tags"], "every DAG is tagged"
    assert dag["doc"], "every DAG has a docstring"
    assert dag["max_active_runs"] == 1, "overlapping runs must not run twice at once"
    assert dag["start_tz"] == "UTC"
    assert all(r >= 1 for r in dag["retries"].values()), dag["retries"]


# Each task's upstream tasks. Ingest: the drops listed, one mapped ingest per file, one
# publish of the rows added. Retrain: a straight line to publish_and_record, whose result
# both the Asset update and the report wait for.
UPSTREAM = {
    "liquidity_ingest": {
        "list_files": [],
        "ingest_file": ["list_files"],
        "publish": ["ingest_file"],
    },
    "liquidity_retrain": {
        "check_data": [],
        "train_challenger": ["check_data"],
        "compare_with_champion": ["train_challenger"],
        "publish_and_record": ["compare_with_champion"],
        "announce_champion": ["publish_and_record"],
        "write_report": ["publish_and_record"],
    },
    "liquidity_forecast": {
        "forecast": [],
        "monitor": ["forecast"],
        "request_retrain": ["monitor"],
    },
}


@pytest.mark.parametrize("dag_id", sorted(UPSTREAM))
def test_task_edges(parsed, dag_id):
    dag = parsed["dags"][dag_id]
    assert dag["upstream"] == UPSTREAM[dag_id]
    downstream = {
        task: sorted(t for t, ups in UPSTREAM[dag_id].items() if task in ups)
        for task in UPSTREAM[dag_id]
    }
    assert dag["downstream"] == downstream
    assert dag["edges"] == sorted(
        [up, task] for task, ups in UPSTREAM[dag_id].items() for up in ups
    )


def test_heavy_retrain_tasks_run_on_the_training_queue(parsed):
    """Training has its own Celery queue (docs/operations.md, "Scaling"); light tasks stay
    on the default queue."""
    queues = parsed["dags"]["liquidity_retrain"]["queues"]
    heavy = ["check_data", "train_challenger", "compare_with_champion", "publish_and_record"]
    assert {t: queues[t] for t in heavy} == dict.fromkeys(heavy, "training")
    assert {q for t, q in queues.items() if t not in heavy} == {"default"}
    assert set(parsed["dags"]["liquidity_ingest"]["queues"].values()) == {"default"}


def test_schedules_follow_the_market_data_asset(parsed):
    assert parsed["dags"]["liquidity_forecast"]["schedule"] == "AssetTriggeredTimetable"
    assert parsed["dags"]["liquidity_retrain"]["schedule"] == "AssetOrTimeSchedule"


def test_parsing_loads_no_heavy_modules(parsed):
    assert parsed["heavy"] == [], "DAG files must not import these at top level"


def test_dag_files_are_thin():
    """Each task body is a short call into liquidity_core; no pandas/sklearn/SQL in DAGs."""
    for path in (REPO / "dags").glob("*.py"):
        text = path.read_text()
        for banned in ("import pandas", "import sklearn", "from sklearn", "sqlalchemy", "SELECT "):
            assert banned not in text, f"{path.name} contains {banned!r}"
