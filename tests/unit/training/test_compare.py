"""The champion is judged only on holdout rows it never saw (stored forecasts first)."""

from __future__ import annotations

import pandas as pd
import pytest
from support.panels import make_learnable_panel

from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import write_demo_drops
from liquidity_core.monitoring.forecasts import forecast_new_snapshots
from liquidity_core.registry import champion as registry
from liquidity_core.training.compare import fitted_through
from liquidity_core.training.cycle import run_training_cycle

FAST = {"grid": "fast", "candidates": False}


def test_the_champion_is_judged_by_its_stored_forecasts(settings, engine, tmp_path):
    drops = write_demo_drops(tmp_path / "d", coins=30, snapshots=30, seed=4)
    ingest_paths(drops[:24], settings=settings)
    first = run_training_cycle(settings, **FAST)
    assert first["promoted"], first["reason"]
    # The forecast step scores each snapshot as it lands, before its outcome exists.
    for path in drops[24:]:
        ingest_paths([path], settings=settings)
        forecast_new_snapshots(settings)
    eager = settings.with_overrides(promotion_margin=-100.0)
    second = run_training_cycle(eager, **FAST)
    assert "scored by the champion's stored forecasts" in second["reason"], second["reason"]
    stored = _stored_forecasts_of(engine, first["version"])
    # The champion's R² comes from those stored numbers, not from a re-score.
    assert len(stored) and second["champion_holdout_r2"] is not None


