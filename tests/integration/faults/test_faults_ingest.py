"""Ingestion under faults, with real processes: kill -9, a lost database, a full disk.

- ``liquidity ingest --move`` of a 200,000-row file is killed with SIGKILL at five
  random moments (one in each fifth of a normal run, so imports, parsing, COPY and
  commit all get hit); after every kill the database holds all of the file or none of
  it; a last run leaves exactly the file's rows, one ``loaded`` ledger row, the file in
  ``processed/``.
- The connection to PostgreSQL goes through a real TCP forwarder process that is
  SIGKILLed in the middle of the COPY (the database "goes away"), or the server ends the
  backend (``pg_terminate_backend``, as a restart does): the command fails with one line
  naming the host, the file stays in the ingest folder, nothing is half-loaded; a
  re-run through a fresh forwarder loads it fully.
- A full disk (a 2 MB tmpfs) under the SQLite database or under the ingest folder: the
  run fails or quarantines cleanly, the file is never half-moved.
- Unreadable entries (a FIFO, a file that vanishes, non-UTF-8 bytes, a file the ingest
  user cannot read) never hang or crash the run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.faults import (
    Proxy,
    kill9,
    liquidity_env,
    message_lines,
    run_cli,
    start_cli,
    url_via,
    write_big_csv,
)

from liquidity_core.ingest import ingest_one, list_ready_files
from liquidity_core.store import db

KILLS = 5
FAULTS: dict[str, int] = {}  # faults injected by this module, reported at the end


def _count(fault: str, n: int = 1) -> None:
    FAULTS[fault] = FAULTS.get(fault, 0) + n


@pytest.fixture(scope="module", autouse=True)
def _report_faults():
    yield
    print(f"\ningest faults injected and survived: {FAULTS} (total {sum(FAULTS.values())})")


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("big") / "market_big.csv"
    return path, write_big_csv(path)


def ledger(settings) -> dict:
    engine = db.get_engine(settings.database_url)
    with db.transaction(engine) as conn:
        files = conn.execute(
            sa.text("SELECT id, status, rows_loaded, rows_rejected FROM ingest_files ORDER BY id")
        ).all()
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM market_snapshots")).scalar_one()
        keys = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM "
                "(SELECT DISTINCT coin_id, snapshot_ts FROM market_snapshots) k"
            )
        ).scalar_one()
        by_source = dict(
            conn.execute(
                sa.text(
                    "SELECT source_file_id, COUNT(*) FROM market_snapshots GROUP BY source_file_id"
                )
            ).all()
        )
    return {"files": [tuple(f) for f in files], "rows": rows, "keys": keys, "by_source": by_source}


def _assert_all_or_nothing(state: dict, n: int) -> None:
    loaded = [f for f in state["files"] if f[1] == "loaded"]
    assert state["rows"] == state["keys"], "duplicate (coin, time) rows"
    if state["rows"] == 0:
        assert not loaded, state
    else:
        assert state["rows"] == n, f"half-loaded: {state['rows']} of {n} rows"
        assert len(loaded) == 1 and loaded[0][2] == n, state
        assert state["by_source"] == {loaded[0][0]: n}


@pytest.mark.slow
def test_kill9_at_random_points_then_rerun_loads_exactly_once(settings, engine, big_file):
    src, n = big_file
    target = settings.ingest_dir / src.name
    shutil.copy(src, target)
    # A whole run takes 8-12 s here (imports ~2 s, parse ~2 s, load and commit the
    # rest): one kill in each fifth of 0.3-12 s, so late kills may land after the commit.
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    span = (0.3, 12.0)
    width = (span[1] - span[0]) / KILLS
    delays = [span[0] + width * (i + rng.random()) for i in range(KILLS)]
    outcomes = []
    for delay in delays:
        proc = start_cli(settings, "ingest", "--move", str(target))
        time.sleep(delay)
        finished = proc.poll() is not None
        kill9(proc)
        state = ledger(settings)
        _assert_all_or_nothing(state, n)
        outcomes.append((round(delay, 2), "finished" if finished else "killed", state["rows"]))
        _count("kill -9 during ingest")
        if not target.exists():  # a run completed before the kill: put the file back
            assert state["rows"] == n
            shutil.copy(src, target)
    print(f"\nkill -9 schedule (seed {seed}): {outcomes}")

    proc = run_cli(settings, "ingest", "--move", "--json", str(target))
    assert proc.returncode == 0, proc.stderr
    state = ledger(settings)
    _assert_all_or_nothing(state, n)
    assert state["rows"] == n
    assert sum(1 for f in state["files"] if f[1] == "loaded") == 1
    assert not target.exists()
    processed = sorted(p.name for p in (settings.ingest_dir / "processed").iterdir())
    # A run that finished before its kill moved the file already; the copy put back then
    # is a duplicate, moved beside it as market_big.1.csv ("." sorts before "c").
    assert src.name in processed and all(p.startswith("market_big") for p in processed)
    # Leftovers of the killed runs: no staging table, no quarantine, no temp files.
    assert not (settings.ingest_dir / "quarantine").exists()
    assert sorted(p.name for p in settings.ingest_dir.iterdir()) == ["processed"]


# --- the database goes away ---------------------------------------------------------------


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        kill9(proc)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            pipe.close()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module", params=["proxy-killed", "backend-terminated"])
def lost_mid_copy(request, big_file, tmp_path_factory):
    """A 200k-row ``liquidity ingest --move`` whose database connection dies mid-COPY.

    ``proxy-killed``: the client talks to PostgreSQL through a TCP forwarder process,
    SIGKILLed once 4 MB of the COPY went through (the database "goes away").
    ``backend-terminated``: ``pg_terminate_backend`` on the session running the COPY
    (what clients see when the server restarts).
    """
    from support.webapp import database, settings_for

    root = tmp_path_factory.mktemp(f"lost_{request.param}")
    src, n = big_file
    with database("postgresql", root) as url:
        settings = settings_for(root, url)
        db.upgrade(db.get_engine(url))
        target = settings.ingest_dir / src.name
        shutil.copy(src, target)
        real = sa.engine.make_url(url)
        if request.param == "proxy-killed":
            proxy = Proxy(real.host or "127.0.0.1", real.port or 5432, root / "proxy.log").start()
            via = settings.with_overrides(database_url=url_via(url, proxy.port))
            host = f"127.0.0.1:{proxy.port}"
            proc = start_cli(via, "ingest", "--move", str(target))
            try:
                _wait(
                    lambda: proxy.bytes_forwarded() > 4_000_000 or proc.poll() is not None,
                    60,
                    "the COPY to start",
                )
                assert proc.poll() is None, "the load finished before the proxy was killed"
                proxy.kill()
                _count("database connection lost mid-COPY (proxy SIGKILLed)")
                _, err = proc.communicate(timeout=120)
            finally:
                proxy.stop()
                _reap(proc)
        else:
            app = f"rel_{uuid.uuid4().hex[:10]}"
            via = settings.with_overrides(
                database_url=real.update_query_dict({"application_name": app}).render_as_string(
                    hide_password=False
                )
            )
            host = f"{real.host}:{real.port or 5432}"
            admin = sa.create_engine(os.environ["TEST_DATABASE_URL"], poolclass=sa.pool.NullPool)

            def in_load_transaction():
                # The file's one transaction has begun once the session holds an xid
                # (the ledger claim INSERT): terminate it then, mid-load.
                with admin.connect() as conn:
                    return conn.execute(
                        sa.text(
                            "SELECT pid FROM pg_stat_activity WHERE application_name = :a "
                            "AND backend_xid IS NOT NULL"
                        ),
                        {"a": app},
                    ).scalar()

            proc = start_cli(via, "ingest", "--move", str(target))
            try:
                pid = _wait(
                    lambda: in_load_transaction() or proc.poll() is not None,
                    60,
                    "the load transaction",
                )
                assert proc.poll() is None, "the load finished before the backend was ended"
                with admin.connect() as conn:
                    conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                _count("backend terminated mid-load (server restart)")
                _, err = proc.communicate(timeout=120)
            finally:
                admin.dispose()
                _reap(proc)
        yield {
            "settings": settings,
            "target": target,
            "src": src,
            "n": n,
            "host": host,
            "returncode": proc.returncode,
            "stderr": err,
            "via": via,
        }


def test_database_lost_mid_copy_leaves_the_file_and_nothing_loaded(lost_mid_copy):
    lost = lost_mid_copy
    settings, target, n = lost["settings"], lost["target"], lost["n"]
    assert lost["returncode"] != 0
    assert target.exists(), "the file must stay in the ingest folder"
    assert not (settings.ingest_dir / "processed").exists()
    assert not (settings.ingest_dir / "quarantine").exists()
    state = ledger(settings)
    assert state["rows"] == 0 and state["files"] == [], state

    # A re-run (the DAG's retry) with the database back loads it fully, exactly once.
    proc = run_cli(settings, "ingest", "--move", str(target))
    assert proc.returncode == 0, proc.stderr
    state = ledger(settings)
    _assert_all_or_nothing(state, n)
    assert state["rows"] == n
    assert not target.exists() and (settings.ingest_dir / "processed" / target.name).exists()


def _one_line_error(returncode: int, stderr: str, host: str) -> str:
    assert returncode != 0
    lines = message_lines(stderr)  # progress lines aside, when the load took a while
    assert "Traceback" not in stderr, f"a traceback instead of a message:\n{stderr[-2500:]}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr[-3000:]}"
    assert host in lines[0], lines[0]
    return lines[0]


def test_database_lost_mid_copy_fails_with_one_line_naming_the_host(lost_mid_copy):
    lost = lost_mid_copy
    line = _one_line_error(lost["returncode"], lost["stderr"], lost["host"])
    print(f"\nmessage: {line}")


# --- full disk --------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB tmpfs at ``tmp_path/tiny`` (skipped when mounting is not allowed)."""
    where = tmp_path / "tiny"
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    for name, chunk in (("filler.bin", 65536), ("filler2.bin", 512), ("filler3.bin", 1)):
        try:
            with open(folder / name, "wb", buffering=0) as fh:
                while True:
                    fh.write(b"\0" * chunk)
        except OSError:
            pass


