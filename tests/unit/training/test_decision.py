"""The promotion decision, driven through the staged inputs of stage 3.

A real champion is trained once per test; the challenger's scores and its holdout
forecasts (made to have exactly that R²) are then written into the staging folder, so
each case sits exactly where the rule draws its line. The champion was fitted before the
new run's holdout, so it is re-scored on every holdout row. The
decision depends on no backend, so these run on SQLite only (the cycle's own tests run
on both).
"""

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from support.env import make_settings
from support.panels import make_learnable_panel

from liquidity_core.errors import ModelError
from liquidity_core.learn.metrics import r2 as r2_of
from liquidity_core.registry import champion as registry
from liquidity_core.store import db
from liquidity_core.training.compare import compare_with_champion, judge_champion
from liquidity_core.training.cycle import prepare_data, run_training_cycle
from liquidity_core.training.staging import (
    HOLDOUT_PREDICTIONS,
    load_stage_data,
    staging_dir,
    write_json,
)

PANEL = {"coins": 12, "snapshots": 16}


def settings_in(root):
    return make_settings(root, f"sqlite:///{root / 'liquidity.db'}", LIQUIDITY_N_JOBS=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A champion trained once and a new run's staged data, in a folder to copy."""
    root = tmp_path_factory.mktemp("trained")
    s = settings_in(root)
    engine = db.get_engine(s.database_url)
    db.upgrade(engine)
    first = run_training_cycle(
        s, panel=make_learnable_panel(**PANEL), grid="fast", candidates=False
    )
    # The market turned (sign -1): the champion forecasts the new run's holdout poorly, so
    # a challenger's R² can sit anywhere above it.
    prepare_data(s, run_id="next", panel=make_learnable_panel(seed=3, sign=-1.0, **PANEL))
    data = load_stage_data(staging_dir(s, "next"))
    loaded = registry.load_verified_model(s, first["version"])
    X_hold = data["X"].iloc[data["holdout"]].reindex(columns=loaded.feature_names)
    c_r2 = r2_of(data["y"].to_numpy()[data["holdout"]], loaded.pipeline.predict(X_hold))
    assert c_r2 < 0.4, c_r2  # room above it for every case below
    row = registry.get_champion(engine)
    engine.dispose()
    return root, {"version": first["version"], "c_r2": c_r2, "fingerprint": row["data_fingerprint"]}


@pytest.fixture
def settings(tmp_path):
    s = settings_in(tmp_path / "fresh")
    db.upgrade(db.get_engine(s.database_url))
    return s


@pytest.fixture
def champion(trained, tmp_path):
    """The trained champion, in a copy of its folder; ``settings`` there too."""
    root, info = trained
    shutil.copytree(root, tmp_path / "copy")
    return dict(info, settings=settings_in(tmp_path / "copy"))


def predictions_with_r2(y: np.ndarray, r2: float | None) -> np.ndarray:
    """Forecasts of ``y`` whose R² is ``r2`` (a constant offset); NaN for no score.

    The R² the comparison computes from them (:func:`liquidity_core.learn.metrics.r2`) can
    land a rounding step above ``r2`` (-1.9426111287775032 for -1.9426111287775035 on one
    machine), which would make a challenger that equals a threshold beat it; the offset
    is widened by its last bits until that R² is ``r2`` or the float just below.
    """
    if r2 is None:
        return np.full(len(y), np.nan)
    offset = np.sqrt((1.0 - r2) * np.sum((y - y.mean()) ** 2) / len(y))
    for _ in range(1000):
        if r2_of(y, y + offset) <= r2:
            break
        offset = np.nextafter(offset, np.inf)
    return y + offset


def stage_challenger(settings, run_id, *, r2, p_r2, fingerprint="new-data"):
    stage = staging_dir(settings, run_id)
    if (stage / "data.pkl").exists():
        data = load_stage_data(stage)
        y = data["y"].to_numpy()[data["holdout"]]
        np.save(stage / HOLDOUT_PREDICTIONS, predictions_with_r2(y, r2))
    write_json(
        staging_dir(settings, run_id) / "challenger.json",
        {
            "version": f"challenger-{run_id}",
            "holdout_r2": r2,
            "persistence_r2": p_r2,
            "data_fingerprint": fingerprint,
        },
    )


def decision_file(settings, run_id):
    return json.loads((staging_dir(settings, run_id) / "decision.json").read_text())


def decide(champion, *, above_champion, above_persistence, margin=0.0):
    """Stage a challenger ``above_champion`` over the champion's R² plus the margin and
    ``above_persistence`` over persistence's R², and decide."""
    settings = replace(champion["settings"], promotion_margin=margin)
    r2 = champion["c_r2"] + margin + above_champion
    stage_challenger(settings, "next", r2=r2, p_r2=r2 - above_persistence)
    return compare_with_champion(settings, run_id="next")


def test_a_challenger_better_than_both_is_promoted(champion):
    settings = champion["settings"]
    decision = decide(champion, above_champion=0.01, above_persistence=0.01)
    assert decision["promote"] is True
    assert decision["champion_version"] == champion["version"]
    assert decision["champion_holdout_r2"] == pytest.approx(champion["c_r2"])
    assert decision["reason"].startswith("promoted: on "), decision["reason"]
    assert "the champion's re-score after its window" in decision["reason"]
    assert f"beats champion {champion['version']}" in decision["reason"]
    assert "beats persistence" in decision["reason"]
    assert "does not beat" not in decision["reason"]
    assert "no new data" not in decision["reason"]
    assert decision_file(settings, "next") == decision


def test_the_margin_must_be_exceeded(champion):
    settings = champion["settings"]
    decision = decide(champion, above_champion=-0.01, above_persistence=0.5, margin=0.05)
    assert decision["promote"] is False
    assert decision["reason"].startswith("not promoted:")
    assert f"does not beat champion {champion['version']}" in decision["reason"]
    assert "by more than margin 0.05" in decision["reason"]
    assert decision_file(settings, "next")["promote"] is False


def test_beating_the_champion_by_the_margin_is_enough(champion):
    decision = decide(champion, above_champion=0.001, above_persistence=0.5, margin=0.05)
    assert decision["promote"] is True, decision["reason"]


def test_equalling_the_champion_plus_the_margin_is_not_beating_it(champion):
    decision = decide(champion, above_champion=0.0, above_persistence=0.5, margin=0.05)
    assert decision["promote"] is False
    assert "does not beat champion" in decision["reason"]


def test_forecasting_exactly_as_the_champion_is_not_beating_it(champion):
    """The challenger's forecasts are the champion's own: equal R², to the last bit."""
    settings = champion["settings"]
    stage = staging_dir(settings, "next")
    data = load_stage_data(stage)
    loaded = registry.load_verified_model(settings, champion["version"])
    X_hold = data["X"].iloc[data["holdout"]].reindex(columns=loaded.feature_names)
    stage_challenger(settings, "next", r2=champion["c_r2"], p_r2=champion["c_r2"] - 0.5)
    np.save(stage / HOLDOUT_PREDICTIONS, loaded.pipeline.predict(X_hold))
    decision = compare_with_champion(settings, run_id="next")
    assert decision["challenger_r2_on_comparison"] == decision["champion_holdout_r2"]
    assert decision["promote"] is False
    assert "does not beat champion" in decision["reason"]


def test_equalling_persistence_is_not_beating_it(champion):
    decision = decide(champion, above_champion=0.2, above_persistence=0.0)
    assert decision["promote"] is False
    assert "does not beat persistence" in decision["reason"]


def test_a_challenger_without_a_score_is_not_promoted(champion):
    settings = champion["settings"]
    stage_challenger(settings, "next", r2=None, p_r2=None)
    decision = compare_with_champion(settings, run_id="next")
    assert decision["promote"] is False
    assert "does not beat champion" in decision["reason"]
    assert "does not beat persistence" in decision["reason"]


def test_without_a_persistence_score_it_is_not_promoted(champion):
    settings = champion["settings"]
    stage_challenger(settings, "next", r2=champion["c_r2"] + 0.5, p_r2=None)
    decision = compare_with_champion(settings, run_id="next")
    assert decision["promote"] is False
    assert "does not beat persistence" in decision["reason"]


def test_disabled_promotion_keeps_the_champion_and_says_why(champion):
    settings = champion["settings"]
    r2 = champion["c_r2"] + 0.2
    stage_challenger(settings, "next", r2=r2, p_r2=r2 - 0.2)
    decision = compare_with_champion(settings, run_id="next", promote=False)
    assert decision["promote"] is False
    assert decision["reason"].startswith("not promoted (promotion disabled): on ")


def test_the_same_data_as_the_champion_is_noted(champion):
    settings = champion["settings"]
    r2 = champion["c_r2"] + 0.2
    stage_challenger(settings, "next", r2=r2, p_r2=r2 - 0.2, fingerprint=champion["fingerprint"])
    decision = compare_with_champion(settings, run_id="next")
    assert decision["reason"].endswith("; no new data since the champion was trained")


def test_a_champion_that_cannot_be_rescored_is_kept_and_the_reason_staged(champion):
    settings = champion["settings"]
    artifact = next(settings.model_dir.glob("versions/*/model.pkl"))
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"tampered!!")
    r2 = champion["c_r2"] + 0.2
    stage_challenger(settings, "next", r2=r2, p_r2=r2 - 0.2)
    with pytest.raises(ModelError, match=rf"champion {champion['version']} failed verification"):
        compare_with_champion(settings, run_id="next")
    staged = decision_file(settings, "next")
    assert staged["promote"] is False
    assert staged["champion_version"] == champion["version"]
    assert staged["reason"].startswith(
        f"not promoted: champion {champion['version']} could not be re-scored, so it is kept"
    )


