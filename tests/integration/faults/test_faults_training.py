"""Training and publishing under faults, with real processes and real files.

- ``liquidity train`` SIGKILLed at random moments: the champion row and ``current.json``
  stay byte-identical, the served model still verifies; a later run succeeds.
- A training process that kills itself (SIGKILL) at the two boundaries of publishing:
  after the version folder is written but before the ``model_versions`` row commits, and
  after the commit of a promotion but before ``current.json`` is switched. Readers keep
  a consistent view (the old pointer still verifies); the next run reconciles.
- A tampered champion artifact (its bytes no longer match the ``model_versions`` sha256)
  is a pickle whose unpickling would create a marker file. The web app, the CLI
  (``predict``, ``rollback``, ``train``) and the retrain DAG's path all refuse it, and the
  marker never appears: it was never unpickled.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest
from support.faults import (
    REPO,
    booby_trapped_pickle,
    kill9,
    liquidity_env,
    run_cli,
    start_cli,
    tree_digest,
)
from support.webapp import copy_store, database, ingest_demo, trained_store

from liquidity_core.registry import champion as registry
from liquidity_core.store import db

FAULTS: dict[str, int] = {}


def _count(fault: str, n: int = 1) -> None:
    FAULTS[fault] = FAULTS.get(fault, 0) + n


@pytest.fixture(scope="module", autouse=True)
def _report_faults():
    yield
    print(f"\ntraining faults injected and survived: {FAULTS} (total {sum(FAULTS.values())})")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A SQLite store with the demo panel and one trained champion, built once."""
    root = tmp_path_factory.mktemp("template")
    return trained_store(root, f"sqlite:///{root / 'liquidity.db'}")


@pytest.fixture
def store(template, tmp_path):
    """A private copy of the template store (database and MODEL_DIR)."""
    return copy_store(template, tmp_path / "store")


@pytest.fixture
def pg_store(tmp_path):
    """The same, on PostgreSQL (trained from scratch)."""
    with database("postgresql", tmp_path) as url:
        yield trained_store(tmp_path / "store", url)


def champion_state(settings) -> dict:
    engine = db.get_engine(settings.database_url)
    pointer_path = settings.model_dir / "current.json"
    return {
        "champion": registry.get_champion(engine),
        "pointer": pointer_path.read_bytes() if pointer_path.exists() else None,
        "versions": {v["version"]: v["status"] for v in registry.list_versions(engine)},
    }


def leftovers(settings) -> dict:
    """Folders a run leaves behind: staging dirs, and version dirs without a row."""
    engine = db.get_engine(settings.database_url)
    recorded = {v["version"] for v in registry.list_versions(engine)}
    staging = settings.model_dir / "staging"
    versions = settings.model_dir / "versions"
    return {
        "staging": sorted(p.name for p in staging.iterdir()) if staging.exists() else [],
        "orphan_versions": sorted(p.name for p in versions.iterdir() if p.name not in recorded),
        "tmp_files": sorted(str(p) for p in settings.model_dir.rglob("*.tmp")),
    }


def _train_script(settings, run_id: str, mode: str | None = None, **env) -> tuple:
    cmd = [sys.executable, str(REPO / "tests" / "support" / "faults.py"), "train", run_id]
    if mode:
        cmd.append(mode)
    proc = subprocess.run(
        cmd,
        env=liquidity_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(REPO),
    )
    return proc


# --- kill -9 during training ------------------------------------------------------------------


