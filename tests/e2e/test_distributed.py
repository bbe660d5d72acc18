"""The production topology, run as plain processes: Airflow with the CeleryExecutor.

What ``docker-compose.yml`` runs in containers runs here as processes (see
``support/distributed.py``). ``deploy/postgres/init-databases.sh`` creates the roles and
databases on the local PostgreSQL (fresh names per run): the Airflow metadata DB owned by a
non-superuser role, the liquidity DB owned by the tasks' role, a read-only web role. Broker
and result backend use a dedicated database of the local Redis. A scheduler, a
dag-processor, one Celery worker (concurrency 2) and an api-server (started by
``deploy/airflow-apiserver.sh``) run on free ports. The tests drive Airflow only through
its REST API, as an operator would, then check the results on disk, in the liquidity
database, and through the web app under gunicorn connected as the read-only role.

Every wait shares one budget (``DIST_TIMEOUT_S``, default 600 s) and every process is
stopped at the end; the last test asserts that none is left.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.distributed import (
    BIN,
    AirflowApi,
    ApiError,
    CeleryCluster,
    Deadline,
    drop_init_databases,
    init_databases,
)
from support.env import liquidity_env
from support.net import free_port
from support.paths import REPO

from liquidity_core.store import db

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REAL_DAGS = ("liquidity_ingest", "liquidity_retrain")
BUDGET_S = float(os.environ.get("DIST_TIMEOUT_S", "600"))

SMOKE_DAG = textwrap.dedent('''
    """Smoke DAG of the distributed test: records which process ran its task."""
    import json
    import os

    import pendulum
    from airflow.sdk import dag, task


    @dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         tags=["test"])
    def dist_smoke():
        """Two tasks and one XCom between them."""

        @task
        def where_am_i() -> list:
            """Write this process's ancestry (pids up to init)."""
            chain, pid = [], os.getpid()
            while pid > 1:
                chain.append(pid)
                with open(f"/proc/{pid}/stat") as fh:
                    pid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(os.environ["DIST_SMOKE_OUT"], "w") as fh:
                json.dump(chain, fh)
            return chain

        @task
        def check(chain: list) -> None:
            """Fail unless the XCom came through."""
            assert chain and chain[0] > 1

        check(where_am_i())


    dist_smoke()
