"""Serving: ``predict_liquidity`` in process against ``POST /api/v1/predict`` on gunicorn.

A PostgreSQL store (a schema of its own) gets a demo panel and two trained versions: the
champion A and a rejected challenger B (``fast`` grid). A is trained with a one-point grid
holding the heaviest forest the nightly ``default`` grid can pick (most trees, deepest,
smallest leaves), so the latencies are those of the worst champion, and the store is
ready in a fraction of a full grid search (``tiny`` scale: the ``fast`` grid). Then:

- ``predict_inprocess_1row`` / ``predict_inprocess_1000rows``: median wall time of
  :func:`liquidity_core.serving.predict.predict_liquidity` with the loaded model (as the web app
  calls it: model already in memory, features from the database);
  ``predict_inprocess_1row_cpu``: its CPU per one-row call (goal <= 2 ms), the work a
  worker does for a one-row predict without the HTTP stack.
- The forecast step then stores A's forecasts of the newest snapshot, as the forecast DAG
  does after a promotion, so ``GET /api/v1/coins/<symbol>/prediction`` serves stored
  forecasts (``source: stored``).
- ``app_healthz_cpu`` / ``app_coin_cpu`` / ``app_predict_cpu``: the web app's own CPU per
  ``GET /healthz``, stored-forecast GET and one-row predict, called through its WSGI entry
  point in this process (no sockets, no server). The workers' CPU per request under
  gunicorn is given as a ratio to these: the rest is the HTTP stack.
- gunicorn with 2 workers, run as docker-compose runs it (:mod:`webapp.gunicorn_conf`),
  on a free port of 127.0.0.1:
  - ``http_1row_median``: one connection, one request at a time (ratio vs in process);
  - ``http_1000rows_median``: a batch of 1,000 rows (goal < 100 ms);
  - 8 connections of closed-loop load from ``wrk`` (30 s; small: 5 s) on ``/healthz``
    (the reference), one-row ``POST /api/v1/predict`` and
    ``GET /api/v1/coins/<symbol>/prediction``, then a model swap under load: see
    :mod:`bench.serving_load`.
"""

from __future__ import annotations

import http.client
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import generate_panel
from liquidity_core.registry import champion as registry
from liquidity_core.serving.predict import predict_liquidity
from liquidity_core.store import db
from liquidity_core.training.cycle import run_training_cycle
from tests.support.net import free_port

from . import serving_load
from .common import REPO, Results, Scale, env_of, make_settings, pg_schema

CONNECTIONS = 8
BATCH = 1000
INPUT_COLUMNS = ("coin", "symbol", "price", "1h", "24h", "7d", "24h_volume", "mkt_cap")


def figure_names(scale: Scale) -> list[str]:
    """The figures :func:`run` records."""
    return [
        "predict_inprocess_1row",
        "predict_inprocess_1row_cpu",
        "predict_inprocess_1000rows",
        "app_healthz_cpu",
        "app_coin_cpu",
        "app_predict_cpu",
        "http_1row_median",
        "http_1000rows_median",
        *serving_load.figure_names(),
    ]


def run(scale: Scale, results: Results) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="liquidity-bench-serving-") as tmp,
        pg_schema("bench_serve") as (url, _schema),
    ):
        root = Path(tmp)
        settings = make_settings(root, url)
        rows = _store(scale, settings, results)
        version_a, version_b = _train_two(scale, settings, results)
        engine = db.get_engine(settings.database_url)
        row_b = registry.get_version(engine, version_b)
        _in_process(scale, settings, rows, results)
        _store_forecasts(settings, results)
        _app_in_process(settings, rows, results)
        with Gunicorn(settings, root / "gunicorn.log") as server:
            _warm(server, rows)
            _sequential(scale, server, rows, results)
            symbols = sorted({r["symbol"] for r in rows})
            _check_stored(server, symbols)
            serving_load.run(scale, settings, server, rows, symbols, row_b, version_a, results)


# --- the store -------------------------------------------------------------------------


def _store(scale: Scale, settings, results: Results) -> list[dict]:
    t0 = time.perf_counter()
    panel = generate_panel(coins=scale.serve_coins, snapshots=scale.serve_snapshots, seed=99)
    path = settings.var_dir / "panel.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    panel.to_csv(path, index=False)
    db.upgrade(db.get_engine(settings.database_url))
    (outcome,) = ingest_paths([path], settings=settings)
    if outcome.rows_loaded != len(panel):
        raise RuntimeError(f"serving store ingest: {outcome.as_dict()}")
    latest = panel[panel["date"] == panel["date"].max()]
    rows = [
        {k: (v if isinstance(v, str) else float(v)) for k, v in rec.items()}
        for rec in latest[list(INPUT_COLUMNS)].to_dict("records")
    ]
    results.note(
        "serving",
        f"store: {len(panel):,} rows ({scale.serve_coins:,} coins x "
        f"{scale.serve_snapshots} snapshots) on PostgreSQL, "
        f"{time.perf_counter() - t0:.1f}s",
    )
    return rows