@pytest.mark.slow
def test_kill9_during_training_leaves_champion_and_pointer_untouched(store):

    ingest_demo(store, snapshots=36)  # new data: tonight's run has something to learn
    before = champion_state(store)
    before_tree = tree_digest(store.model_dir / "versions")
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    delays = [1.0 + 2.0 * (i + rng.random()) for i in range(3)]  # 1 .. 7 s
    schedule = []
    for delay in delays:
        proc = start_cli(store, "train", "--grid", "fast", "--no-candidates")
        time.sleep(delay)
        finished = proc.poll() is not None
        kill9(proc)
        _count("kill -9 during liquidity train")
        schedule.append((round(delay, 2), "finished" if finished else "killed"))
        if finished:
            break  # the run published: the state legitimately changed
        now = champion_state(store)
        # The champion row and current.json are byte-identical. (A run killed just after
        # its commit may have recorded a non-promoted challenger: allowed.)
        assert now["champion"] == before["champion"] and now["pointer"] == before["pointer"]
        assert {v: now["versions"][v] for v in before["versions"]} == before["versions"]
        assert all(
            st == "rejected" for v, st in now["versions"].items() if v not in before["versions"]
        )
        tree = tree_digest(store.model_dir / "versions")
        assert {k: tree.get(k) for k in before_tree} == before_tree
        assert registry.load_verified_model(store).version == before["champion"]["version"]
    print(f"\nkill -9 schedule (seed {seed}): {schedule}")
    # The next run completes and leaves the pointer on the database champion.
    proc = run_cli(store, "train", "--grid", "fast", "--no-candidates", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    engine = db.get_engine(store.database_url)
    pointer = registry.read_current_pointer(store.model_dir)
    assert pointer["version"] == registry.get_champion(engine)["version"]
    assert registry.load_verified_model(store).sha256 == pointer["sha256"]
    print(f"leftovers after the kills and one good run: {leftovers(store)}")


# --- kill at the publish boundaries -------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_killed_after_commit_before_pointer_switch_then_reconciled(backend, request):
    """SIGKILL between the ``model_versions`` commit of a promotion and ``current.json``."""
    store = request.getfixturevalue("store" if backend == "sqlite" else "pg_store")
    before = champion_state(store)
    old = before["champion"]["version"]
    # Same data as the champion's (which beat persistence) and a margin of -1: this run
    # promotes its challenger, so it reaches the pointer switch.
    proc = _train_script(
        store, "killed-before-pointer", "--kill-before-pointer", LIQUIDITY_PROMOTION_MARGIN="-1"
    )
    _count("SIGKILL between the champion commit and the pointer switch")
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "KILLING MYSELF" in proc.stdout
    engine = db.get_engine(store.database_url)
    new = registry.get_champion(engine)["version"]
    assert new != old
    # The pointer was not touched, and what it names still verifies: readers (the web
    # app) keep serving the old champion, never a half-state.
    assert champion_state(store)["pointer"] == before["pointer"]
    assert registry.load_verified_model(store).version == old
    new_row = registry.get_version(engine, new)
    assert (
        registry.sha256_file(store.model_dir / new_row["artifact_path"])
        == (new_row["artifact_sha256"])
    )

    # The next run (the CLI, as the nightly DAG) reconciles the pointer before anything.
    proc = run_cli(store, "train", "--grid", "fast", "--no-candidates", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    champion = registry.get_champion(engine)
    pointer = registry.read_current_pointer(store.model_dir)
    assert pointer["version"] == champion["version"]
    assert pointer["sha256"] == champion["artifact_sha256"]
    assert registry.load_verified_model(store).version == champion["version"]
    assert champion["version"] in (new, json.loads(proc.stdout)["version"])
    print(f"\nleftovers: {leftovers(store)}")


def test_killed_after_version_files_before_record(store):
    """SIGKILL after ``versions/<v>/`` is written, before its ``model_versions`` row."""
    before = champion_state(store)
    proc = _train_script(
        store, "killed-before-record", "--kill-before-record", LIQUIDITY_PROMOTION_MARGIN="-1"
    )
    _count("SIGKILL between the version files and the model_versions commit")
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-3000:]
    # Nothing the readers use changed: champion row, pointer, history.
    assert champion_state(store) == before
    assert registry.load_verified_model(store).version == before["champion"]["version"]
    orphans = leftovers(store)["orphan_versions"]
    assert len(orphans) == 1  # the unrecorded folder exists and is never served:
    from liquidity_core.errors import ModelError

    with pytest.raises(ModelError, match="not recorded"):
        registry.load_verified_model(store, orphans[0])
    proc = run_cli(store, "train", "--grid", "fast", "--no-candidates")
    assert proc.returncode == 0, proc.stderr[-3000:]
    pointer = registry.read_current_pointer(store.model_dir)
    champion = registry.get_champion(db.get_engine(store.database_url))
    assert pointer["version"] == champion["version"]


def test_next_run_cleans_up_what_a_killed_run_left(store):
    """A run killed mid-way leaves its staging folder (the whole feature panel), an
    unrecorded version folder and temp files. The next run removes them once they are a
    day old (a younger staging folder may belong to a live run between DAG tasks), and
    leaves young ones alone."""
    proc = _train_script(
        store, "killed-before-record", "--kill-before-record", LIQUIDITY_PROMOTION_MARGIN="-1"
    )
    assert proc.returncode == -9
    young = leftovers(store)
    assert young["staging"] and young["orphan_versions"]

    assert run_cli(store, "train", "--grid", "fast", "--no-candidates").returncode == 0
    assert leftovers(store)["staging"] == young["staging"], "a young run's files are kept"
    assert leftovers(store)["orphan_versions"] == young["orphan_versions"]

    two_days_ago = time.time() - 2 * 24 * 3600
    for path in store.model_dir.rglob("*"):
        os.utime(path, (two_days_ago, two_days_ago), follow_symlinks=False)
    assert run_cli(store, "train", "--grid", "fast", "--no-candidates").returncode == 0
    left = leftovers(store)
    assert left == {"staging": [], "orphan_versions": [], "tmp_files": []}, left


# --- a tampered artifact is never unpickled ------------------------------------------------------


@pytest.fixture
def tampered(store, tmp_path):
    """The champion's model.pkl replaced by a pickle that would create ``marker``."""

    marker = tmp_path / "UNPICKLED-MARKER"
    champion = registry.get_champion(db.get_engine(store.database_url))
    artifact = store.model_dir / champion["artifact_path"]
    artifact.write_bytes(booby_trapped_pickle(marker))
    _count("tampered champion artifact")
    # Sanity: the trap works when something does unpickle it.
    probe = tmp_path / "probe-marker"
    subprocess.run(
        [sys.executable, "-c", "import pickle,sys; pickle.load(sys.stdin.buffer)"],
        input=booby_trapped_pickle(probe),
        check=True,
        timeout=30,
    )
    assert probe.exists()
    return store, marker, champion


def test_tampered_artifact_never_unpickled_by_the_web_app(tampered, make_app):
    store, marker, champion = tampered
    app = make_app(store)
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "sha256" in ready.get_json()["reason"]
    row = {"price": 1.0, "1h": 0, "24h": 0, "7d": 0, "24h_volume": 10, "mkt_cap": 100}
    for _ in range(3):
        resp = client.post("/api/v1/predict", json=row)
        assert resp.status_code == 503, resp.get_data(as_text=True)
    assert client.get("/").status_code == 200
    assert not marker.exists(), "the web app unpickled a tampered artifact"


def test_tampered_artifact_never_unpickled_by_the_cli(tampered, tmp_path):
    store, marker, champion = tampered
    rows = tmp_path / "rows.json"
    rows.write_text(
        json.dumps([{"price": 1, "1h": 0, "24h": 0, "7d": 0, "24h_volume": 10, "mkt_cap": 100}])
    )
    engine = db.get_engine(store.database_url)
    symbol = _a_symbol(store)
    for args in (("predict", "--symbol", symbol), ("predict", "--input", str(rows))):
        proc = run_cli(store, *args)
        assert proc.returncode != 0 and "sha256" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
    # train re-scores the champion: refused, the challenger recorded as rejected, the
    # champion kept.
    before = registry.get_champion(engine)
    proc = run_cli(store, "train", "--grid", "fast", "--no-candidates")
    assert proc.returncode != 0 and "sha256" in proc.stderr, proc.stderr[-2000:]
    assert registry.get_champion(engine) == before
    assert not marker.exists(), "the CLI unpickled a tampered artifact"


def test_tampered_rollback_target_never_unpickled(store, tmp_path):
    """``liquidity rollback`` to an earlier champion whose artifact was replaced."""

    engine = db.get_engine(store.database_url)
    first = registry.get_champion(engine)
    proc = _train_script(store, "second", LIQUIDITY_PROMOTION_MARGIN="-1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    second = registry.get_champion(engine)
    assert second["version"] != first["version"]
    marker = tmp_path / "ROLLBACK-MARKER"
    (store.model_dir / first["artifact_path"]).write_bytes(booby_trapped_pickle(marker))
    _count("tampered rollback target")
    pointer_before = (store.model_dir / "current.json").read_bytes()
    proc = run_cli(store, "rollback", first["version"])
    assert proc.returncode != 0 and "sha256" in proc.stderr, proc.stderr[-2000:]
    assert registry.get_champion(engine)["version"] == second["version"]
    assert (store.model_dir / "current.json").read_bytes() == pointer_before
    assert not marker.exists()


# The retrain DAG's task bodies, taken from the parsed DAG and called in order in a fresh
# process (no scheduler: a failing task under ``dag.test()`` waits out its retries, 1 + 2
# minutes). This is the code path a worker runs.
DAG_TASKS_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.settings import DAGS_FOLDER
bag = DagBag(dag_folder=DAGS_FOLDER)
assert not bag.import_errors, bag.import_errors
dag = bag.dags["liquidity_retrain"]
run = lambda task_id, *a, **k: dag.get_task(task_id).python_callable(*a, **k)
params = {"grid": "fast", "candidates": False, "promote": True}
prepared = run("check_data", run_id="tampered-dag-run", data_interval_end=None)
challenger = run("train_challenger", prepared, params=params)
try:
    run("compare_with_champion", challenger, run_id="tampered-dag-run", params=params)
except Exception as exc:
    print("TASK_FAILED " + json.dumps({"type": type(exc).__name__, "message": str(exc)}))
else:
    print("TASK_SUCCEEDED")
"""


def test_tampered_artifact_never_unpickled_by_the_retrain_dag_tasks(tampered, tmp_path):
    from devtools import airflow_env

    store, marker, champion = tampered
    env = {**airflow_env(tmp_path / "airflow", store), **liquidity_env(store)}
    env.update(
        {
            k: v
            for k, v in airflow_env(tmp_path / "airflow", store).items()
            if k.startswith("AIRFLOW")
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", DAG_TASKS_SCRIPT],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        cwd=str(tmp_path),
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("TASK_")]
    assert lines and lines[-1].startswith("TASK_FAILED"), proc.stdout[-2000:] + proc.stderr[-3000:]
    failure = json.loads(lines[-1][len("TASK_FAILED ") :])
    assert failure["type"] == "ModelError" and "sha256" in failure["message"], failure
    engine = db.get_engine(store.database_url)
    assert registry.get_champion(engine)["version"] == champion["version"]
    newest = registry.list_versions(engine)[0]
    assert newest["status"] == "rejected" and "sha256" in newest["reason"]
    assert not marker.exists(), "the DAG's task unpickled a tampered artifact"


def _a_symbol(settings) -> str:
    import sqlalchemy as sa

    with db.transaction(db.get_engine(settings.database_url)) as conn:
        return conn.execute(sa.text("SELECT symbol FROM market_snapshots LIMIT 1")).scalar_one()