def test_a_holdout_inside_the_champions_window_is_refused(settings, engine):
    panel = make_learnable_panel(coins=30, snapshots=30)
    first = run_training_cycle(settings, panel=panel, **FAST)
    assert first["promoted"], first["reason"]
    fitted_through = pd.Timestamp(
        registry.get_version(engine, first["version"])["params"]["fitted_through"]
    )
    # A later run cut off well inside the champion's data (as `--until` does): every
    # holdout row is one the champion was fitted on, and no stored forecast covers it.
    times = sorted(panel["snapshot_ts"].unique())
    until = times[len(times) // 2]
    assert until < fitted_through
    eager = settings.with_overrides(promotion_margin=-100.0)
    second = run_training_cycle(eager, panel=panel[panel["snapshot_ts"] <= until], **FAST)
    assert not second["promoted"]
    assert "comparison with champion" in second["reason"] and "refused" in second["reason"]
    assert second["champion_holdout_r2"] is None
    assert registry.read_current_pointer(settings.model_dir)["version"] == first["version"]


def test_a_champion_fitted_into_the_holdout_is_rescored_only_after_its_window(settings, engine):
    panel = make_learnable_panel(coins=30, snapshots=30)
    first = run_training_cycle(settings, panel=panel, **FAST)
    # More holdout snapshots than the champion had: its tuning rows now sit in the holdout.
    wider = settings.with_overrides(holdout_snapshots=settings.holdout_snapshots + 4)
    second = run_training_cycle(wider, panel=panel, **FAST)
    assert "re-score after its window" in second["reason"], second["reason"]
    n = int(second["reason"].split("on ", 1)[1].split(" ", 1)[0])
    assert 0 < n < second["n_holdout_rows"]  # only the rows after the champion's window
    assert first["promoted"]


def test_a_refit_champion_has_seen_its_holdout_and_is_judged_after_it(settings, engine):
    panel = make_learnable_panel(coins=30, snapshots=30)
    refit = settings.with_overrides(refit=True)
    first = run_training_cycle(refit, panel=panel, **FAST)
    row = registry.get_version(engine, first["version"])
    assert row["params"]["refit"] is True
    # Refitted on the holdout rows too: it has seen up to the holdout's newest snapshot.
    assert pd.Timestamp(row["params"]["fitted_through"]) == pd.Timestamp(row["holdout_end"])
    # The same panel again: every holdout row is one the champion was fitted on.
    second = run_training_cycle(settings, panel=panel, **FAST)
    assert not second["promoted"] and "refused" in second["reason"], second["reason"]


def test_a_version_from_before_fitted_through_was_fitted_up_to_its_holdout():
    start = "2024-03-01T00:00:00+00:00"
    old = {"params": {"alpha": 1.0}, "holdout_start": start}
    assert fitted_through(old) == pd.Timestamp(start) - pd.Timedelta(1, "ns")
    assert fitted_through({"params": None, "holdout_start": None}) is None
    recorded = {"params": {"fitted_through": "2024-04-01T00:00:00+00:00"}, "holdout_start": start}
    assert fitted_through(recorded) == pd.Timestamp("2024-04-01", tz="UTC")


def _stored_forecasts_of(engine, version: str) -> pd.DataFrame:
    """Every forecast ``version`` stored: coin_id, snapshot_ts (UTC), predicted_log_turnover."""
    with engine.connect() as conn:
        stored = pd.read_sql_query(
            "SELECT coin_id, snapshot_ts, predicted_log_turnover FROM forecasts "
            f"WHERE model_version = '{version}'",
            conn,
        )
    stored["snapshot_ts"] = pd.to_datetime(stored["snapshot_ts"], utc=True, format="ISO8601")
    return stored


def _staged_challenger(settings, run_id: str, panel=None):
    """A challenger staged (data and challenger stages) without the decision."""
    from liquidity_core.training.cycle import prepare_data, train_challenger
    from liquidity_core.training.staging import staging_dir

    prepare_data(settings, run_id=run_id, panel=panel)
    train_challenger(settings, run_id=run_id, **FAST)
    return staging_dir(settings, run_id)


def test_the_stored_forecasts_path_scores_both_models_on_the_rows_the_champion_forecast(
    settings, engine, tmp_path
):
    import numpy as np

    from liquidity_core.learn.metrics import r2
    from liquidity_core.training.compare import judge_champion
    from liquidity_core.training.staging import HOLDOUT_PREDICTIONS, load_stage_data

    drops = write_demo_drops(tmp_path / "d", coins=30, snapshots=30, seed=4)
    ingest_paths(drops[:24], settings=settings)
    first = run_training_cycle(settings, **FAST)
    # The champion forecasts only the first 4 of the 6 later snapshots: the holdout's
    # newest rows have no stored forecast, so they must be left out of both scores.
    for path in drops[24:28]:
        ingest_paths([path], settings=settings)
        forecast_new_snapshots(settings)
    for path in drops[28:]:
        ingest_paths([path], settings=settings)
    stage = _staged_challenger(settings, "judge-stored")

    judged = judge_champion(engine, registry.load_verified_model(settings, first["version"]), stage)

    data = load_stage_data(stage)
    hold = data["holdout"]
    y = data["y"].to_numpy()[hold]
    meta = data["meta"].iloc[hold]
    mine = np.load(stage / HOLDOUT_PREDICTIONS)
    stored = _stored_forecasts_of(engine, first["version"])
    theirs = (
        stored.set_index(["coin_id", "snapshot_ts"])["predicted_log_turnover"]
        .reindex(
            pd.MultiIndex.from_arrays(
                [meta["coin_id"], pd.to_datetime(meta["snapshot_ts"], utc=True)]
            )
        )
        .to_numpy()
    )
    seen = np.isfinite(theirs)
    assert 0 < seen.sum() < len(y)  # some holdout rows were forecast, not all
    assert judged["how"] == "stored forecasts"
    assert judged["rows"] == int(seen.sum())
    assert judged["champion_r2"] == pytest.approx(r2(y[seen], theirs[seen]), abs=1e-12)
    assert judged["challenger_r2"] == pytest.approx(r2(y[seen], mine[seen]), abs=1e-12)


def test_a_refusal_says_why_and_scores_nothing(settings, engine):
    from liquidity_core.training.compare import judge_champion

    panel = make_learnable_panel(coins=30, snapshots=30)
    # Refitted on its holdout too, so the same panel's holdout is all in its sample.
    first = run_training_cycle(settings.with_overrides(refit=True), panel=panel, **FAST)
    stage = _staged_challenger(settings, "judge-refused", panel=panel)
    loaded = registry.load_verified_model(settings, first["version"])

    judged = judge_champion(engine, loaded, stage)

    assert judged["how"] == "refused"
    assert judged["rows"] == 0
    assert judged["champion_r2"] is None and judged["challenger_r2"] is None
    through = pd.Timestamp(
        registry.get_version(engine, first["version"])["params"]["fitted_through"]
    )
    assert judged["why"].startswith("the champion stored no forecast of the holdout (")
    assert judged["why"].endswith(
        f"and was fitted on rows up to {through.isoformat()}, so every holdout row would "
        "score it in sample"
    )

    # A version that records neither its fit end nor its holdout start: never re-scored.
    loaded.metadata["params"].pop("fitted_through")
    loaded.metadata["holdout_start"] = None
    unknown = judge_champion(engine, loaded, stage)
    assert unknown["how"] == "refused"
    assert unknown["why"].endswith(
        "was fitted on rows up to an unknown time, so every holdout row would score it in sample"
    )
