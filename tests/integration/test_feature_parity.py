"""A row's features are the same whichever path computes them, for coins with gaps too.

Training reads the store in time-ordered chunks with a sliding window
(``panel_stream``), a stored forecast reads the window of its snapshot
(``forecasts.features_at``), and an API call builds the features of the rows it is given
from the in-memory history of the newest snapshot times (``predict.features_for_rows``).
Random panels, where coins miss snapshots (a tenth of the rows, and one coin absent for
longer than the history), are ingested through the real path into SQLite and PostgreSQL;
the newest snapshot's features must agree row by row and column by column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liquidity_core.features.build import HISTORY_ROWS, build_features
from liquidity_core.features.panel_stream import stored_chunks, windowed_features
from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import write_demo_drops
from liquidity_core.monitoring.forecasts import features_at
from liquidity_core.serving.predict import features_for_rows
from liquidity_core.store.snapshots import SNAPSHOT_TIMES, load_snapshots, to_utc

COINS = 10
SNAPSHOTS = HISTORY_ROWS + 15  # longer than the history, so windows are cut by time


def _gappy_drops(folder, seed: int) -> list:
    """Demo drops with a tenth of the rows removed at random, and coin 0 absent from
    snapshot 5 to HISTORY_ROWS + 8 (it comes back with its previous row out of reach)."""
    drops = write_demo_drops(folder, coins=COINS, snapshots=SNAPSHOTS, seed=seed)
    rng = np.random.default_rng(seed)
    first_coin = pd.read_csv(drops[0])["coin"].iloc[0]
    for i, path in enumerate(drops):
        frame = pd.read_csv(path)
        keep = rng.random(len(frame)) >= 0.1
        if 5 <= i <= HISTORY_ROWS + 8:
            keep &= (frame["coin"] != first_coin).to_numpy()
        keep[rng.integers(len(frame))] = True  # every snapshot keeps a row
        frame[keep].to_csv(path, index=False)
    return drops


def _by_coin(X: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    return X.set_index(pd.Index(meta["coin_id"].to_numpy(), name="coin_id")).sort_index()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_stored_forecast_and_api_features_agree(settings, engine, tmp_path, seed):
    drops = _gappy_drops(tmp_path / "drops", seed)
    outcomes = ingest_paths(drops, settings=settings)
    assert all(o.status == "loaded" for o in outcomes), [o.as_dict() for o in outcomes]
    with engine.connect() as conn:
        all_times = [to_utc(r[0]) for r in conn.execute(SNAPSHOT_TIMES)]
    newest = all_times[-1]

    # Training: the chunked pass with its sliding window, as prepare_data reads it.
    parts = [
        (fs.X[keep], fs.meta[keep])
        for fs in windowed_features(stored_chunks(engine, chunk_rows=3 * COINS))
        if (keep := (fs.meta["snapshot_ts"] == newest).to_numpy()).any()
    ]
    training = _by_coin(
        pd.concat([x for x, _ in parts], ignore_index=True),
        pd.concat([m for _, m in parts], ignore_index=True),
    )
    # The whole panel in memory gives the same.
    whole = build_features(load_snapshots(engine))
    at_newest = (whole.meta["snapshot_ts"] == newest).to_numpy()
    pd.testing.assert_frame_equal(
        _by_coin(whole.X[at_newest], whole.meta[at_newest]), training, check_exact=False
    )

    # A stored forecast's features.
    X_stored, meta_stored = features_at(engine, [newest], all_times)
    pd.testing.assert_frame_equal(_by_coin(X_stored, meta_stored), training, check_exact=False)

    # An API call given the newest snapshot's rows.
    panel = load_snapshots(engine)
    rows = panel[panel["snapshot_ts"] == newest].reset_index(drop=True)
    X_api, _seen = features_for_rows(rows, engine)
    api = _by_coin(X_api[training.columns], rows[["coin_id"]])
    pd.testing.assert_frame_equal(api, training, check_exact=False, rtol=1e-9)

    # The panel really has what the test is about: coins with fewer rows than times.
    assert (training["snapshots_seen"] < HISTORY_ROWS).any()