def _demo_file(path: Path, rows: int = 3000) -> int:
    from liquidity_core.inputs.demo import generate_panel

    panel = generate_panel(coins=rows // 10, snapshots=10, seed=5, start="2024-01-01")
    panel.to_csv(path, index=False)
    return len(panel)


def _sqlite_db_disk_full(settings, tiny_disk) -> tuple:
    """``liquidity ingest --move`` of a 3 MB file into a SQLite database on a 2 MB disk."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the database file's disk is a SQLite matter")
    s = settings.with_overrides(database_url=f"sqlite:///{tiny_disk / 'liquidity.db'}")
    assert run_cli(s, "db", "upgrade").returncode == 0
    target = s.ingest_dir / "drop.csv"
    _demo_file(target, rows=30000)  # ~3 MB of rows: cannot fit in 2 MB
    proc = run_cli(s, "ingest", "--move", str(target))
    _count("disk full under the database")
    return s, target, proc


def test_disk_full_under_the_sqlite_database_loads_nothing(settings, tiny_disk):
    s, target, proc = _sqlite_db_disk_full(settings, tiny_disk)
    assert proc.returncode != 0
    assert target.exists(), "the file must stay in the ingest folder"
    assert not (s.ingest_dir / "processed").exists()
    assert not (s.ingest_dir / "quarantine").exists()
    state = ledger(s)  # the database on the full disk still opens: nothing half-loaded
    assert state["rows"] == 0 and state["files"] == [], state


def test_disk_full_under_the_sqlite_database_says_so_in_one_line(settings, tiny_disk):
    s, target, proc = _sqlite_db_disk_full(settings, tiny_disk)
    assert "Traceback" not in proc.stderr, proc.stderr[-2500:]
    lines = message_lines(proc.stderr)  # progress lines aside, when the load took a while
    assert len(lines) == 1 and "full" in lines[0].lower(), proc.stderr[-2500:]


def _ingest_one_in(settings, path: Path) -> subprocess.CompletedProcess:
    """The DAG's mapped task (``ingest_one``) in its own process."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import json,sys; from liquidity_core.settings import load_settings; "
            "from liquidity_core.ingest import ingest_one; "
            "print(json.dumps(ingest_one(sys.argv[1], load_settings())))",
            str(path),
        ],
        env=liquidity_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _full_ingest_folder(settings, tiny_disk) -> tuple:
    s = settings.with_overrides(ingest_dir=tiny_disk)
    bad = tiny_disk / "bad.csv"
    bad.write_bytes(b"this,is,not\n1,2,3\n")
    good = tiny_disk / "good.csv"
    n = _demo_file(good, rows=200)
    _fill(tiny_disk)
    _count("disk full under the ingest folder", 2)
    return s, bad, good, n, {p.name: _ingest_one_in(s, p) for p in (bad, good)}


