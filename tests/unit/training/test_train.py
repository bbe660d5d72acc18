import json
import logging

import pytest
from support.panels import make_learnable_panel

from liquidity_core.errors import ModelError, NotEnoughData
from liquidity_core.learn.estimators import AnchoredPipeline
from liquidity_core.registry import champion as registry
from liquidity_core.training.cycle import run_training_cycle

FAST = {"grid": "fast", "candidates": False}


def test_learnable_panel_is_learned_and_promoted(settings, engine, caplog):
    caplog.set_level(logging.INFO, logger="liquidity_core.training.cycle")
    panel = make_learnable_panel()
    result = run_training_cycle(settings, panel=panel, run_id="r1", grid="fast")
    assert result["promoted"] is True, result["reason"]
    assert result["status"] == "champion"
    assert result["holdout_r2"] > 0.8
    assert result["holdout_r2"] > result["persistence_r2"] + 0.2
    assert result["champion_holdout_r2"] is None
    assert result["reason"].startswith("promoted: first model")
    assert set(result["candidates"]) == {"HistGradientBoostingRegressor", "SVR", "HAR-Ridge"}
    row = registry.get_version(engine, result["version"])
    assert row["status"] == "champion" and row["run_id"] == "r1"
    assert len(row["cv_scores"]) == settings.cv_splits
    assert len(row["holdout_r2_by_snapshot"]) == settings.holdout_snapshots
    assert row["band_edges"][0] < row["band_edges"][1]
    assert row["n_holdout_rows"] == 40 * settings.holdout_snapshots
    pointer = registry.read_current_pointer(settings.model_dir)
    assert pointer["version"] == result["version"]
    path = settings.model_dir / pointer["artifact_path"]
    assert registry.sha256_file(path) == pointer["sha256"] == row["artifact_sha256"]
    meta = json.loads((path.parent / "metadata.json").read_text())
    assert meta["version"] == result["version"] and meta["artifact_sha256"] == pointer["sha256"]
    assert "fold score" in caplog.text and "candidate SVR" in caplog.text
    assert not (settings.model_dir / "staging" / "r1").exists()


def test_skill_per_holdout_snapshot_is_recorded(settings, engine):
    """Issue 13 part 5: skill and R² per holdout snapshot and the share of snapshots
    beating persistence, in the result and in model_versions (migration 005)."""
    panel = make_learnable_panel()
    result = run_training_cycle(settings, panel=panel, **FAST)
    share = result["snapshots_beating_persistence"]
    assert share == 1.0  # a learnable panel: the forest beats persistence at every snapshot
    row = registry.get_version(engine, result["version"])
    assert row["snapshots_beating_persistence"] == share
    assert row["holdout_skill"] == pytest.approx(result["holdout_skill"])
    per = row["holdout_skill_by_snapshot"]
    assert len(per) == settings.holdout_snapshots
    assert sorted(per) == sorted(row["holdout_r2_by_snapshot"])
    for entry in per.values():
        assert entry["n"] == 40 and entry["skill"] > 0 and entry["r2"] is not None
    # The published model predicts the change from today's level and reassembles it.
    loaded = registry.load_verified_model(settings)
    assert isinstance(loaded.pipeline, AnchoredPipeline)
    assert type(loaded.pipeline.named_steps["model"]).__name__ == "RandomForestRegressor"


def test_random_walk_panel_is_not_promoted_over_persistence(settings, engine):
    panel = make_learnable_panel(random_walk=True, seed=4)
    result = run_training_cycle(settings, panel=panel, **FAST)
    assert result["promoted"] is False
    assert result["status"] == "rejected"
    assert "does not beat persistence" in result["reason"], result["reason"]
    assert registry.read_current_pointer(settings.model_dir) is None
    assert (settings.model_dir / result["artifact_path"]).exists()  # kept for audit


def test_second_run_without_new_data_records_a_non_promotion(settings, engine):
    panel = make_learnable_panel()
    first = run_training_cycle(settings, panel=panel, **FAST)
    second = run_training_cycle(settings, panel=panel, **FAST)
    assert first["promoted"] and not second["promoted"]
    assert second["champion_version"] == first["version"]
    assert second["champion_holdout_r2"] == pytest.approx(first["holdout_r2"])
    assert "no new data since the champion was trained" in second["reason"]
    assert "does not beat champion" in second["reason"]
    versions = registry.list_versions(engine)
    assert [v["status"] for v in versions] == ["rejected", "champion"]
    assert registry.read_current_pointer(settings.model_dir)["version"] == first["version"]


