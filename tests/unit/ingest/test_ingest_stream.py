"""Big files load a piece at a time (ingest/stream.py) with the guarantees of a small one.

The piece size is cut to a few KiB so that small files take the streamed path; the
outcome must be what the whole-file parse (:func:`parse_csv`) says, row for row.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from support.faults import fail_inserts, inserts_tried

from liquidity_core import ingest, progress
from liquidity_core.errors import DatabaseError
from liquidity_core.ingest import stream
from liquidity_core.inputs.demo import generate_panel
from liquidity_core.inputs.reader import parse_csv
from liquidity_core.store import db

PIECE = 4096


@pytest.fixture
def small_pieces(monkeypatch, settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("files are loaded in pieces on PostgreSQL only")
    monkeypatch.setattr(stream, "PIECE_BYTES", PIECE)


def _panel_lines(coins=12, snapshots=30, seed=2) -> list[str]:
    panel = generate_panel(coins=coins, snapshots=snapshots, seed=seed, start="2024-01-01")
    return panel.to_csv(index=False).splitlines()


def _rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def _ledger(engine) -> dict:
    with engine.connect() as conn:
        return dict(
            conn.execute(sa.text("SELECT * FROM ingest_files ORDER BY id DESC")).mappings().first()
        )


def _messy_file(path: Path) -> Path:
    lines = _panel_lines()
    header, body = lines[0], lines[1:]
    body[5] = body[5].replace(body[5].split(",")[2], "not-a-price", 1)  # a bad value
    body.insert(40, "")  # a blank line
    body.insert(100, '"Quoted, Coin",QQQ,1.5,0.01,0.02,0.03,1000,50000,2024-01-03')
    body.append(body[300])  # the same coin and time again, pieces later
    body.append("Short,SHRT,1.0")  # too few fields
    path.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    return path


def test_a_file_in_pieces_loads_what_the_whole_file_parse_says(
    settings, engine, small_pieces, tmp_path
):
    path = _messy_file(tmp_path / "messy.csv")
    assert path.stat().st_size > 5 * PIECE
    want = parse_csv(path.read_bytes())
    (result,) = ingest.ingest_paths([path], settings=settings)
    assert result.status == "loaded", result.error
    assert result.rows_in_file == want.rows_in_file
    assert result.rows_loaded == len(want.rows)
    assert result.rows_rejected == len(want.rejected)
    row = _ledger(engine)
    assert (row["rows_in_file"], row["rows_loaded"], row["rows_rejected"]) == (
        want.rows_in_file,
        len(want.rows),
        len(want.rejected),
    )
    stored = _rows(
        engine, "SELECT coin_id, price FROM market_snapshots ORDER BY coin_id, snapshot_ts"
    )
    expect = want.rows.sort_values(["coin_id", "snapshot_ts"])
    assert stored == list(zip(expect["coin_id"], expect["price"], strict=True))
    rejected = _rows(
        engine, "SELECT line_number, reason, raw_line FROM rejected_rows ORDER BY line_number"
    )
    assert rejected == list(
        zip(want.rejected["line"], want.rejected["reason"], want.rejected["raw_line"], strict=True)
    )
    assert any("duplicate of line" in r[1] for r in rejected)


def test_a_file_in_pieces_that_deadlocks_is_retried_and_loads_each_row_once(
    settings, engine, small_pieces, tmp_path, caplog
):
    path = _messy_file(tmp_path / "messy.csv")
    want = parse_csv(path.read_bytes())
    fail_inserts(engine, 1)
    with caplog.at_level(logging.WARNING, logger="liquidity_core.ingest"):
        (result,) = ingest.ingest_paths([path], settings=settings)
    assert (result.status, result.rows_loaded) == ("loaded", len(want.rows))
    assert [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()] == [
        f"retrying {path} after deadlock detected (attempt 1)"
    ]
    assert _rows(engine, "SELECT COUNT(*) FROM market_snapshots") == [(len(want.rows),)]
    assert _rows(engine, "SELECT status, rows_loaded FROM ingest_files") == [
        ("loaded", len(want.rows))
    ]


def test_a_file_in_pieces_that_keeps_deadlocking_stores_nothing(
    settings, engine, small_pieces, tmp_path
):
    path = _messy_file(tmp_path / "messy.csv")
    fail_inserts(engine, 100)
    with pytest.raises(DatabaseError) as caught:
        ingest.ingest_paths([path], settings=settings)
    assert str(caught.value) == (
        f"the database at {db.describe_url(settings.database_url)} kept reporting 'deadlock "
        "detected' while loading messy.csv (5 attempts); nothing from it was stored"
    )
    assert inserts_tried(engine) == 5
    assert _rows(engine, "SELECT COUNT(*) FROM market_snapshots") == [(0,)]
    assert _rows(engine, "SELECT COUNT(*) FROM ingest_files") == [(0,)]


def test_an_overlapping_big_file_adds_only_new_rows(settings, engine, small_pieces, tmp_path):
    lines = _panel_lines()
    header, body = lines[0], lines[1:]
    first = tmp_path / "first.csv"
    first.write_text("\n".join([header, *body[:200]]) + "\n", encoding="utf-8")
    whole = tmp_path / "whole.csv"
    whole.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    (a,) = ingest.ingest_paths([first], settings=settings)
    (b,) = ingest.ingest_paths([whole], settings=settings)
    assert (a.rows_loaded, b.rows_loaded, b.rows_existing) == (200, len(body) - 200, 200)
    assert _rows(engine, "SELECT COUNT(*) FROM market_snapshots") == [(len(body),)]


def test_a_big_file_with_no_valid_row_is_quarantined_with_its_rows(
    settings, engine, small_pieces, tmp_path
):
    lines = _panel_lines(coins=5, snapshots=60)
    header, body = lines[0], lines[1:]
    bad = [",".join(["", *ln.split(",")[1:]]) for ln in body]  # no coin name anywhere
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *bad]) + "\n", encoding="utf-8")
    (result,) = ingest.ingest_paths([path], settings=settings)
    assert result.status == "quarantined"
    assert result.error.startswith(f"no valid rows: all {len(body)} rows failed checks")
    assert _rows(engine, "SELECT COUNT(*) FROM rejected_rows") == [(len(body),)]
    assert _rows(engine, "SELECT COUNT(*) FROM market_snapshots") == [(0,)]


def test_bad_bytes_in_a_later_piece_quarantine_the_file_and_store_nothing(
    settings, engine, small_pieces, tmp_path
):
    lines = _panel_lines()
    text = ("\n".join(lines) + "\n").encode()
    at = len(text) - 500
    path = tmp_path / "broken.csv"
    path.write_bytes(text[:at] + b"\xff" + text[at + 1 :])
    (result,) = ingest.ingest_paths([path], settings=settings)
    assert result.status == "quarantined"
    assert f"byte 0xff at offset {at} is not UTF-8" in result.error
    assert _rows(engine, "SELECT COUNT(*) FROM market_snapshots") == [(0,)]
    assert np.array(_rows(engine, "SELECT status FROM ingest_files")).ravel().tolist() == [
        "quarantined"
    ]
    assert pd.isna(_ledger(engine)["rows_loaded"]) or _ledger(engine)["rows_loaded"] == 0


def test_chunks_made_ahead_come_in_order_with_errors_in_place_and_stop_with_the_reader():
    import threading

    from liquidity_core.ingest.copy_io import made_ahead

    assert list(made_ahead(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield from (1, 2)
        raise ValueError("piece 3 is not CSV")

    got = []
    with pytest.raises(ValueError, match="piece 3"):
        for item in made_ahead(failing()):
            got.append(item)
    assert got == [1, 2]

    made = []

    def endless():
        for i in range(10**9):
            made.append(i)
            yield i

    reader = made_ahead(endless(), depth=2)
    assert next(reader) == 0
    reader.close()  # the reader stops early (a failed COPY): the thread stops too
    assert not any(t.name == "copy-encode" for t in threading.enumerate())
    assert len(made) <= 5


def test_pieces_double_from_the_small_first_one_and_cut_at_record_ends(monkeypatch, tmp_path):
    """The first piece is small (parsed before the COPY starts); each later one is twice
    the one before, up to the piece size, so the server never waits long for the next;
    every piece ends at a line end and together they are the whole file."""
    monkeypatch.setattr(stream, "FIRST_PIECE_BYTES", 1024)
    lines = _panel_lines(coins=40, snapshots=60)
    path = tmp_path / "panel.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = list(stream.pieces(path, piece_bytes=8192))
    assert b"".join(piece for _h, piece, _b in got) == path.read_bytes()[len(got[0][0]) :]
    pieces = [piece for _head, piece, _before in got if piece]  # the last may be empty
    assert all(piece.endswith(b"\n") for piece in pieces)
    sizes = [len(piece) for piece in pieces]
    line = max(len(x) for x in lines) + 1  # a piece is cut at most one line short
    for size, limit in zip(sizes[:-1], (1024, 2048, 4096, 8192), strict=False):
        assert limit - line < size <= limit + line, sizes
    assert max(sizes) <= 8192 + line and len(sizes) > 5, sizes


def test_pieces_never_cut_inside_a_quoted_field(monkeypatch, tmp_path):
    """A quoted field may hold line ends and run over several reads: a piece still ends
    only at a line end outside quotes, even when a read starts inside a quoted field."""
    monkeypatch.setattr(stream, "FIRST_PIECE_BYTES", 16)
    header = b"coin,symbol,price\n"
    rows = [
        b'"Plain",P,1\n',
        b'"Two\nlines",T,2\n',
        b'"' + b"long\n" * 40 + b'",L,3\n',  # longer than any read
        b'"a ""quote"" and\nmore",Q,4\n',
        b"bare,B,5\n",
    ] * 3
    path = tmp_path / "quoted.csv"
    path.write_bytes(header + b"".join(rows))
    got = list(stream.pieces(path, piece_bytes=64))
    assert b"".join(piece for _h, piece, _b in got) == b"".join(rows)
    pieces = [piece for _head, piece, _before in got if piece]
    assert len(pieces) > 3
    for piece in pieces:
        assert piece.count(b'"') % 2 == 0 and piece.endswith(b"\n"), piece
    # Each piece is whole records: the line count before each is that of the file.
    starts = [before for _h, piece, before in got if piece]
    assert starts == [1 + b"".join(pieces[:k]).count(b"\n") for k in range(len(pieces))]


class _Recorder(progress.Sink):
    def __init__(self):
        self.updates: list[tuple[str, float, int]] = []
        self.finished: list[progress.Task] = []

    def task_updated(self, task):
        self.updates.append((task.name, task.done, task.rows))

    def task_finished(self, task):
        self.finished.append(task)


def test_a_file_in_pieces_reports_its_progress_piece_by_piece(
    settings, engine, small_pieces, tmp_path
):
    """The pieces are parsed in the COPY's helper thread; their progress still reaches the
    file's task: bytes and rows growing to the whole file."""
    path = _messy_file(tmp_path / "messy.csv")
    with progress.listen(_Recorder()) as seen:
        (result,) = ingest.ingest_paths([path], settings=settings)
    assert result.status == "loaded", result.error
    assert len(seen.updates) >= 5 and {u[0] for u in seen.updates} == {"messy.csv"}
    done = [u[1] for u in seen.updates]
    # This file has a repeated row, so the direct COPY gives way to the staged one: two
    # passes, each growing to the whole file.
    passes = [i for i in range(1, len(done)) if done[i] < done[i - 1]]
    assert len(passes) <= 1, done
    for part in (done[: passes[0]], done[passes[0] :]) if passes else (done,):
        assert part == sorted(part) and part[-1] == path.stat().st_size, done
    assert seen.updates[-1][2] == result.rows_in_file
    (task,) = seen.finished
    assert task.total == path.stat().st_size and task.rows == result.rows_in_file