def test_disk_full_under_the_ingest_folder_never_half_moves(settings, engine, tiny_disk):
    s, bad, good, n, outcomes = _full_ingest_folder(settings, tiny_disk)
    for name, proc in outcomes.items():
        print(
            f"\n{name}: exit {proc.returncode} {proc.stdout.strip()[:200]} "
            f"{proc.stderr.strip()[-300:]}"
        )
    # Every file is in exactly one place, whole.
    for path, expect_dir in ((bad, "quarantine"), (good, "processed")):
        copies = list(tiny_disk.rglob(path.name))
        assert len(copies) == 1, copies
        assert copies[0].parent.name == expect_dir, copies
    assert (tiny_disk / "processed" / "good.csv").read_bytes().count(b"\n") == n + 1
    # The reason of the quarantine is in the ledger even if the disk had no room for a note.
    with db.transaction(db.get_engine(s.database_url)) as conn:
        reason = conn.execute(
            sa.text("SELECT error FROM ingest_files WHERE file_name = 'bad.csv'")
        ).scalar_one()
    assert "header" in reason.lower(), reason
    assert ledger(s)["rows"] == n


def test_disk_full_under_the_ingest_folder_leaves_no_empty_note(settings, engine, tiny_disk):
    s, bad, good, n, outcomes = _full_ingest_folder(settings, tiny_disk)
    note = tiny_disk / "quarantine" / "bad.csv.reason.txt"
    assert not note.exists() or "header" in note.read_text(), "an empty reason note"
    assert outcomes["bad.csv"].returncode == 0, outcomes["bad.csv"].stderr[-1500:]