def heaviest_grid(grid: dict) -> dict:
    """The one combination of ``grid`` that grows the biggest forest."""
    out = {}
    for key, values in grid.items():
        pick = min if key.endswith("min_samples_leaf") else max
        out[key] = [pick(values, key=lambda v: float("inf") if v is None else v)]
    return out


def _train_two(scale: Scale, settings, results: Results) -> tuple[str, str]:
    from liquidity_core.training import cycle as train

    t0 = time.perf_counter()
    grid = scale.serve_grid
    if grid == "heaviest":
        grid = "bench_heaviest"
        train.GRIDS[grid] = heaviest_grid(train.GRIDS["default"])
    try:
        a = run_training_cycle(settings, run_id="bench-serve-a", grid=grid, candidates=False)
    finally:
        train.GRIDS.pop("bench_heaviest", None)
    b = run_training_cycle(
        settings, run_id="bench-serve-b", grid="fast", candidates=False, promote=False
    )
    pointer = registry.read_current_pointer(settings.model_dir)
    if pointer is None or pointer["version"] != a["version"]:
        raise RuntimeError(f"expected {a['version']} to be champion, pointer is {pointer}")
    size = registry.version_dir(settings.model_dir, a["version"]) / "model.pkl"
    params = registry.get_version(db.get_engine(settings.database_url), a["version"])["params"]
    shape = {k: params.get(k) for k in ("n_estimators", "max_depth", "min_samples_leaf")}
    results.note(
        "serving",
        f"champion A {a['version']} ({scale.serve_grid} grid {shape}, "
        f"{size.stat().st_size / 1e6:.1f} MB) and rejected B {b['version']} "
        f"trained in {time.perf_counter() - t0:.1f}s",
    )
    return a["version"], b["version"]


def _store_forecasts(settings, results: Results) -> None:
    """The champion's forecasts of the newest snapshot, as the forecast DAG stores them."""
    from liquidity_core.monitoring.forecasts import forecast_new_snapshots

    t0 = time.perf_counter()
    done = forecast_new_snapshots(settings)
    results.note(
        "serving",
        f"forecast step: {done['rows']} stored forecasts of {done['model_version']} "
        f"({done['snapshots']} snapshot(s)) in {time.perf_counter() - t0:.1f}s",
    )


def _check_stored(server: Gunicorn, symbols: list[str]) -> None:
    """The coin route answers with the stored forecasts (what its load figures measure)."""
    for symbol in symbols[:3]:
        status, body = request(server.port, "GET", f"/api/v1/coins/{symbol}/prediction")
        source = json.loads(body).get("source") if status == 200 else None
        if source != "stored":
            raise RuntimeError(f"GET coin {symbol}: HTTP {status}, source {source!r}")


def _batch(rows: list[dict], n: int) -> list[dict]:
    return [rows[i % len(rows)] for i in range(n)]


# --- in process ----------------------------------------------------------------------------


def _in_process(scale: Scale, settings, rows: list[dict], results: Results) -> None:
    model = registry.load_verified_model(settings)
    predict_liquidity([rows[0]], settings=settings, model=model)  # warm up
    times, cpu = [], []
    for i in range(scale.repeats_1):
        t0, c0 = time.perf_counter(), time.process_time()
        predict_liquidity([rows[i % len(rows)]], settings=settings, model=model)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    results.add(
        "predict_inprocess_1row",
        1000 * statistics.median(times),
        "ms",
        note=f"median of {len(times)} (CPU {1000 * statistics.median(cpu):.2f} ms), "
        f"model {model.version} in memory",
        cpu_ms=1000 * statistics.median(cpu),
    )
    # CPU per call over a run of calls: process_time ticks too coarsely for one call.
    n = max(scale.repeats_1, 200)
    c0 = time.process_time()
    for i in range(n):
        predict_liquidity([rows[i % len(rows)]], settings=settings, model=model)
    results.add(
        "predict_inprocess_1row_cpu",
        1000 * (time.process_time() - c0) / n,
        "ms",
        goal="<= 2",
        note=f"CPU per one-row predict_liquidity over {n} calls (rows in turn): the "
        "worker's work for a one-row predict without the HTTP stack",
    )
    batch = _batch(rows, BATCH)
    times, cpu = [], []
    for _ in range(scale.repeats_batch):
        t0, c0 = time.perf_counter(), time.process_time()
        out = predict_liquidity(batch, settings=settings, model=model)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert len(out) == BATCH
    results.add(
        "predict_inprocess_1000rows",
        1000 * statistics.median(times),
        "ms",
        note=f"median of {len(times)} (CPU {1000 * statistics.median(cpu):.1f} ms)",
        cpu_ms=1000 * statistics.median(cpu),
    )


