"""The app under a real gunicorn (2 workers x 4 threads) on 127.0.0.1.

- Hot reload: while threads send predictions in a loop, the champion changes twice
  (a promotion, then a rollback); every request succeeds and the workers move to the
  new model within a few seconds, without a restart.
- A broken pointer (sha256 mismatch, missing artifact): ``/readyz`` turns 503 with the
  reason and the old model keeps serving; fixing the pointer makes it ready again.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from support.rows import ROW
from support.webapp import (
    Gunicorn,
    database,
    http,
    ingest_demo,
    table_counts,
    trained_store,
)

from liquidity_core.registry.champion import read_current_pointer, rollback, write_current_pointer

CHECK = 0.2  # LIQUIDITY_WEB_MODEL_CHECK_INTERVAL for these servers (default 2 s)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    with database("sqlite", root) as url:
        yield trained_store(root, url)


@pytest.fixture(scope="module")
def versions(store) -> tuple[str, str]:
    """(first, second): two promoted versions of ``store``, with the first champion again."""
    first = read_current_pointer(store.model_dir)["version"]
    second = _second_champion(store)["version"]
    rollback(store, first)
    return first, second


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = {
        "LIQUIDITY_WEB_MODEL_CHECK_INTERVAL": str(CHECK),
        "LIQUIDITY_WEB_MODEL_RETRY_INTERVAL": "0.5",
    }
    with Gunicorn(store, log, workers=2, threads=4, extra_env=env) as g:
        yield g


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _all_workers_looked_since(server, since: str, probes: int = 8) -> bool:
    """True when ``probes`` consecutive /readyz answers (spread over the workers) are ready
    and say their process looked at the pointer at ``since`` or later."""
    for _ in range(probes):
        status, body, _ = http("GET", server.url + "/readyz")
        if status != 200 or (body.get("checked_at") or "") < since:
            return False
    return True


def _all_workers_serve(server, version: str, probes: int = 8) -> bool:
    """True when ``probes`` consecutive predictions (spread over both workers) use it."""
    for _ in range(probes):
        status, body, _ = http("POST", server.url + "/api/v1/predict", ROW)
        if status != 200 or body["model_version"] != version:
            return False
    return True


def test_endpoints_over_http(server, store):
    before = table_counts(store)
    assert http("GET", server.url + "/healthz")[0] == 200
    status, body, headers = http("GET", server.url + "/readyz")
    assert status == 200 and body["ready"] is True
    status, body, _ = http("POST", server.url + "/api/v1/predict", [ROW, ROW])
    assert status == 200 and len(body["predictions"]) == 2
    status, body, _ = http("GET", server.url + "/api/v1/models")
    assert status == 200 and body["champion"]
    status, body, _ = http("POST", server.url + "/api/v1/predict", b'{"price": ')
    assert status == 400 and body["errors"][0]["field"] == "body"
    # A body over the limit is refused before it is read.
    status, body, _ = http("POST", server.url + "/api/v1/predict", b" " * (3 * 1024 * 1024))
    assert status == 413 and body["errors"][0]["field"] == "body"
    status, page, headers = http("GET", server.url + "/models")
    assert status == 200 and "<svg" in page
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert table_counts(store) == before


def test_hot_reload_under_load_loses_no_request(server, store, versions):
    first, second_version = versions
    second = {"version": second_version}
    assert read_current_pointer(store.model_dir)["version"] == first
    # The test starts from the first: let the workers settle on it.
    _wait_for(lambda: _all_workers_serve(server, first), what=f"{first} everywhere")

    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def hammer():
        for _ in range(2000):  # bounded even if the main thread fails
            if stop.is_set():
                return
            try:
                status, body, _ = http("POST", server.url + "/api/v1/predict", ROW, timeout=20)
                version = body.get("model_version") if isinstance(body, dict) else None
            except Exception as exc:  # noqa: BLE001 - a failed request is what we count
                status, version = -1, repr(exc)
            with lock:
                results.append((status, version))

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        _wait_for(lambda: len(results) >= 30, what="30 requests before the switch")
        rollback(store, second["version"])  # champion -> second: current.json replaced
        switched_at = time.monotonic()
        _wait_for(
            lambda: _all_workers_serve(server, second["version"]),
            what=f"{second['version']} everywhere",
        )
        reload_seconds = time.monotonic() - switched_at
        n_mid = len(results)
        rollback(store, first)  # and back again, still under load
        _wait_for(lambda: _all_workers_serve(server, first), what=f"{first} again")
        _wait_for(lambda: len(results) >= n_mid + 30, what="requests after the switch back")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    failed = [r for r in results if r[0] != 200]
    assert not failed, failed[:5]
    seen = {v for _, v in results}
    assert {first, second["version"]} <= seen
    # Generous: the check runs every 0.2 s, but on a loaded 2-core CI box the probes
    # themselves queue behind the hammering threads.
    assert reload_seconds < 60, reload_seconds
    print(
        f"hot reload: {len(results)} requests, 0 failed, new model everywhere in "
        f"{reload_seconds:.2f} s"
    )


@pytest.mark.parametrize(
    "breakage", ["sha256-mismatch", "missing-artifact", "unknown-version", "malformed-pointer"]
)
def test_broken_pointer_keeps_old_model(server, store, versions, breakage):
    good = read_current_pointer(store.model_dir)
    _wait_for(lambda: http("GET", server.url + "/readyz")[0] == 200, what="ready")
    pointer_path = store.model_dir / "current.json"
    saved = pointer_path.read_bytes()
    moved = []  # (artifact, where it was moved): all put back, whatever the breakage

    def move_away(artifact):
        artifact.rename(artifact.with_suffix(".moved"))
        moved.append((artifact, artifact.with_suffix(".moved")))

    try:
        if breakage == "sha256-mismatch":
            write_current_pointer(
                store.model_dir,
                version=good["version"],
                sha256="f" * 64,
                artifact_path=good["artifact_path"],
            )
            expect = "sha256"
        elif breakage == "missing-artifact":
            move_away(store.model_dir / good["artifact_path"])
            # The same pointer rewritten (new mtime and inode) makes the workers look again;
            # the old model is in memory, so they keep it and report nothing wrong...
            rewritten = datetime.now(UTC).isoformat(timespec="milliseconds")
            write_current_pointer(
                store.model_dir,
                version=good["version"],
                sha256=good["sha256"],
                artifact_path=good["artifact_path"],
            )
            _wait_for(
                lambda: _all_workers_looked_since(server, rewritten),
                what="every worker to look at the rewritten pointer",
            )
            # ...but a pointer to a version whose file is gone cannot load.
            other = _other_version(store, good["version"])
            write_current_pointer(
                store.model_dir,
                version=other["version"],
                sha256=other["artifact_sha256"],
                artifact_path=other["artifact_path"],
            )
            move_away(store.model_dir / other["artifact_path"])
            expect = "cannot be read"
        elif breakage == "unknown-version":
            write_current_pointer(
                store.model_dir,
                version="v-does-not-exist",
                sha256="a" * 64,
                artifact_path="versions/x/model.pkl",
            )
            expect = "not recorded"
        else:
            pointer_path.write_text("{not json")
            expect = "not valid JSON"

        def not_ready():
            status, body, _ = http("GET", server.url + "/readyz")
            return body if status == 503 else None

        # Each worker notices on its own; poll until one reports it, then check both.
        body = _wait_for(not_ready, what="/readyz 503")
        assert expect in body["reason"], body
        assert body["model_version"] == good["version"]
        assert body["ready"] is False and body["failed_at"]
        for _ in range(20):  # every request still answered by the old model
            status, pred, _ = http("POST", server.url + "/api/v1/predict", ROW)
            assert status == 200 and pred["model_version"] == good["version"]
    finally:
        for artifact, away in moved:
            away.rename(artifact)
        pointer_path.write_bytes(saved)
        pointer_path.touch()
    _wait_for(
        lambda: all(http("GET", server.url + "/readyz")[0] == 200 for _ in range(8)),
        what="ready again after the fix",
    )


def _second_champion(store) -> dict:
    """A second champion: more snapshots arrive and tonight's run trains a new model.

    On a panel this small the challenger may not beat persistence and be rejected; its
    artifact is then published again as a promoted version through the registry, the
    way the training cycle publishes a winner.
    """
    import shutil

    from liquidity_core.registry.champion import get_version, publish, utc_now_iso
    from liquidity_core.store import db
    from liquidity_core.training.cycle import run_training_cycle

    ingest_demo(store, snapshots=36)
    outcome = run_training_cycle(store, run_id="test-webapp-2", grid="fast", candidates=False)
    if outcome["promoted"]:
        return {"version": outcome["version"]}
    row = get_version(db.get_engine(store.database_url), outcome["version"])
    model_file = store.var_dir / "second.pkl"
    shutil.copy(store.model_dir / row["artifact_path"], model_file)
    for key in ("artifact_path", "artifact_sha256", "artifact_bytes", "status"):
        row.pop(key, None)
    row.update(
        version=outcome["version"] + "-b",
        created_at=utc_now_iso(),
        reason="promoted by the hot-reload test",
        run_id="test-webapp-2b",
    )
    published = publish(store, row=row, model_file=model_file, metadata=row, promote=True)
    return {"version": published["version"]}


def _other_version(store, version: str) -> dict:
    from liquidity_core.registry.champion import list_versions
    from liquidity_core.store import db

    versions = list_versions(db.get_engine(store.database_url))
    others = [v for v in versions if v["version"] != version]
    assert others, f"the store has no version but {version}"  # the versions fixture made one
    return others[0]
