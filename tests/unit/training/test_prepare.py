"""Training's first stage on a stored panel: two passes, one fingerprint."""

from __future__ import annotations

from liquidity_core import ingest
from liquidity_core.inputs.demo import generate_panel
from liquidity_core.store.snapshots import load_snapshots
from liquidity_core.training.data import data_fingerprint, prepare_data


def test_the_staged_fingerprint_and_counts_are_the_whole_stored_panels(settings, engine, tmp_path):
    path = tmp_path / "panel.csv"
    generate_panel(coins=9, snapshots=40, seed=5).to_csv(path, index=False)
    ingest.ingest_paths([path], settings=settings)
    whole = load_snapshots(engine)
    # Chunks of 25 rows: both passes cross many chunk ends, the light one and the full one.
    stored = prepare_data(settings, run_id="stored", chunk_rows=25)
    assert stored["data_fingerprint"] == data_fingerprint(whole)
    assert stored["n_rows"] == len(whole) and stored["n_coins"] == 9
    assert stored["n_snapshots"] == whole["snapshot_ts"].nunique()
    given = prepare_data(settings, run_id="given", panel=whole, chunk_rows=25)
    assert {k: v for k, v in given.items() if k not in ("run_id", "staging")} == {
        k: v for k, v in stored.items() if k not in ("run_id", "staging")
    }
