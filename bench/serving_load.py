"""Serving under load: ``wrk`` against gunicorn, and a model swap during load.

Every phase keeps 8 connections busy (closed loop) on the 2 gunicorn workers of
:class:`bench.serving.Gunicorn`:

- ``http_healthz_p50`` / ``http_healthz_rps``: ``GET /healthz`` (no I/O, no model), the
  reference. It is what the HTTP stack alone costs at the same concurrency, on the same
  machine, at the same moment, so the other figures are also given as ratios to it.
- ``http_load_*``: one-row ``POST /api/v1/predict`` (goals: p99 < 50 ms, >= 300 req/s,
  0 errors), rows taken in turn from the newest snapshot of the store.
- ``http_coin_*``: ``GET /api/v1/coins/<symbol>/prediction`` over the stored symbols
  (goal: p99 < 20 ms), after a 1-second pass that is not measured (each worker's first
  read of each stored answer).
- ``http_load_worker_cpu`` / ``http_coin_worker_cpu``: the workers' CPU per request of the
  two ``wrk`` runs above (goals: <= 2 ms for a one-row predict, <= 0.5 ms for a stored
  forecast; the coin route serves the forecasts the forecast step stored).
- ``http_fixed_*``: one-row ``POST /api/v1/predict`` at a fixed offered rate of
  :data:`FIXED_RATE` req/s, evenly spaced, from :data:`FIXED_CONNECTIONS` ``hey``
  processes started in turn (:func:`bench.hey.run_hey_even`; goals p99 < 30 ms, 0 errors),
  for ``Scale.fixed_rate_seconds``; ``http_burst_p99``: the same rate from one ``hey -c 10
  -q 15``, whose workers send their requests together, 10 at a time (no goal: it shows
  what bursts cost). Without ``hey`` on the PATH these figures are recorded as not
  measured, with the reason.
- ``http_reload_*``: a Python threaded generator (it reads each answer's model version)
  posts rows while ``current.json`` is switched to the rejected version B halfway:
  failed requests from then on (goal 0) and seconds until B answers.

``wrk``'s own CPU (from ``wait4``) is reported with each ``wrk`` figure, as is the
workers' CPU per request, and the load average: the machine is shared, so a figure taken
while other work runs says as much about the others as about this code. The ratios to
``/healthz`` and the CPU per request are the parts that do not move with the neighbours.
Without ``wrk`` on the PATH the ``wrk`` figures are recorded as not measured and the
one-row figures come from the Python generator instead.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time

import numpy as np

from liquidity_core.registry import champion as registry

from . import hey, wrk
from .common import Results, Scale

CONNECTIONS = 8
#: The offered load of the fixed-rate run (req/s), spread over FIXED_CONNECTIONS workers.
FIXED_RATE = 150
FIXED_CONNECTIONS = 10


def figure_names() -> list[str]:
    """The figures :func:`run` records."""
    return [
        "http_healthz_p50",
        "http_healthz_rps",
        "http_load_p50",
        "http_load_p99",
        "http_load_errors",
        "http_load_rps",
        "http_coin_p50",
        "http_coin_p99",
        "http_coin_rps",
        "http_load_worker_cpu",
        "http_coin_worker_cpu",
        "http_fixed_p50",
        "http_fixed_p99",
        "http_fixed_errors",
        "http_fixed_rps",
        "http_burst_p99",
        "http_reload_errors",
        "http_reload_seconds",
    ]


def _unit(name: str) -> str:
    if name.endswith(("p50", "p99", "cpu")):
        return "ms"
    return "errors" if name.endswith("errors") else "req/s"


def _load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} ({five:.1f} over 5 min) on {os.cpu_count()} CPUs"


def run(
    scale: Scale,
    settings,
    server,
    rows: list[dict],
    symbols: list[str],
    row_b: dict,
    version_a: str,
    results: Results,
) -> None:
    """Record every figure of :func:`figure_names` against a running ``server``."""
    if wrk.available():
        _wrk_phases(scale, server, rows, symbols, results)
    else:
        for name in figure_names()[:-2]:
            if name.startswith(("http_healthz", "http_coin")):
                results.add(
                    name,
                    None,
                    _unit(name),
                    note="wrk is not installed (apt-get install wrk)",
                )
    _fixed_rate_phase(scale, server, rows, results)
    _reload_phase(
        scale, settings, server, rows, row_b, version_a, results, load_figures=not wrk.available()
    )


# --- wrk -----------------------------------------------------------------------------------


def _wrk(server, seconds: float, **kw):
    cpu0 = server.workers_cpu()
    result = wrk.run_wrk(
        f"http://127.0.0.1:{server.port}", seconds=seconds, connections=CONNECTIONS, **kw
    )
    per_request = 1000 * (server.workers_cpu() - cpu0) / max(1, result.requests)
    return result, per_request


def _note(result, per_request: float, workers: int) -> str:
    floor = CONNECTIONS / workers * per_request
    # The share of the machine the workers had: on a shared machine, the rest went to
    # other work, and req/s falls short of the CPU-bound capacity by that much.
    share = result.requests * per_request / 1000 / max(result.seconds, 1e-9) / os.cpu_count()
    return (
        f"{CONNECTIONS} connections, {result.seconds:.0f}s, {result.requests:,} requests, "
        f"p90 {result.p90_ms:.1f} ms, max {result.max_ms:.0f} ms; workers' CPU "
        f"{per_request:.2f} ms/request (queueing floor {CONNECTIONS}/{workers} x that = "
        f"{floor:.0f} ms, CPU-bound capacity {1000 * workers / max(per_request, 1e-6):.0f} req/s; "
        f"the workers had {share:.0%} of the {os.cpu_count()} CPUs); "
        f"wrk used {result.cpu_share:.1%} of a core; {_load_note()}"
    )


def _wrk_phases(scale: Scale, server, rows, symbols, results: Results) -> None:
    short = max(2.0, scale.load_seconds / 3)
    health, cpu = _wrk(server, short, path="/healthz")
    results.add(
        "http_healthz_p50",
        health.p50_ms,
        "ms",
        note=_note(health, cpu, server.workers),
        p99_ms=health.p99_ms,
    )
    results.add("http_healthz_rps", health.rps, "req/s", errors=health.errors)

    bodies = [json.dumps(r) for r in rows]
    load, cpu = _wrk(
        server, scale.load_seconds, path="/api/v1/predict", method="POST", bodies=bodies
    )
    load_cpu = cpu
    extra = {"server_cpu_ms": cpu, "wrk_cpu_share": load.cpu_share, "load": os.getloadavg()}
    results.add(
        "http_load_p50",
        load.p50_ms,
        "ms",
        reference="http_healthz_p50",
        note=_note(load, cpu, server.workers),
        **extra,
    )
    results.add(
        "http_load_p99", load.p99_ms, "ms", goal="< 50", goal_on="value", max_ms=load.max_ms
    )
    results.add("http_load_errors", load.errors, "errors", goal="== 0")
    results.add(
        "http_load_rps",
        load.rps,
        "req/s",
        reference="http_healthz_rps",
        goal=">= 300",
        goal_on="value",
        **extra,
    )

    # The coin route, over the stored symbols in turn. A worker reads a symbol's stored
    # answer from the database once per data version and keeps it: a first pass, not
    # measured, has both workers read them (as the in-process app_coin_cpu is warmed), so
    # the figure is the steady cost, not a share of the first reads that shrinks with
    # the run's length.
    paths = [f"/api/v1/coins/{s}/prediction" for s in symbols]
    _wrk(server, 1.0, path=paths)
    coin, cpu = _wrk(server, max(2.0, scale.load_seconds / 2), path=paths)
    extra = {"server_cpu_ms": cpu, "wrk_cpu_share": coin.cpu_share, "errors": coin.errors}
    results.add(
        "http_coin_p50",
        coin.p50_ms,
        "ms",
        reference="http_healthz_p50",
        note=_note(coin, cpu, server.workers),
        **extra,
    )
    results.add(
        "http_coin_p99", coin.p99_ms, "ms", goal="< 20", goal_on="value", max_ms=coin.max_ms
    )
    results.add("http_coin_rps", coin.rps, "req/s", reference="http_healthz_rps", **extra)
    results.add(
        "http_load_worker_cpu",
        load_cpu,
        "ms",
        reference="app_predict_cpu",  # the app's own share, measured without a server
        goal="<= 2",
        goal_on="value",
        note="the gunicorn workers' CPU per one-row POST /api/v1/predict in the wrk run "
        "above (the HTTP stack included: see http_healthz_p50's note for its own share)",
    )
    results.add(
        "http_coin_worker_cpu",
        cpu,
        "ms",
        reference="app_coin_cpu",
        goal="<= 0.5",
        goal_on="value",
        note="the gunicorn workers' CPU per GET /api/v1/coins/<symbol>/prediction of a "
        "stored forecast in the wrk run above",
    )


# --- a fixed offered rate (hey) --------------------------------------------------------------


def _fixed_rate_phase(scale: Scale, server, rows, results: Results) -> None:
    names = [n for n in figure_names() if n.startswith(("http_fixed_", "http_burst_"))]
    if not hey.available():
        for name in names:
            results.add(
                name,
                None,
                _unit(name),
                note="not measured: hey is not installed (Debian: apt-get install hey)",
            )
        return
    offer = {
        "url": f"http://127.0.0.1:{server.port}/api/v1/predict",
        "seconds": scale.fixed_rate_seconds,
        "rate": FIXED_RATE,
        "connections": FIXED_CONNECTIONS,
        "method": "POST",
        "body": json.dumps(rows[0]),
    }
    cpu0 = server.workers_cpu()
    run = hey.run_hey_even(**offer)
    per_request = 1000 * (server.workers_cpu() - cpu0) / max(1, run.requests)
    note = (
        f"{FIXED_CONNECTIONS} x hey -c 1 -q {FIXED_RATE / FIXED_CONNECTIONS:g} "
        f"-z {scale.fixed_rate_seconds:g}s started 1/{FIXED_RATE} s apart: {FIXED_RATE} req/s "
        f"offered evenly, {run.requests:,} "
        f"answered in {run.seconds:.1f}s, p90 {run.p90_ms:.1f} ms, slowest "
        f"{run.slowest_ms:.0f} ms; workers' CPU {per_request:.2f} ms/request; hey used "
        f"{run.cpu_share:.1%} of a core; {_load_note()}"
    )
    extra = {"server_cpu_ms": per_request, "hey_cpu_share": run.cpu_share}
    results.add("http_fixed_p50", run.p50_ms, "ms", note=note, **extra)
    results.add(
        "http_fixed_p99", run.p99_ms, "ms", goal="< 30", goal_on="value", max_ms=run.slowest_ms
    )
    results.add("http_fixed_errors", run.errors, "errors", goal="== 0")
    results.add(
        "http_fixed_rps",
        run.rps,
        "req/s",
        note=f"answered req/s at {FIXED_RATE} req/s offered",
    )
    cpu0 = server.workers_cpu()
    burst = hey.run_hey(**offer)
    per_request = 1000 * (server.workers_cpu() - cpu0) / max(1, burst.requests)
    results.add(
        "http_burst_p99",
        burst.p99_ms,
        "ms",
        reference="http_fixed_p99",
        note=(
            f"hey -c {FIXED_CONNECTIONS} -q {FIXED_RATE / FIXED_CONNECTIONS:g} "
            f"-z {scale.fixed_rate_seconds:g}s: the same rate in bursts of "
            f"{FIXED_CONNECTIONS}; p50 {burst.p50_ms:.1f} ms, {burst.requests:,} answered, "
            f"{burst.errors} errors; workers' CPU {per_request:.2f} ms/request; {_load_note()}"
        ),
    )


# --- a model swap under load (Python generator) ----------------------------------------------


def _request(conn: http.client.HTTPConnection, body: dict) -> tuple[int, bytes]:
    conn.request(
        "POST",
        "/api/v1/predict",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    return resp.status, resp.read()


class _Loader(threading.Thread):
    """One closed-loop connection: POST one row, wait, repeat until the deadline."""

    def __init__(self, port: int, rows: list[dict], offset: int, start: float, deadline: float):
        super().__init__(daemon=True)
        self.port, self.rows, self.offset = port, rows, offset
        self.start_at, self.deadline = start, deadline
        self.samples: list[tuple[float, float, int, str | None]] = []  # (t, latency, status, v)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = self.offset
        while True:
            t0 = time.perf_counter()
            if t0 >= self.deadline:
                break
            version = None
            try:
                status, body = _request(conn, self.rows[i % len(self.rows)])
                if status == 200:
                    version = json.loads(body).get("model_version")
            except (OSError, http.client.HTTPException):
                status = -1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.samples.append((t0 - self.start_at, time.perf_counter() - t0, status, version))
            i += CONNECTIONS
        conn.close()


def _reload_phase(
    scale: Scale,
    settings,
    server,
    rows,
    row_b: dict,
    version_a: str,
    results: Results,
    *,
    load_figures: bool,
) -> None:
    start = time.perf_counter()
    cpu0 = time.process_time()
    server_cpu0 = server.workers_cpu()
    deadline = start + scale.load_seconds
    loaders = [_Loader(server.port, rows, k, start, deadline) for k in range(CONNECTIONS)]
    for t in loaders:
        t.start()
    time.sleep(scale.load_seconds / 2)
    switch_at = time.perf_counter() - start
    registry.write_current_pointer(
        settings.model_dir,
        version=row_b["version"],
        sha256=row_b["artifact_sha256"],
        artifact_path=row_b["artifact_path"],
    )
    for t in loaders:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    server_cpu = server.workers_cpu() - server_cpu0
    samples = sorted(s for t in loaders for s in t.samples)
    after = [s for s in samples if s[0] >= switch_at]
    first_b = next((s[0] + s[1] for s in after if s[3] == row_b["version"]), None)
    served = {v: sum(1 for s in samples if s[3] == v) for v in (version_a, row_b["version"])}
    if load_figures:
        lat = np.array([s[1] for s in samples]) * 1000
        per_request = 1000 * server_cpu / max(1, len(samples))
        note = (
            f"Python generator (no wrk): {CONNECTIONS} connections, {elapsed:.1f}s, "
            f"{len(samples):,} requests; workers {per_request:.1f} ms CPU/request, the "
            f"generator {cpu:.1f}s CPU; {_load_note()}"
        )
        results.add("http_load_p50", float(np.percentile(lat, 50)), "ms", note=note)
        results.add("http_load_p99", float(np.percentile(lat, 99)), "ms", goal="< 50")
        results.add(
            "http_load_errors", sum(1 for s in samples if s[2] != 200), "errors", goal="== 0"
        )
        results.add("http_load_rps", len(samples) / elapsed, "req/s", goal=">= 300")
    results.add(
        "http_reload_errors",
        int(sum(1 for s in after if s[2] != 200)),
        "errors",
        goal="== 0",
        note=f"{len(samples):,} requests in {elapsed:.1f}s; current.json switched to "
        f"{row_b['version']} at {switch_at:.1f}s; answers by version {served}",
    )
    results.add(
        "http_reload_seconds",
        None if first_b is None else first_b - switch_at,
        "s",
        note="from the pointer switch to the first answer from the new version "
        "(ModelHolder checks at most every 2 s)",
    )
