"""60 s of concurrent requests against a real gunicorn while the model is swapped twice.

gunicorn (2 workers x 4 threads) serves a trained store on 127.0.0.1. Eight client
threads send a bounded mix of requests (batch and single predictions, coin predictions,
the model history, probes, the HTML pages) for 60 s. After 20 s and after 40 s a new
``current.json`` is written atomically (temp file, fsync, ``os.replace``) naming the other
recorded version. Every request must succeed (2xx), both versions must be served, and the
RSS of the gunicorn workers at the end must stay within 1.5x of what it was after
warm-up. The request count, the latencies and the RSS figures are printed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support.rows import ROW
from support.webapp import Gunicorn, database, http, trained_store

from liquidity_core.registry import champion as registry
from liquidity_core.store import db

DURATION = 60.0
CLIENTS = 8
MAX_REQUESTS = 200_000  # a hard bound whatever the speed


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        out.extend(int(c) for c in children)
    return out


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _second_version(store) -> dict:
    """A second recorded version: the champion's artifact published again (promoted)."""
    import shutil

    engine = db.get_engine(store.database_url)
    champion = registry.get_champion(engine)
    row = dict(champion)
    model_file = store.var_dir / "second.pkl"
    shutil.copy(store.model_dir / row["artifact_path"], model_file)
    for key in ("artifact_path", "artifact_sha256", "artifact_bytes", "status"):
        row.pop(key, None)
    row.update(
        version=champion["version"] + "-b",
        created_at=registry.utc_now_iso(),
        reason="promoted by the load test",
        run_id="load-test",
    )
    registry.publish(store, row=row, model_file=model_file, metadata=row, promote=True)
    return registry.get_version(engine, row["version"])


def _point_at(store, row: dict) -> None:
    registry.write_current_pointer(
        store.model_dir,
        version=row["version"],
        sha256=row["artifact_sha256"],
        artifact_path=row["artifact_path"],
    )


@pytest.mark.slow
def test_sixty_seconds_of_load_with_two_model_swaps(tmp_path):
    root = tmp_path
    with database("sqlite", root) as url:
        store = trained_store(root, url)
        engine = db.get_engine(store.database_url)
        first = registry.get_champion(engine)
        second = _second_version(store)  # now champion; put the pointer back on the first
        _point_at(store, first)
        symbol = _symbol(store)
        env = {"LIQUIDITY_WEB_MODEL_CHECK_INTERVAL": "0.5"}
        with Gunicorn(store, root / "gunicorn.log", workers=2, threads=4, extra_env=env) as g:
            requests = [
                ("POST", "/api/v1/predict", ROW),
                ("POST", "/api/v1/predict", [ROW] * 20),
                ("GET", f"/api/v1/coins/{symbol}/prediction", None),
                ("GET", "/api/v1/models", None),
                ("GET", "/readyz", None),
                ("GET", "/healthz", None),
                ("GET", "/", None),
                ("GET", "/models", None),
            ]
            # Warm-up: every route on both workers, then the baseline RSS.
            for _ in range(10):
                for method, path, body in requests:
                    assert http(method, g.url + path, body)[0] == 200, path
            workers = _children(g.proc.pid)
            assert len(workers) == 2, workers
            rss_warm = {w: _rss_kb(w) for w in workers}

            results: list[tuple[int, str | None, float]] = []
            lock = threading.Lock()
            stop = threading.Event()

            def client(k: int) -> None:
                i = k
                while not stop.is_set() and len(results) < MAX_REQUESTS:
                    method, path, body = requests[i % len(requests)]
                    i += 1
                    t0 = time.perf_counter()
                    try:
                        status, payload, _ = http(method, g.url + path, body, timeout=30)
                        version = (
                            payload.get("model_version") if isinstance(payload, dict) else None
                        )
                    except Exception as exc:  # noqa: BLE001 - a failed request is counted
                        status, version = -1, repr(exc)
                    with lock:
                        results.append((status, version, time.perf_counter() - t0))

            threads = [
                threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)
            ]
            started = time.monotonic()
            for t in threads:
                t.start()
            swaps = []
            try:
                for at, row in ((DURATION / 3, second), (2 * DURATION / 3, first)):
                    time.sleep(max(0.0, started + at - time.monotonic()))
                    _point_at(store, row)
                    swaps.append((round(time.monotonic() - started, 1), row["version"]))
                time.sleep(max(0.0, started + DURATION - time.monotonic()))
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=60)
            elapsed = time.monotonic() - started
            rss_end = {w: _rss_kb(w) for w in workers if Path(f"/proc/{w}").exists()}
            assert _children(g.proc.pid) == workers, "a worker was restarted"

    failed = [r for r in results if not 200 <= r[0] < 300]
    latencies = sorted(r[2] for r in results)
    served = {r[1] for r in results if r[1]}
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    print(
        f"\nload: {len(results)} requests in {elapsed:.1f} s ({len(results) / elapsed:.0f}/s) "
        f"from {CLIENTS} clients, {len(failed)} failed; p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms; swaps at {swaps}; versions served {sorted(served)}; "
        f"worker RSS after warm-up {rss_warm} kB, at the end {rss_end} kB"
    )
    assert not failed, failed[:5]
    assert {first["version"], second["version"]} <= served
    for w, warm in rss_warm.items():
        assert rss_end[w] <= 1.5 * warm, (w, warm, rss_end[w])


def _symbol(store) -> str:
    import sqlalchemy as sa

    with db.transaction(db.get_engine(store.database_url)) as conn:
        return conn.execute(sa.text("SELECT symbol FROM market_snapshots LIMIT 1")).scalar_one()