# --- unreadable entries ---------------------------------------------------------------------


def test_unreadable_entries_never_hang_or_crash(settings, engine):
    folder = settings.ingest_dir
    fifo = folder / "pipe.csv"
    os.mkfifo(fifo)
    (folder / "dir.csv").mkdir()
    latin = folder / "latin1.csv"
    latin.write_bytes(
        "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\n"
        "Caf\u00e9 Coin,CAF,1,0,0,0,10,100,2024-01-01\n".encode("latin-1")
    )
    utf16 = folder / "utf16.csv"
    utf16.write_bytes("coin,symbol,price\nA,B,1\n".encode("utf-16"))
    gone = folder / "gone.csv"
    shutil.copy(latin, gone)
    ready = list_ready_files(settings)
    assert str(fifo) not in ready and str(folder / "dir.csv") not in ready
    _count("FIFO / directory in the ingest folder", 2)
    # Named explicitly, a FIFO is refused without opening it (opening would block).
    proc = run_cli(settings, "ingest", "--json", str(fifo), timeout=60)
    assert proc.returncode == 1 and "not a regular file" in proc.stdout
    # Invalid bytes: quarantined with the reason, moved with a note.
    for path in (latin, utf16):
        out = ingest_one(path, settings)
        _count("non-UTF-8 bytes")
        assert out["status"] == "quarantined" and "UTF-8" in out["error"], out
        note = Path(out["moved_to"] + ".reason.txt")
        assert "UTF-8" in note.read_text()
    # A file that vanishes between listing and loading (another run took it).
    assert str(gone) in ready
    gone.unlink()
    _count("file vanished after listing")
    out = ingest_one(gone, settings)
    assert out["status"] == "refused" and "no such file" in out["error"]
    assert db.get_engine(settings.database_url)  # nothing else to check: no rows, no crash
    assert ledger(settings)["rows"] == 0


def test_file_the_ingest_process_cannot_read(settings, engine):
    """A file with mode 000, read by a process without CAP_DAC_OVERRIDE (root ignores
    modes otherwise): quarantined with the reason (so the DAG does not retry it every
    run), moved whole, nothing loaded."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE")
    path = settings.ingest_dir / "secret.csv"
    _demo_file(path, rows=100)
    path.chmod(0)
    proc = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-dac_override,-dac_read_search",
            sys.executable,
            "-c",
            "import json,sys; from liquidity_core.settings import load_settings;"
            "from liquidity_core.ingest import ingest_one;"
            "print(json.dumps(ingest_one(sys.argv[1], load_settings())))",
            str(path),
        ],
        env=liquidity_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    _count("unreadable file (EACCES)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nunreadable file: {out['status']}: {out['error']}")
    assert out["status"] == "quarantined", out
    assert "Permission denied" in out["error"], out
    copies = list(settings.ingest_dir.rglob("secret.csv"))
    assert copies == [settings.ingest_dir / "quarantine" / "secret.csv"], copies
    note = settings.ingest_dir / "quarantine" / "secret.csv.reason.txt"
    assert "Permission denied" in note.read_text()
    assert ledger(settings)["rows"] == 0
