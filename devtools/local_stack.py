"""``make run``: the whole system on one machine with embedded defaults.

Starts ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer; SQLite
metadata under ``var/airflow``) with this repo's ``dags/`` and ``plugins/``, the web app
under gunicorn, drops demo data into the ingest folder, triggers one retrain once the
drops are loaded, and prints the URLs and the Airflow login. Ctrl-C (SIGINT) or SIGTERM
stops every process it started, all at once, within a few seconds (:func:`stop`).

Ports: ``LIQUIDITY_AIRFLOW_PORT`` (default 8080), ``LIQUIDITY_WEB_PORT`` (default 8000).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devtools import airflow_env
from liquidity_core.settings import Settings, load_settings
from liquidity_core.store import db

BIN = Path(sys.executable).parent


def _say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def airflow_environment(settings: Settings, port: int) -> dict:
    """Environment for ``airflow standalone`` serving this repo's DAGs and plugins."""
    return airflow_env(
        settings.var_dir / "airflow",
        settings,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone runs `airflow`
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="15",
        # One machine: a few task processes at a time beat dozens fighting for the cores.
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="15",
    )


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    return subprocess.Popen(
        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _rows_loaded(settings: Settings) -> int:
    import sqlalchemy as sa

    with db.transaction(db.get_engine(settings.database_url)) as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM market_snapshots")).scalar_one()


def _trigger(dag_id: str, env: dict) -> bool:
    """Trigger one run of ``dag_id``; False while the DAG is not parsed yet."""
    proc = subprocess.run(
        [str(BIN / "airflow"), "dags", "trigger", dag_id],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc.returncode == 0


def _family(processes: list[subprocess.Popen]) -> list:
    """The started processes and every descendant they have now (psutil handles)."""
    import psutil

    found = []
    for p in processes:
        try:
            root = psutil.Process(p.pid)
            found += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def _signal_all(family: list, groups: set[int], sig: int) -> None:
    """Send ``sig`` to every process group in ``groups`` and every process in ``family``."""
    import psutil

    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in family:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


#: Seconds the processes get to exit on SIGTERM before SIGKILL.
STOP_GRACE = 5.0


def _wait_gone(procs: list, timeout: float) -> None:
    """Wait until every process of ``procs`` has exited (a zombie has), at most ``timeout`` s.

    Not ``psutil.wait_procs``: an orphan that died stays a zombie until its new parent
    reaps it, and where that parent does not (some container inits), ``wait_procs`` would
    wait out the whole timeout for it.
    """
    deadline = time.monotonic() + timeout
    while (procs := _alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.1)


def _alive(procs: list) -> list:
    """The processes of ``procs`` still running (a zombie is not)."""
    import psutil

    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def stop(processes: list[subprocess.Popen], grace: float = STOP_GRACE) -> None:
    """Stop the started processes and all their descendants, all at once, in ``grace`` s.

    Every process and every process group of the family (task runners start sessions of
    their own) gets SIGTERM at the same moment: Airflow's components shut down on it
    (on SIGINT they wait for their children for a long time), gunicorn finishes its
    requests within its ``--graceful-timeout``. Whatever is alive after ``grace`` seconds,
    including descendants started meanwhile, gets SIGKILL, and so do the process groups seen:
    signalling the groups too reaches children whose parent died first (they are
    nobody's descendant any more).
    """
    family = _family(processes)
    groups: set[int] = set()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        family += [c for c in _family(processes) if c not in family]
        alive = _alive(family)
        for proc in alive:
            try:
                groups.add(os.getpgid(proc.pid))
            except OSError:
                pass
        groups.discard(os.getpgrp())  # never this supervisor's own group
        _signal_all(alive, groups, sig)  # the groups even when no known process is left
        _wait_gone(alive, wait)
    for p in processes:
        p.poll()  # reap


class _Stop(Exception):
    """Raised in the main loop by SIGINT or SIGTERM, so that it stops at once."""


def main() -> int:
    settings = load_settings()
    airflow_port = int(os.environ.get("LIQUIDITY_AIRFLOW_PORT", "8080"))
    web_port = int(os.environ.get("LIQUIDITY_WEB_PORT", "8000"))
    logs = settings.var_dir / "logs"
    for folder in (settings.ingest_dir, settings.model_dir, logs):
        folder.mkdir(parents=True, exist_ok=True)

    applied = db.upgrade(db.get_engine(settings.database_url))
    _say(f"database {settings.database_url}: applied {', '.join(applied) or 'nothing new'}")

    env = airflow_environment(settings, airflow_port)
    processes = [
        _start([str(BIN / "airflow"), "standalone"], env, logs / "airflow.log"),
        _start(
            [
                str(BIN / "gunicorn"),
                "--config",  # multiprocess metrics: /metrics adds up both workers
                "python:webapp.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{web_port}",
                "--workers",
                "2",
                "--access-logfile",
                "-",
                "--graceful-timeout",  # on SIGTERM, in-flight requests get this long
                "2",
                "--no-control-socket",  # gunicorn 27 otherwise shares ~/.gunicorn/gunicorn.ctl
                "webapp:create_app()",
            ],
            env,
            logs / "webapp.log",
        ),
    ]

    def _on_signal(signum, _frame):
        # Once: the stop below must not be interrupted by a second Ctrl-C.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Stop(signal.Signals(signum).name)

    return_code = 0
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        if _rows_loaded(settings) == 0 and not any(settings.ingest_dir.glob("*.csv")):
            from liquidity_core.inputs.demo import write_demo_drops

            files = write_demo_drops(
                settings.ingest_dir, coins=60, snapshots=20, seed=7, start="2024-01-01"
            )
            _say(f"dropped {len(files)} demo CSV files into {settings.ingest_dir}")

        home = settings.var_dir / "airflow"
        password_file = home / "simple_auth_manager_passwords.json.generated"
        ingest_triggered = retrain_triggered = announced = False
        while True:
            if any(p.poll() is not None for p in processes):
                _say(f"a component exited; see {logs}/ — stopping")
                return_code = 1
                break
            if not announced and _http_ok(f"http://127.0.0.1:{airflow_port}/api/v2/monitor/health"):
                login = "see " + str(password_file)
                if password_file.exists():
                    users = json.loads(password_file.read_text())
                    login = ", ".join(f"user {u} / password {p}" for u, p in users.items())
                _say(f"Airflow UI:  http://127.0.0.1:{airflow_port}  ({login})")
                _say(f"Web app:     http://127.0.0.1:{web_port}  (models: /models, API: /api/v1)")
                _say(f"Drop CSVs into {settings.ingest_dir}; logs in {logs}/; Ctrl-C stops.")
                announced = True
            if announced and not ingest_triggered:
                # The ingest DAG also runs every few minutes; trigger it now to start at once.
                ingest_triggered = _trigger("liquidity_ingest", env)
            drops_loaded = not any(settings.ingest_dir.glob("*.csv")) and _rows_loaded(settings)
            if ingest_triggered and not retrain_triggered and drops_loaded:
                retrain_triggered = _trigger("liquidity_retrain", env)
                if retrain_triggered:
                    _say("market data loaded; triggered one liquidity_retrain run")
            time.sleep(2)
    except _Stop as exc:
        _say(f"{exc} received")
    finally:
        _say("stopping…")
        stop(processes)
        _say("stopped")
    return return_code


if __name__ == "__main__":
    sys.exit(main())