@pytest.mark.parametrize(
    ("r2", "p_r2", "promote", "says"),
    [
        (0.5, 0.4, True, "promoted: first model: holdout R² 0.5000 beats persistence 0.4000"),
        (0.4, 0.4, False, "not promoted: first model: holdout R² 0.4000 does not beat"),
        (None, 0.4, False, "not promoted: first model"),
        (0.5, None, False, "not promoted: first model"),
    ],
)
def test_the_first_model_only_has_to_beat_persistence(settings, r2, p_r2, promote, says):
    stage_challenger(settings, "first", r2=r2, p_r2=p_r2)
    decision = compare_with_champion(settings, run_id="first")
    assert decision["promote"] is promote
    assert decision["reason"].startswith(says), decision["reason"]
    assert decision["champion_version"] is None and decision["champion_holdout_r2"] is None
    assert decision_file(settings, "first") == decision


def test_the_reason_gives_every_score_and_the_log_says_the_decision(champion, caplog):
    import logging

    from liquidity_core.learn.metrics import fmt

    caplog.set_level(logging.INFO, logger="liquidity_core.training.cycle")
    settings = replace(champion["settings"], promotion_margin=0.01)
    r2 = champion["c_r2"] + 0.2
    stage_challenger(settings, "next", r2=r2, p_r2=r2 - 0.3)
    decision = compare_with_champion(settings, run_id="next")
    assert decision["comparison"] == "re-score after its window"
    rows = decision["comparison_rows"]
    assert decision["reason"] == (
        f"promoted: on {rows} holdout rows scored by the champion's re-score after its "
        f"window, R² {fmt(r2)} beats champion {champion['version']} "
        f"({fmt(champion['c_r2'])}) by more than margin 0.01; "
        f"holdout R² {fmt(r2)} beats persistence {fmt(r2 - 0.3)}"
    )
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("cycle")]
    assert f"decision for challenger-next: {decision['reason']}" in messages