def test_better_challenger_replaces_champion(settings, engine):
    first = run_training_cycle(settings, panel=make_learnable_panel(coins=30), **FAST)
    # The market changes: price moves now drain turnover instead of adding to it.
    changed = make_learnable_panel(coins=30, seed=1, sign=-1.0)
    second = run_training_cycle(settings, panel=changed, **FAST)
    assert first["promoted"] and second["promoted"], second["reason"]
    assert second["champion_version"] == first["version"]
    assert second["holdout_r2"] > second["champion_holdout_r2"]
    # The champion stored no forecasts here, so it is re-scored on the rows after the
    # ones it was fitted on: the whole holdout of the new panel.
    assert second["reason"].startswith("promoted: on "), second["reason"]
    assert "re-score after its window" in second["reason"]
    statuses = {v["version"]: v["status"] for v in registry.list_versions(engine)}
    assert statuses == {first["version"]: "retired", second["version"]: "champion"}
    events = [(e["version"], e["event"]) for e in registry.list_events(engine)]
    assert events == [
        (second["version"], "promoted"),
        (first["version"], "retired"),
        (first["version"], "promoted"),
    ]
    assert registry.read_current_pointer(settings.model_dir)["version"] == second["version"]


def test_no_promote_records_rejection(settings, engine):
    result = run_training_cycle(settings, panel=make_learnable_panel(), promote=False, **FAST)
    assert result["promoted"] is False and result["status"] == "rejected"
    assert result["reason"].startswith("not promoted (promotion disabled)")
    assert registry.get_champion(engine) is None


def test_corrupt_champion_fails_loudly_and_is_kept(settings, engine):
    panel = make_learnable_panel()
    first = run_training_cycle(settings, panel=panel, **FAST)
    artifact = settings.model_dir / first["artifact_path"]
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"tampered!!")
    with pytest.raises(ModelError, match=rf"champion {first['version']} failed verification"):
        run_training_cycle(settings, panel=panel, **FAST)
    champion = registry.get_champion(engine)
    assert champion["version"] == first["version"]
    rejected = [v for v in registry.list_versions(engine) if v["status"] == "rejected"]
    assert len(rejected) == 1 and "could not be re-scored" in rejected[0]["reason"]
    assert registry.read_current_pointer(settings.model_dir)["version"] == first["version"]


def test_too_few_snapshots_names_the_counts(settings, engine):
    panel = make_learnable_panel(snapshots=6)
    with pytest.raises(
        NotEnoughData,
        match=r"240 rows in 6 snapshots .*5 of 6 .*needs at least 9 \(10 snapshots in all\)",
    ):
        run_training_cycle(settings, panel=panel, **FAST)
    assert registry.list_versions(engine) == []


def test_stale_staging_of_dead_runs_is_removed(settings, engine):
    import os
    import time

    from liquidity_core.training.cycle import remove_stale_staging, staging_dir

    dead = staging_dir(settings, "manual__dead:run")
    dead.mkdir(parents=True)
    (dead / "data.pkl").write_bytes(b"x")
    fresh = staging_dir(settings, "running")
    fresh.mkdir(parents=True)
    old = time.time() - 3 * 24 * 3600
    os.utime(dead, (old, old))
    assert remove_stale_staging(settings) == ["staging/manual__dead_run"]
    assert fresh.exists() and not dead.exists()


def test_search_on_a_subsample_of_the_tuning_rows(settings, engine):
    from liquidity_core.training.cycle import prepare_data, train_challenger

    prepare_data(settings, run_id="sub", panel=make_learnable_panel())
    out = train_challenger(settings, run_id="sub", max_search_rows=500, **FAST)
    stage = json.loads((settings.model_dir / "staging" / "sub" / "challenger.json").read_text())
    assert stage["n_train_rows"] == 500
    assert out["holdout_r2"] > out["persistence_r2"]