''')


def _liquidity_env(root: Path, database_url: str) -> dict:
    return liquidity_env(root, database_url, LIQUIDITY_N_JOBS=1, DIST_SMOKE_OUT=root / "smoke.json")


def _liquidity(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(BIN / "liquidity"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"liquidity {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


def _demo_drops(env: dict, ingest_dir: Path, *, coins: int, snapshots: int, files: int):
    """``liquidity demo-data`` (one file per snapshot), regrouped into ``files`` drops.

    Each drop becomes one mapped ``ingest_file`` task; a few multi-snapshot files keep the
    task count (and the run time on a shared 2-core machine) small. Each is written as
    ``.part`` and renamed, as a well-behaved producer does.
    """
    staging = ingest_dir.parent / "demo"
    _liquidity(
        env,
        "demo-data",
        "--out",
        str(staging),
        "--coins",
        str(coins),
        "--snapshots",
        str(snapshots),
    )
    singles = sorted(staging.glob("*.csv"))
    assert len(singles) == snapshots
    per_file = -(-len(singles) // files)
    drops = []
    for i in range(files):
        group = singles[i * per_file : (i + 1) * per_file]
        lines = group[0].read_text().splitlines()[:1]
        for path in group:
            lines += path.read_text().splitlines()[1:]
        part = ingest_dir / f"demo_{i:02d}.csv.part"
        part.write_text("\n".join(lines) + "\n")
        drops.append(part.rename(part.with_suffix("")))
    return drops


@pytest.fixture(scope="module")
def deadline():
    return Deadline(BUDGET_S)


@pytest.fixture(scope="module")
def topology(tmp_path_factory, deadline):
    """The running cluster, its API client and the liquidity settings of its workers."""
    root = tmp_path_factory.mktemp("distributed")
    dags = root / "dags"
    dags.mkdir()
    (dags / "dist_smoke.py").write_text(SMOKE_DAG)
    for dag_id in REAL_DAGS:
        (dags / f"{dag_id}.py").symlink_to(REPO / "dags" / f"{dag_id}.py")
    for folder in ("ingest", "models", "var"):
        (root / folder).mkdir()

    # Roles and databases as compose makes them: deploy/postgres/init-databases.sh.
    databases = init_databases(secrets.token_hex(4))
    env = _liquidity_env(root, databases["owner_url"])
    cluster = CeleryCluster(root, dags, extra_env=env, metadata_url=databases["airflow_url"])
    try:
        # As airflow-init does in compose: the liquidity schema exists before any task runs.
        engine = db.get_engine(env["LIQUIDITY_DATABASE_URL"])
        db.upgrade(engine)
        engine.dispose()
        db.get_engine.cache_clear()
        cluster.start(deadline)
        api = AirflowApi(cluster.api_url, cluster.username, cluster.password)
        yield cluster, api, {**cluster.env, "DIST_WEB_DATABASE_URL": databases["web_url"]}
    finally:
        leftovers = cluster.stop()
        drop_init_databases(databases)
        assert not leftovers, f"processes left behind: {leftovers}"


def _wait_for_dag(api: AirflowApi, dag_id: str, deadline: Deadline, cluster: CeleryCluster):
    def parsed():
        cluster.check_alive()
        return api.dag(dag_id)

    return deadline.wait_for(
        f"the dag-processor to serialize {dag_id}", parsed, on_timeout=cluster.log_tails
    )


def test_login_is_required(topology, deadline):
    """The REST API refuses anonymous calls, forged tokens and a wrong password."""
    cluster, api, _ = topology
    with pytest.raises(ApiError, match="HTTP 401"):
        api._call("GET", "/api/v2/dags")
    forged = AirflowApi.__new__(AirflowApi)
    forged.base_url, forged.token = cluster.api_url, "not-a-token"
    with pytest.raises(ApiError, match="HTTP 403"):
        forged.call("GET", "/api/v2/dags")
    with pytest.raises(ApiError, match="HTTP 401"):
        AirflowApi(cluster.api_url, cluster.username, "wrong-password")
    # Logged in, the list holds exactly the DAGs of the folder, once they are parsed.
    expected = {"dist_smoke", *REAL_DAGS}
    for dag_id in sorted(expected):
        _wait_for_dag(api, dag_id, deadline, cluster)
    listed = api.call("GET", "/api/v2/dags")
    assert listed["total_entries"] == len(expected), listed
    assert {d["dag_id"] for d in listed["dags"]} == expected


def test_celery_worker_runs_tasks(topology, deadline):
    """A trivial DAG: both tasks run in a child of the Celery worker, XCom passes between."""
    cluster, api, env = topology
    _wait_for_dag(api, "dist_smoke", deadline, cluster)
    api.unpause("dist_smoke")
    run_id = api.trigger("dist_smoke")
    assert api.wait_for_run("dist_smoke", run_id, deadline, cluster) == "success", (
        cluster.task_logs()
    )
    chain = json.loads(Path(env["DIST_SMOKE_OUT"]).read_text())
    assert cluster.processes["worker"].pid in chain
    assert cluster.processes["scheduler"].pid not in chain
    tis = api.task_instances("dist_smoke", run_id)
    assert {t["task_id"]: t["state"] for t in tis} == {"where_am_i": "success", "check": "success"}


def test_ingest_then_retrain_promotes_a_model(topology, deadline):
    """The real DAGs, triggered over the API: drops are loaded, a model is promoted."""
    cluster, api, env = topology
    ingest_dir = Path(env["LIQUIDITY_INGEST_DIR"])
    model_dir = Path(env["LIQUIDITY_MODEL_DIR"])
    drops = _demo_drops(env, ingest_dir, coins=30, snapshots=40, files=4)

    for dag_id in REAL_DAGS:
        _wait_for_dag(api, dag_id, deadline, cluster)

    # Unpausing also starts the 5-minute schedule's latest run (it loads the drops); ours
    # queues behind it (max_active_runs=1) and finds the folder empty.
    started = time.monotonic()
    api.unpause("liquidity_ingest")
    run_id = api.trigger("liquidity_ingest")
    state = api.wait_for_run("liquidity_ingest", run_id, deadline, cluster)
    print(f"liquidity_ingest: {state} after {time.monotonic() - started:.0f}s")
    assert state == "success", cluster.task_logs()
    assert not list(ingest_dir.glob("*.csv")), "drops left in the ingest folder"
    engine = sa.create_engine(env["LIQUIDITY_DATABASE_URL"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM market_snapshots")).scalar_one()
        loaded = conn.execute(
            sa.text("SELECT COUNT(*) FROM ingest_files WHERE status = 'loaded'")
        ).scalar_one()
    engine.dispose()
    assert rows == 30 * 40
    assert loaded == len(drops)

    # The nightly DAG, triggered by hand with the small grid (this machine is shared).
    # Unpausing also starts the latest 02:00 run (catchup=False); the first of the two
    # runs promotes the first model, the other is scored against it.
    api.unpause("liquidity_retrain")
    started = time.monotonic()
    run_id = api.trigger("liquidity_retrain", {"grid": "fast", "candidates": False})
    state = api.wait_for_run("liquidity_retrain", run_id, deadline, cluster)
    print(f"liquidity_retrain: {state} after {time.monotonic() - started:.0f}s")
    assert state == "success", cluster.task_logs()
    tis = {t["task_id"]: t["state"] for t in api.task_instances("liquidity_retrain", run_id)}
    assert tis.pop("announce_champion") in ("success", "skipped")  # skipped: not better
    assert set(tis.values()) == {"success"}, tis

    pointer = json.loads((model_dir / "current.json").read_text())
    models = json.loads(_liquidity(env, "models", "--json").stdout)
    champions = [v for v in models["versions"] if v["status"] == "champion"]
    assert len(champions) == 1, models
    assert champions[0]["version"] == pointer["version"] == models["current"]["version"]
    assert (model_dir / "versions" / pointer["version"] / "model.pkl").exists()
    # One model_versions row per finished run, and max_active_runs=1 held across the
    # scheduler and the worker: no two runs of a DAG overlapped.
    for dag_id in REAL_DAGS:
        runs = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=start_date")["dag_runs"]
        spans = [(r["start_date"], r["end_date"]) for r in runs if r["start_date"]]
        for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
            assert end is not None and end <= next_start, f"{dag_id} runs overlap: {spans}"
    finished = [
        r
        for r in api.call("GET", "/api/v2/dags/liquidity_retrain/dagRuns")["dag_runs"]
        if r["state"] == "success"
    ]
    assert len(models["versions"]) >= len(finished)

    # The web app, as compose runs it: gunicorn, the read-only role, the shared model folder.
    web_url = f"http://127.0.0.1:{free_port()}"
    web_env = {k: v for k, v in env.items() if not k.startswith("LIQUIDITY_")}
    web_env.update(
        LIQUIDITY_DATABASE_URL=env["DIST_WEB_DATABASE_URL"],
        LIQUIDITY_MODEL_DIR=str(model_dir),
        LIQUIDITY_VAR_DIR=env["LIQUIDITY_VAR_DIR"],
    )
    cluster.spawn(
        "webapp",
        [
            str(BIN / "gunicorn"),
            "--bind",
            web_url.removeprefix("http://"),
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "2",
            "--no-control-socket",
            "webapp:create_app()",
        ],
        web_env,
        cwd=REPO,
    )  # as tests/support/webapp.py: the repo's webapp/ package first
    deadline.wait_for(
        "the web app to be ready",
        lambda: cluster.check_alive() or _get(f"{web_url}/readyz")[0] == 200,
        on_timeout=cluster.log_tails,
    )
    status, body = _get(f"{web_url}/api/v1/models")
    assert status == 200 and pointer["version"] in json.dumps(body["champion"]), body
    with engine.connect() as conn:
        symbol = conn.execute(sa.text("SELECT MIN(symbol) FROM market_snapshots")).scalar_one()
    engine.dispose()
    status, body = _get(f"{web_url}/api/v1/coins/{symbol}/prediction")
    assert status == 200, body
    assert body["model_version"] == pointer["version"]


def _get(url: str) -> tuple[int | None, object]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return None, str(exc)


def test_teardown_leaves_no_process(topology):
    """Stopping the cluster kills every process it started, children included."""
    cluster, _, _ = topology
    running = cluster.pids()
    components = {p.pid for p in cluster.processes.values()}
    assert components <= set(running)
    assert len(running) > len(components)  # worker pool, log servers, parser children...
    assert cluster.stop() == []
    assert all(p.poll() is not None for p in cluster.processes.values())
    assert [pid for pid in running if _alive(pid)] == []


def _alive(pid: int) -> bool:
    try:
        return ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