def _wsgi(app, method: str, path: str, body: bytes = b"") -> str:
    """One request through the app's WSGI entry point; its status line."""
    import io

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    status = []
    b"".join(app(environ, lambda line, headers, exc_info=None: status.append(line)))
    return status[0]


def _app_in_process(settings, rows: list[dict], results: Results) -> None:
    """The app's own CPU per request, without a server (see the module docstring)."""
    from liquidity_core.serving import recent
    from webapp import create_app

    app = create_app({"SETTINGS": settings})  # trusts a data version for 1 s, as a worker
    symbols = sorted({r["symbol"] for r in rows})
    bodies = [json.dumps(r).encode() for r in rows]
    # name: (request i, calls measured, calls first: the coin route reads every
    # symbol's stored answer once, as each server worker does before its steady state)
    requests = {
        "healthz": (lambda i: ("GET", "/healthz", b""), 2000, 100),
        "coin": (
            lambda i: ("GET", f"/api/v1/coins/{symbols[i % len(symbols)]}/prediction"),
            2000,
            max(100, len(symbols)),
        ),
        "predict": (lambda i: ("POST", "/api/v1/predict", bodies[i % len(bodies)]), 500, 100),
    }
    try:
        for name, (request_of, n, first) in requests.items():
            for i in range(first):
                status = _wsgi(app, *request_of(i))
                if not status.startswith("200"):
                    raise RuntimeError(f"in-process {name}: {status}")
            c0 = time.process_time()
            for i in range(n):
                _wsgi(app, *request_of(i))
            results.add(
                f"app_{name}_cpu",
                1000 * (time.process_time() - c0) / n,
                "ms",
                note=f"the web app's CPU per request over {n} calls through its WSGI entry "
                "point in this process, no server (prometheus_client in single-process mode)",
            )
    finally:
        recent.set_check_interval(0.0)  # this process's default again


# --- HTTP ------------------------------------------------------------------------------------


class Gunicorn:
    """``gunicorn --workers 2 --config python:webapp.gunicorn_conf 'webapp:create_app()'``
    (as docker-compose runs the web app) on a free port of 127.0.0.1."""

    def __init__(self, settings, log_path: Path, *, workers: int = 2):
        self.settings = settings
        self.port = free_port()
        self.log_path = log_path
        self.workers = workers
        self.proc = None

    def __enter__(self) -> Gunicorn:
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
                "--config",  # the serving settings docker-compose runs with
                "python:webapp.gunicorn_conf",
                "--no-control-socket",
                "webapp:create_app()",
            ],
            cwd=str(REPO),
            env=env_of(self.settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}: {self.log()}")
            try:
                status, _body = request(self.port, "GET", "/readyz", timeout=5)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.25)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn was not ready in 120 s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def workers_cpu(self) -> float:
        """CPU seconds used so far by the worker processes."""
        import psutil

        total = 0.0
        for child in psutil.Process(self.proc.pid).children():
            try:
                t = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def request(
    port: int,
    method: str,
    path: str,
    body=None,
    *,
    timeout: float = 30,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    """One request (on ``conn`` when given, else a fresh connection)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        if own:
            conn.close()


def _warm(server: Gunicorn, rows: list[dict]) -> None:
    """Every worker loads its model: a burst of concurrent requests."""

    def hit():
        for i in range(5):
            request(server.port, "POST", "/api/v1/predict", rows[i % len(rows)])

    threads = [threading.Thread(target=hit) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _sequential(scale: Scale, server: Gunicorn, rows: list[dict], results: Results) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    times, bad = [], 0
    cpu0 = server.workers_cpu()
    for i in range(scale.repeats_1):
        t0 = time.perf_counter()
        status, _ = request(server.port, "POST", "/api/v1/predict", rows[i % len(rows)], conn=conn)
        times.append(time.perf_counter() - t0)
        bad += status != 200
    server_cpu = 1000 * (server.workers_cpu() - cpu0) / len(times)
    results.add(
        "http_1row_median",
        1000 * statistics.median(times),
        "ms",
        reference="predict_inprocess_1row",
        goal="<= 2",
        note=f"one connection, {len(times)} sequential requests, {bad} errors; "
        f"server CPU {server_cpu:.1f} ms/request",
        server_cpu_ms=server_cpu,
    )
    batch = _batch(rows, BATCH)
    times = []
    for _ in range(scale.repeats_batch):
        t0 = time.perf_counter()
        status, body = request(server.port, "POST", "/api/v1/predict", batch, conn=conn)
        times.append(time.perf_counter() - t0)
        if status != 200 or len(json.loads(body)["predictions"]) != BATCH:
            raise RuntimeError(f"batch of {BATCH}: HTTP {status} {body[:300]!r}")
    conn.close()
    results.add(
        "http_1000rows_median",
        1000 * statistics.median(times),
        "ms",
        reference="predict_inprocess_1000rows",
        goal="< 100",
        goal_on="value",
        note=f"median of {len(times)} sequential batches of {BATCH} rows",
    )
