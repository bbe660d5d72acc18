"""liquidity_core.ingest on SQLite and PostgreSQL: exactly-once loading, checks, moves, CLI."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from liquidity_core import ingest
from liquidity_core.cli import main
from liquidity_core.errors import InputError
from liquidity_core.inputs.demo import generate_panel
from liquidity_core.store.snapshots import load_snapshots

CG_HEADER = "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date"
LIQUIDITY = Path(sys.executable).parent / "liquidity"


def write(path: Path, *lines: str, header: str = CG_HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def ledger(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM ingest_files ORDER BY id")).mappings()
        return [dict(r) for r in rows]


def n_snapshots(engine) -> int:
    return scalar(engine, "SELECT COUNT(*) FROM market_snapshots")


def cli_env(settings, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITY_")}
    env.update(
        LIQUIDITY_DATABASE_URL=settings.database_url,
        LIQUIDITY_INGEST_DIR=str(settings.ingest_dir),
        LIQUIDITY_MODEL_DIR=str(settings.model_dir),
        LIQUIDITY_VAR_DIR=str(settings.var_dir),
    )
    env.update(extra)
    return env


# --- loading once -------------------------------------------------------------------------


def test_samples_load_once_and_a_repeat_is_a_duplicate(settings, engine, sample_files):
    first = ingest.ingest_paths(sample_files, settings=settings)
    assert [r.status for r in first] == ["loaded", "loaded"]
    assert [r.rows_loaded for r in first] == [497, 496]
    assert [r.rows_rejected for r in first] == [3, 4]
    assert [r.rows_in_file for r in first] == [500, 500]
    assert n_snapshots(engine) == 993
    with engine.connect() as conn:
        lines = conn.execute(
            sa.text(
                "SELECT line_number, reason FROM rejected_rows "
                "WHERE file_id = :f ORDER BY line_number"
            ),
            {"f": first[0].file_id},
        ).fetchall()
    assert lines == [
        (312, "24h_volume: missing"),
        (418, "24h_volume: missing"),
        (474, "24h_volume: missing"),
    ]

    again = ingest.ingest_paths([sample_files[0].parent], settings=settings)
    assert [r.status for r in again] == ["duplicate", "duplicate"]
    assert [r.duplicate_of for r in again] == [r.file_id for r in first]
    assert "same bytes as file_id=" in again[0].error
    assert n_snapshots(engine) == 993
    rows = ledger(engine)
    assert [r["status"] for r in rows] == ["loaded", "loaded", "duplicate", "duplicate"]
    assert rows[2]["duplicate_of"] == rows[0]["id"] and rows[2]["sha256"] == rows[0]["sha256"]
    assert rows[0]["file_format"] == "coingecko" and rows[0]["rows_loaded"] == 497


def test_stored_values_times_and_lookups(settings, engine, sample_files):
    ingest.ingest_paths(sample_files, settings=settings)
    panel = load_snapshots(engine)
    assert len(panel) == 993
    assert str(panel["snapshot_ts"].dt.tz) == "UTC"
    assert panel[["snapshot_ts", "coin_id"]].equals(
        panel[["snapshot_ts", "coin_id"]].sort_values(["snapshot_ts", "coin_id"])
    )
    btc = load_snapshots(engine, symbols=["btc"], until="2022-03-16")
    assert len(btc) == 1
    row = btc.iloc[0]
    assert (row["coin_id"], row["coin_name"], row["price"]) == ("bitcoin", "Bitcoin", 40859.46)
    assert row["snapshot_ts"] == pd.Timestamp("2022-03-16", tz="UTC")
    assert row["change_1h"] == pytest.approx(0.022) and row["market_cap"] == 770991461396.0
    assert (
        sorted(load_snapshots(engine, coin_ids=["feg-token", "feg-token-bsc"])["symbol"])
        == ["FEG"] * 4
    )
    if settings.database_url.startswith("sqlite"):
        stored = scalar(engine, "SELECT snapshot_ts FROM market_snapshots LIMIT 1")
        assert stored == "2022-03-16T00:00:00+00:00"


def test_an_overlapping_file_adds_only_new_rows_and_changes_nothing(settings, engine, tmp_path):
    a = write(
        tmp_path / "a.csv",
        "Bitcoin,BTC,100,0,0,0,10,1000,2022-03-16",
        "Ether,ETH,10,0,0,0,5,100,2022-03-16",
    )
    b = write(
        tmp_path / "b.csv",
        "Ether,ETH,99,0,0,0,5,100,2022-03-16",
        "Doge,DOGE,1,0,0,0,5,100,2022-03-16",
    )
    (ra,) = ingest.ingest_paths([a], settings=settings)
    (rb,) = ingest.ingest_paths([b], settings=settings)
    assert (rb.status, rb.rows_loaded, rb.rows_existing) == ("loaded", 1, 1)
    assert n_snapshots(engine) == 3
    with engine.connect() as conn:
        eth = conn.execute(
            sa.text("SELECT price, source_file_id FROM market_snapshots WHERE coin_id = 'ether'")
        ).one()
    assert tuple(eth) == (10.0, ra.file_id)  # the first file's row is kept as it was
    assert ledger(engine)[1]["rows_existing"] == 1


def test_cmc_and_ohlcv_files_load_in_canonical_units(settings, engine, tmp_path):
    cmc = write(
        tmp_path / "cmc.csv",
        '1,Bitcoin,BTC,"$1,000,000",$100,5,"$20,000",1%,-2%,3%,20220316',
        header="Rank,Name,Symbol,Market Cap,Price,Circulating Supply,Volume (24h),"
        "% 1h,% 24h,% 7d,snapshot_date",
    )
    ohlcv = write(
        tmp_path / "ohlcv.csv",
        "1,Ether,ETH,2022-03-15 23:59:59,1,1,1,10,50,500",
        "2,Ether,ETH,2022-03-16 23:59:59,1,1,1,11,60,550",
        header="SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap",
    )
    results = ingest.ingest_paths([cmc, ohlcv], settings=settings)
    assert [(r.status, r.file_format, r.rows_loaded) for r in results] == [
        ("loaded", "cmc", 1),
        ("loaded", "ohlcv", 2),
    ]
    panel = load_snapshots(engine).set_index("coin_id")
    btc = panel.loc["bitcoin"]
    assert (btc["price"], btc["volume_24h"], btc["market_cap"]) == (100.0, 20000.0, 1e6)
    assert (btc["change_1h"], btc["change_24h"], btc["change_7d"]) == pytest.approx(
        (0.01, -0.02, 0.03)
    )
    eth = panel.loc["ether"].sort_values("snapshot_ts")
    assert eth["change_24h"].iloc[1] == pytest.approx(0.1)
    assert eth["snapshot_ts"].iloc[1] == pd.Timestamp("2022-03-16 23:59:59", tz="UTC")


def test_extra_numeric_columns_come_back_as_x_columns(settings, engine, tmp_path):
    f = write(
        tmp_path / "x.csv",
        "A,A,1,0,0,0,1,10,2022-03-16,0.25,hi",
        "B,B,1,0,0,0,1,10,2022-03-16,,yo",
        header=CG_HEADER + ",Sentiment Score,note",
    )
    (r,) = ingest.ingest_paths([f], settings=settings)
    assert r.extra_columns == ["Sentiment Score"] and r.ignored_columns == ["note"]
    panel = load_snapshots(engine)
    assert panel["x_sentiment_score"].tolist()[0] == 0.25
    assert pd.isna(panel["x_sentiment_score"].tolist()[1])


# --- bad input ------------------------------------------------------------------------------


BAD_FILES = {
    "unknown_header": (b"when,what\n1,2\n", "unknown header 'when,what'"),
    "header_only": ((CG_HEADER + "\n").encode(), "no rows"),
    "empty": (b"", "empty file"),
    "latin1": (
        (CG_HEADER + "\nCaf\xe9,C,1,0,0,0,1,1,2022-03-16\n").encode("latin-1"),
        "unreadable encoding",
    ),
    "all_rows_bad": (
        (CG_HEADER + "\nA,A,x,0,0,0,1,1,2022-03-16\n,B,1,0,0,0,1,1,2022-03-16\n").encode(),
        "no valid rows: all 2 rows failed checks (first: line 2",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_are_quarantined_and_nothing_stored_changes(
    kind, settings, engine, sample_files, tmp_path
):
    ingest.ingest_paths(sample_files[:1], settings=settings)
    before = load_snapshots(engine)
    data, reason = BAD_FILES[kind]
    bad = tmp_path / f"{kind}.csv"
    bad.write_bytes(data)
    (r,) = ingest.ingest_paths([bad], settings=settings)
    assert r.status == "quarantined" and reason in r.error
    assert r.summary_line().startswith(f"quarantined {bad}: ")
    pd.testing.assert_frame_equal(load_snapshots(engine), before)
    row = ledger(engine)[-1]
    assert (row["status"], row["error"], row["rows_loaded"]) == ("quarantined", r.error, 0)
    rejected = scalar(engine, "SELECT COUNT(*) FROM rejected_rows WHERE file_id = :f", f=r.file_id)
    assert rejected == (2 if kind == "all_rows_bad" else 0)
    # The same bad bytes again are quarantined again (only loaded bytes are "seen").
    (again,) = ingest.ingest_paths([bad], settings=settings)
    assert again.status == "quarantined"


def test_a_bad_row_among_good_ones(settings, engine, tmp_path):
    f = write(
        tmp_path / "mixed.csv",
        "A,A,1,0,0,0,1,10,2022-03-16",
        "B,B,-3,0,0,0,1,10,2022-03-16",
        "C,C,1,0,0,0,1,10,not-a-date",
    )
    (r,) = ingest.ingest_paths([f], settings=settings)
    assert (r.status, r.rows_loaded, r.rows_rejected) == ("loaded", 1, 2)
    with engine.connect() as conn:
        got = conn.execute(
            sa.text("SELECT line_number, reason, raw_line FROM rejected_rows ORDER BY line_number")
        ).fetchall()
    assert got[0] == (3, "price: -3 is negative", "B,B,-3,0,0,0,1,10,2022-03-16")
    assert got[1][0] == 4 and "'not-a-date' is not a date" in got[1][1]


def test_a_missing_path_is_named_and_nothing_is_ingested(settings, engine, sample_files):
    with pytest.raises(InputError, match="no such file or folder: .*nope.csv"):
        ingest.ingest_paths([sample_files[0], "/nope.csv"], settings=settings)
    assert ledger(engine) == []


# --- moving files -----------------------------------------------------------------------------


def test_move_to_processed_and_quarantine_without_overwriting(settings, engine, sample_files):
    drop = settings.ingest_dir
    good = shutil.copy(sample_files[0], drop / "day.csv")
    (drop / "bad.csv").write_bytes(b"nope\n1\n")
    processed = drop / "processed"
    processed.mkdir()
    (processed / "day.csv").write_text("an older file with the same name\n")

    results = ingest.ingest_paths([drop], settings=settings, move=True)
    by_name = {Path(r.path).name: r for r in results}
    assert by_name["day.csv"].moved_to == str(processed / "day.1.csv")
    assert (processed / "day.csv").read_text() == "an older file with the same name\n"
    assert (processed / "day.1.csv").read_bytes() == Path(sample_files[0]).read_bytes()
    assert not Path(good).exists()
    quarantine = drop / "quarantine"
    assert by_name["bad.csv"].moved_to == str(quarantine / "bad.csv")
    reason = (quarantine / "bad.csv.reason.txt").read_text()
    assert "unknown header 'nope'" in reason and by_name["bad.csv"].sha256 in reason

    # The same bad file dropped again: quarantined beside the first, nothing overwritten.
    (drop / "bad.csv").write_bytes(b"nope\n1\n")
    (r,) = ingest.ingest_paths([drop / "bad.csv"], settings=settings, move=True)
    assert r.moved_to == str(quarantine / "bad.1.csv")
    assert (quarantine / "bad.1.csv.reason.txt").exists()


def test_symlinks_and_files_outside_the_ingest_folder_are_refused(
    settings, engine, sample_files, tmp_path
):
    link = settings.ingest_dir / "link.csv"
    link.symlink_to(sample_files[0])
    outside = shutil.copy(sample_files[0], tmp_path / "outside.csv")
    sneaky = settings.ingest_dir / ".." / "outside.csv"
    results = ingest.ingest_paths([link, outside, sneaky], settings=settings, move=True)
    assert [r.status for r in results] == ["refused"] * 3
    assert "symbolic link" in results[0].error
    assert "outside the ingest folder" in results[1].error
    assert "outside the ingest folder" in results[2].error
    assert link.is_symlink() and Path(outside).exists()
    assert ledger(engine) == [] and n_snapshots(engine) == 0
    # Without --move a file anywhere may be read, but a symlink is still refused.
    results = ingest.ingest_paths([link, outside], settings=settings)
    assert [r.status for r in results] == ["refused", "loaded"]


def test_list_ready_files_skips_partial_fresh_and_linked_files(settings, sample_files):
    drop = settings.ingest_dir
    old = write(drop / "old.csv", "A,A,1,0,0,0,1,1,2022-03-16")
    upper = write(drop / "UPPER.CSV", "A,A,1,0,0,0,1,1,2022-03-16")
    write(drop / "fresh.csv", "A,A,1,0,0,0,1,1,2022-03-16")
    write(drop / "half.csv.part", "A")
    write(drop / "half.tmp", "A")
    write(drop / ".editor-swap.csv", "A")
    (drop / "sub.csv").mkdir()
    (drop / "link.csv").symlink_to(sample_files[0])
    now = time.time()
    for f in (old, upper):
        os.utime(f, (now - 120, now - 120))
    patient = settings.with_overrides(file_settle_seconds=60.0)
    assert ingest.list_ready_files(patient, now=now) == [str(upper), str(old)]
    eager = settings.with_overrides(file_settle_seconds=0.0)
    assert len(ingest.list_ready_files(eager, now=now + 1)) == 3


def test_ingest_one_moves_and_reports_rows(settings, engine, sample_files):
    path = shutil.copy(sample_files[1], settings.ingest_dir / "d.csv")
    out = ingest.ingest_one(path, settings)
    assert (out["status"], out["rows_loaded"]) == ("loaded", 496)
    assert out["moved_to"] == str(settings.ingest_dir / "processed" / "d.csv")
    assert ingest.rows_added([out, None, {"rows_loaded": 2}]) == 498


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli(settings, engine, monkeypatch, capsys):
    for key, value in cli_env(settings).items():
        if key.startswith("LIQUIDITY_"):
            monkeypatch.setenv(key, value)

    def run(*args):
        code = main(["ingest", *map(str, args)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_cli_exit_codes_lines_and_json(cli, sample_files, tmp_path):
    code, out, err = cli(sample_files[0])
    assert code == 0 and err == ""
    assert out.strip() == (
        f"loaded      {sample_files[0]}: 497 rows loaded, 0 already stored, "
        "3 rejected (reasons in rejected_rows, file_id=1)"
    )
    code, out, _ = cli("--json", sample_files[0])
    payload = json.loads(out)
    assert code == 0 and payload["ok"] is True
    assert payload["files"][0]["status"] == "duplicate"
    assert payload["files"][0]["duplicate_of"] == 1

    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    code, out, _ = cli("--json", bad, sample_files[1])
    payload = json.loads(out)
    assert code == 1 and payload["ok"] is False
    assert [f["status"] for f in payload["files"]] == ["quarantined", "loaded"]
    code, out, err = cli(tmp_path / "missing.csv")
    assert code == 3 and out == ""  # input rejected
    assert err.strip() == f"liquidity ingest: error: no such file or folder: {tmp_path}/missing.csv"
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert cli(empty)[0] == 1  # no CSV files found is not success


def test_cli_with_an_unreachable_database_prints_one_line_and_leaves_the_file(
    tmp_path, sample_files
):
    drop = tmp_path / "drop"
    drop.mkdir()
    f = shutil.copy(sample_files[0], drop / "a.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITY_")}
    env.update(
        LIQUIDITY_DATABASE_URL="postgresql+psycopg2://u:secret@127.0.0.1:1/x?connect_timeout=3",
        LIQUIDITY_INGEST_DIR=str(drop),
        LIQUIDITY_VAR_DIR=str(tmp_path / "var"),
    )
    proc = subprocess.run(
        [str(LIQUIDITY), "ingest", "--move", str(f)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4  # storage unavailable
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "127.0.0.1:1" in lines[0] and "Traceback" not in proc.stderr
    assert "secret" not in proc.stderr
    assert Path(f).exists() and not (drop / "processed").exists()


# --- crashes and concurrency --------------------------------------------------------------------


def _big_file(path: Path, coins: int, snapshots: int) -> Path:
    generate_panel(coins=coins, snapshots=snapshots, seed=5).to_csv(path, index=False)
    return path


def _mid_load(settings, app_name: str):
    """A probe that is true once the load transaction is writing rows."""
    if settings.database_url.startswith("sqlite"):
        wal = Path(settings.database_url.removeprefix("sqlite:///") + "-wal")
        return lambda engine: wal.exists() and wal.stat().st_size > 2_000_000
    sql = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = :a "
        "AND state = 'active' AND (query ILIKE '%COPY %' OR query ILIKE '%FROM ingest_stage%')"
    )
    return lambda engine: scalar(engine, sql, a=app_name) > 0


def _with_app_name(url: str, app_name: str) -> str:
    if url.startswith("sqlite"):
        return url
    return f"{url}{'&' if '?' in url else '?'}application_name={app_name}"


def test_a_kill_mid_load_leaves_nothing_and_a_rerun_loads_everything(settings, engine, tmp_path):
    big = _big_file(tmp_path / "big.csv", coins=250, snapshots=400)  # 100,000 rows
    app = f"killtest_{uuid.uuid4().hex[:8]}"
    env = cli_env(settings, LIQUIDITY_DATABASE_URL=_with_app_name(settings.database_url, app))
    probe = _mid_load(settings, app)
    proc = subprocess.Popen(
        [str(LIQUIDITY), "ingest", str(big)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not probe(engine):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the load finished before it could be killed"

    # All or nothing: a killed transaction leaves no rows and no ledger row.
    assert n_snapshots(engine) == 0
    assert ledger(engine) == []

    rerun = subprocess.run(
        [str(LIQUIDITY), "ingest", "--json", str(big)],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    (result,) = json.loads(rerun.stdout)["files"]
    assert (result["status"], result["rows_loaded"], result["rows_rejected"]) == (
        "loaded",
        100_000,
        0,
    )
    assert n_snapshots(engine) == 100_000
    rows = ledger(engine)
    assert [(r["status"], r["rows_loaded"]) for r in rows] == [("loaded", 100_000)]
    assert scalar(engine, "SELECT COUNT(DISTINCT source_file_id) FROM market_snapshots") == 1


def test_two_concurrent_runs_on_the_same_file_load_it_once(settings, engine, tmp_path):
    big = _big_file(tmp_path / "same.csv", coins=100, snapshots=300)  # 30,000 rows
    procs = [
        subprocess.Popen(
            [str(LIQUIDITY), "ingest", "--json", str(big)],
            env=cli_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    results = [json.loads(o[0])["files"][0] for o in outs]
    assert sorted(r["status"] for r in results) == ["duplicate", "loaded"]
    assert sum(r["rows_loaded"] for r in results) == 30_000
    assert n_snapshots(engine) == 30_000
    rows = ledger(engine)
    assert sorted(r["status"] for r in rows) == ["duplicate", "loaded"]
    loaded = next(r for r in rows if r["status"] == "loaded")
    assert next(r for r in rows if r["status"] == "duplicate")["duplicate_of"] == loaded["id"]


def test_two_concurrent_runs_on_overlapping_files_store_each_row_once(settings, engine, tmp_path):
    panel = generate_panel(coins=100, snapshots=200, seed=8)
    dates = sorted(panel["date"].unique())
    first = panel[panel["date"] <= dates[120]]
    second = panel[panel["date"] >= dates[80]].sample(frac=1.0, random_state=1)  # other order
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    first.to_csv(a, index=False)
    second.to_csv(b, index=False)
    procs = [
        subprocess.Popen(
            [str(LIQUIDITY), "ingest", "--json", str(f)],
            env=cli_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in (a, b)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    results = [json.loads(o[0])["files"][0] for o in outs]
    overlap = 100 * 41
    assert sum(r["rows_loaded"] for r in results) == len(panel)
    assert sum(r["rows_existing"] for r in results) == overlap
    assert n_snapshots(engine) == len(panel)


def test_values_round_trip_exactly_through_both_load_paths(settings, engine, tmp_path):
    # The first file takes the direct path (nothing stored in its time range); the second
    # overlaps it, so it goes through the staging table and the upsert.
    header = CG_HEADER + ",score"
    first = write(
        tmp_path / "first.csv",
        "Café Coin,CAF,0.1,,-0.5,1e-7,12345678901.25,98765432109.5,2022-03-16,0.1",
        '"Quote ""Q"", Inc",QQ,3.3333333333333335,0.0,0.0,0.0,1,2,2022-03-16,',
        header=header,
    )
    second = write(
        tmp_path / "second.csv",
        "Café Coin,CAF,9,,,,1,1,2022-03-16,",
        "Ünïcode Ω,UNI,0.30000000000000004,,,,5,50,2022-03-16T12:34:56+05:00,-2.5",
        header=header,
    )
    results = ingest.ingest_paths([first, second], settings=settings)
    assert [(r.rows_loaded, r.rows_existing) for r in results] == [(2, 0), (1, 1)]
    panel = load_snapshots(engine).set_index("coin_id")
    cafe, quote, uni = panel.loc["cafe-coin"], panel.loc["quote-q-inc"], panel.loc["unicode"]
    assert (cafe["coin_name"], cafe["price"], cafe["change_24h"], cafe["change_7d"]) == (
        "Café Coin",
        0.1,
        -0.5,
        1e-7,
    )
    assert pd.isna(cafe["change_1h"])
    assert (cafe["volume_24h"], cafe["market_cap"], cafe["x_score"]) == (
        12345678901.25,
        98765432109.5,
        0.1,
    )
    assert quote["coin_name"] == 'Quote "Q", Inc' and quote["price"] == 3.3333333333333335
    assert pd.isna(quote["x_score"])
    assert (uni["coin_name"], uni["price"], uni["x_score"]) == (
        "Ünïcode Ω",
        0.30000000000000004,
        -2.5,
    )
    assert uni["snapshot_ts"] == pd.Timestamp("2022-03-16 07:34:56", tz="UTC")
    assert pd.isna(uni["change_1h"]) and pd.isna(uni["change_7d"])


@pytest.mark.parametrize("sub", ["processed", "quarantine"])
def test_a_symlinked_processed_or_quarantine_folder_is_not_followed(
    settings, engine, tmp_path, sub
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (settings.ingest_dir / sub).symlink_to(elsewhere, target_is_directory=True)
    drop = settings.ingest_dir / "drop.csv"
    if sub == "processed":
        write(drop, "A,A,1,0,0,0,1,1,2024-01-01")
    else:
        drop.write_text("not,a,known,header\n1,2,3,4\n")
    out = ingest.ingest_one(drop, settings)
    assert out["status"] == ("loaded" if sub == "processed" else "quarantined")
    assert out["moved_to"] is None and "symbolic link" in out["warning"]
    assert list(elsewhere.iterdir()) == [] and drop.exists()
