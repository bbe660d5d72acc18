"""Helpers for the web app tests: a trained model store, and a real gunicorn.

``trained_store`` builds, under one folder, a database with a small synthetic panel
ingested and one training cycle run: the state the nightly DAGs leave behind.
``Gunicorn`` starts the app on a free port of 127.0.0.1 and stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from liquidity_core.settings import Settings
from liquidity_core.store import db
from support.database import fresh_database
from support.env import make_settings
from support.net import free_port
from support.paths import REPO

# A panel small enough to train in seconds, big enough for the CV and a holdout.
DEMO = {"coins": 12, "snapshots": 30, "seed": 11, "start": "2024-01-01"}


def settings_for(root: Path, database_url: str) -> Settings:
    """Settings with every folder under ``root``, tuned for tiny, fast training."""
    return make_settings(
        root,
        database_url,
        LIQUIDITY_N_JOBS=1,
        LIQUIDITY_CV_SPLITS=2,
        LIQUIDITY_HOLDOUT_SNAPSHOTS=3,
        LIQUIDITY_MAX_SAMPLES=2000,
    )


def env_of(settings: Settings) -> dict[str, str]:
    """The LIQUIDITY_* variables that make ``load_settings()`` return ``settings``."""
    return settings.as_env()


def ingest_demo(settings: Settings, *, snapshots: int, **overrides) -> None:
    """Write demo drops and ingest them (as the ingest DAG would)."""
    from liquidity_core.ingest import ingest_paths
    from liquidity_core.inputs.demo import write_demo_drops

    params = {**DEMO, "snapshots": snapshots, **overrides}
    drops = settings.var_dir / f"drops_{uuid.uuid4().hex[:6]}"
    files = write_demo_drops(drops, **params)
    results = ingest_paths(files, settings=settings)
    bad = [r for r in results if r.status not in ("loaded", "duplicate")]
    assert not bad, [r.as_dict() for r in bad]


def trained_store(root: Path, database_url: str) -> Settings:
    """A migrated database with the demo panel ingested and one trained champion."""
    from liquidity_core.training.cycle import run_training_cycle

    settings = settings_for(root, database_url)
    db.upgrade(db.get_engine(settings.database_url))
    ingest_demo(settings, snapshots=DEMO["snapshots"])
    outcome = run_training_cycle(settings, run_id="test-webapp-1", grid="fast", candidates=False)
    assert outcome["promoted"], outcome
    return settings


def land_and_forecast(settings: Settings, *, more: int = 4) -> None:
    """Land ``more`` demo snapshots after the trained ones one at a time, each followed by
    the forecast task, so stored forecasts meet their outcomes (issue 14)."""
    from liquidity_core.ingest import ingest_paths
    from liquidity_core.inputs.demo import write_demo_drops
    from liquidity_core.monitoring.forecasts import forecast_new_snapshots

    drops = settings.var_dir / f"later_{uuid.uuid4().hex[:6]}"
    files = write_demo_drops(drops, **{**DEMO, "snapshots": DEMO["snapshots"] + more})
    for path in files[DEMO["snapshots"] :]:
        ingest_paths([path], settings=settings)
        forecast_new_snapshots(settings)


@contextmanager
def database(kind: str, root: Path) -> Iterator[str]:
    """A database URL of ``kind`` ("sqlite" or "postgresql") dropped afterwards."""
    with fresh_database(kind, root, prefix="w") as url:
        yield url


def copy_store(settings: Settings, root: Path) -> Settings:
    """A private copy of a SQLite store (database via the backup API, and MODEL_DIR)."""
    import shutil
    import sqlite3

    copy = settings_for(root, f"sqlite:///{root / 'liquidity.db'}")
    src = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))
    dst = sqlite3.connect(root / "liquidity.db")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    shutil.rmtree(copy.model_dir)
    shutil.copytree(settings.model_dir, copy.model_dir)
    return copy


def table_counts(settings: Settings) -> dict[str, int]:
    """Row counts of the stored tables, to show a request changed nothing."""
    engine = db.get_engine(settings.database_url)
    out = {}
    with db.transaction(engine) as conn:
        for table in (
            "market_snapshots",
            "ingest_files",
            "rejected_rows",
            "model_versions",
            "model_events",
        ):
            out[table] = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    return out


def model_dir_state(settings: Settings) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under MODEL_DIR."""
    return {
        str(p.relative_to(settings.model_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(settings.model_dir.rglob("*"))
        if p.is_file()
    }


def http(
    method: str, url: str, body=None, *, timeout: float = 10.0, headers: dict | None = None
) -> tuple[int, dict | str, dict]:
    """One request; returns (status, parsed JSON or text, headers)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, got = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    text = raw.decode("utf-8", "replace")
    if got.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(text), got
    return status, text, got


class Gunicorn:
    """``gunicorn 'webapp:create_app()'`` on 127.0.0.1:<free port>, as a context manager."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        workers: int = 2,
        threads: int = 4,
        extra_env: dict | None = None,
        extra_args: list[str] | None = None,
    ):
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.workers = workers
        self.threads = threads
        self.extra_env = extra_env or {}
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Gunicorn:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITY_")}
        env.update(env_of(self.settings))
        env.update(self.extra_env)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--worker-class",
                "gthread",
                "--graceful-timeout",
                "5",
                "--no-control-socket",  # gunicorn 27 otherwise shares ~/.gunicorn/gunicorn.ctl
                *self.extra_args,
                "webapp:create_app()",
            ],
            cwd=str(REPO),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}: {self.log()}")
            try:
                if http("GET", self.url + "/healthz", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn did not answer /healthz in 120 s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