def test_the_same_data_note_keeps_the_verdict(champion):
    settings = champion["settings"]
    r2 = champion["c_r2"] + 0.2
    stage_challenger(settings, "next", r2=r2, p_r2=r2 - 0.2, fingerprint=champion["fingerprint"])
    decision = compare_with_champion(settings, run_id="next")
    assert decision["reason"].startswith("promoted: on "), decision["reason"]
    assert f"R² {r2:.4f} beats champion" in decision["reason"]


def test_the_champion_is_rescored_by_its_version_whatever_the_pointer_says(champion):
    settings = champion["settings"]
    (settings.model_dir / "current.json").unlink()
    r2 = champion["c_r2"] + 0.2
    stage_challenger(settings, "next", r2=r2, p_r2=r2 - 0.2)
    decision = compare_with_champion(settings, run_id="next")
    assert decision["champion_holdout_r2"] == pytest.approx(champion["c_r2"])


def test_the_champion_scores_on_its_own_features_in_its_own_order(champion):
    settings = champion["settings"]
    stage = staging_dir(settings, "next")
    data = load_stage_data(stage)
    data["X"] = data["X"][list(reversed(data["X"].columns))].assign(unrelated=1.0)
    pd.to_pickle(data, stage / "data.pkl")
    stage_challenger(settings, "next", r2=0.5, p_r2=0.4)
    loaded = registry.load_verified_model(settings, champion["version"])
    judged = judge_champion(db.get_engine(settings.database_url), loaded, stage)
    assert judged["how"] == "re-score after its window"
    assert judged["champion_r2"] == pytest.approx(champion["c_r2"])
