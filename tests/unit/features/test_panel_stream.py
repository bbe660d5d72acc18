"""The chunked panel reads and the sliding-window features (model/panel_stream.py)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from support.panels import make_panel as feature_panel

from liquidity_core import ingest
from liquidity_core.features.build import HISTORY_ROWS, build_features
from liquidity_core.features.panel_stream import (
    SCAN_COLUMNS,
    fingerprinted,
    frame_chunks,
    scan,
    stored_chunks,
    windowed_features,
)
from liquidity_core.inputs.demo import generate_panel
from liquidity_core.store.snapshots import load_snapshots
from liquidity_core.training.data import data_fingerprint


def make_panel(coins=7, snapshots=HISTORY_ROWS + 40, seed=3) -> pd.DataFrame:
    """test_features' random panel, without extras, long enough to need several windows."""
    return feature_panel(coins=coins, snapshots=snapshots, seed=seed, extras=False)


@pytest.mark.parametrize("chunk_rows", [7, 50, 333, 10_000])
def test_windowed_features_equal_the_whole_panel_when_every_coin_is_always_there(chunk_rows):
    panel = make_panel()
    whole = build_features(panel)
    parts = list(windowed_features(frame_chunks(panel, chunk_rows=chunk_rows)))
    X = pd.concat([p.X for p in parts], ignore_index=True)
    y = pd.concat([p.y for p in parts], ignore_index=True)
    meta = pd.concat([p.meta for p in parts], ignore_index=True)
    assert len(parts) == (1 if chunk_rows >= len(panel) else len(parts))
    pd.testing.assert_frame_equal(X, whole.X)
    pd.testing.assert_series_equal(y, whole.y)
    pd.testing.assert_frame_equal(meta, whole.meta)


def test_windowed_features_see_the_newest_history_rows_times_like_prediction():
    # A coin that skips snapshots: its window is the newest HISTORY_ROWS panel times.
    panel = make_panel(coins=3, snapshots=HISTORY_ROWS * 2 + 5)
    gaps = (panel["coin_id"] == "coin001") & (panel.index % 2 == 0)
    panel = panel[~gaps].reset_index(drop=True)
    parts = list(windowed_features(frame_chunks(panel, chunk_rows=3)))
    got = pd.concat([p.X for p in parts], ignore_index=True)
    times = np.sort(panel["snapshot_ts"].unique())
    for k in (HISTORY_ROWS + 3, len(times) - 2):
        recent = panel[
            (panel["snapshot_ts"] > times[k - HISTORY_ROWS]) & (panel["snapshot_ts"] <= times[k])
        ]
        fs = build_features(recent)
        want = fs.X[fs.meta["snapshot_ts"].to_numpy() == times[k]].reset_index(drop=True)
        meta = pd.concat([p.meta for p in parts], ignore_index=True)
        rows = np.flatnonzero(meta["snapshot_ts"].to_numpy() == times[k])
        pd.testing.assert_frame_equal(got.iloc[rows].reset_index(drop=True), want)


def test_scan_counts_times_and_targets_like_the_whole_panel():
    panel = make_panel(coins=5, snapshots=30)
    panel = panel.drop(index=[3, 4, 40]).reset_index(drop=True)  # coins missing at times
    panel.loc[10, "market_cap"] = 0.0  # no finite turnover: the row before has no target
    fs = build_features(panel)
    has = np.isfinite(fs.y.to_numpy())
    t = fs.meta["t"].to_numpy()
    # Rows of a time in any coin order, and only the columns scan reads.
    shuffled = panel.sample(frac=1.0, random_state=0).sort_values("snapshot_ts", kind="stable")
    for chunks in (frame_chunks(panel, chunk_rows=11), [shuffled[list(SCAN_COLUMNS)]]):
        seen = scan(chunks)
        assert seen.n_rows == len(panel) and seen.n_coins == 5
        assert seen.rows_at.tolist() == np.bincount(t).tolist()
        assert seen.targets_at.tolist() == np.bincount(t[has], minlength=30).tolist()


def test_chunks_hashed_as_they_go_by_give_the_whole_panels_fingerprint():
    panel = make_panel(coins=5, snapshots=30)
    hasher = hashlib.sha256()
    passed = list(fingerprinted(frame_chunks(panel, chunk_rows=11), hasher))
    assert len(passed) > 3
    pd.testing.assert_frame_equal(pd.concat(passed, ignore_index=True), panel)
    assert hasher.hexdigest() == data_fingerprint(panel)


def test_stored_chunks_read_the_stored_panel_in_order(settings, engine, tmp_path):
    path = tmp_path / "panel.csv"
    generate_panel(coins=9, snapshots=40, seed=5).to_csv(path, index=False)
    ingest.ingest_paths([path], settings=settings)
    whole = load_snapshots(engine)
    chunks = list(stored_chunks(engine, chunk_rows=25))
    assert len(chunks) > 5
    for c in chunks:
        assert c["snapshot_ts"].nunique() == len(np.unique(c["snapshot_ts"]))
    got = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(got, whole, check_dtype=False)
    hasher = hashlib.sha256()
    for _ in fingerprinted(stored_chunks(engine, chunk_rows=25), hasher):
        pass
    assert hasher.hexdigest() == data_fingerprint(whole)
    light = list(stored_chunks(engine, chunk_rows=25, columns=SCAN_COLUMNS))
    assert [list(c.columns) for c in light] == [list(SCAN_COLUMNS)] * len(light)
    got = pd.concat(light, ignore_index=True)
    key = ["snapshot_ts", "coin_id"]
    got = got.sort_values(key, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, whole[list(SCAN_COLUMNS)], check_dtype=False)
    assert scan(light).rows_at.tolist() == whole.groupby("snapshot_ts").size().tolist()
    with pytest.raises(ValueError, match="SCAN_COLUMNS"):
        stored_chunks(engine, columns=("coin_id",))
    until = whole["snapshot_ts"].iloc[200]
    since = whole["snapshot_ts"].iloc[100]
    part = pd.concat(stored_chunks(engine, since=since, until=until), ignore_index=True)
    assert part["snapshot_ts"].min() == since and part["snapshot_ts"].max() == until
