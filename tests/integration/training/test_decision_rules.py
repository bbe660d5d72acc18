"""The validation and promotion rules, each checked by a real training cycle.

A later challenger must beat both the champion (by the margin) and persistence; the
grid search's folds keep a one-snapshot gap so that no training target is a validation
feature.
"""

import numpy as np
import pytest
from sklearn.model_selection._search import BaseSearchCV
from support.panels import make_learnable_panel

from liquidity_core.registry import champion as registry
from liquidity_core.training.cycle import run_training_cycle

FAST = {"grid": "fast", "candidates": False}


def test_a_later_challenger_that_does_not_beat_persistence_is_rejected(settings, engine):
    # The champion learned a mean-reverting market; then turnover becomes a random walk,
    # where yesterday's value (persistence) is the best forecast there is. The challenger
    # fitted on the walk beats the stale champion by far, but not persistence.
    first = run_training_cycle(settings, panel=make_learnable_panel(), **FAST)
    assert first["promoted"], first["reason"]
    walk = make_learnable_panel(random_walk=True, seed=4)
    second = run_training_cycle(settings, panel=walk, **FAST)

    assert second["champion_version"] == first["version"]
    # The staged situation: better than the champion by more than the margin ...
    assert second["holdout_r2"] > second["champion_holdout_r2"] + settings.promotion_margin
    assert f"beats champion {first['version']}" in second["reason"], second["reason"]
    # ... and worse than persistence.
    assert second["holdout_r2"] <= second["persistence_r2"]

    assert second["promoted"] is False
    assert second["status"] == "rejected"
    assert second["reason"].startswith("not promoted:"), second["reason"]
    assert "does not beat persistence" in second["reason"], second["reason"]
    assert registry.get_champion(engine)["version"] == first["version"]
    assert registry.read_current_pointer(settings.model_dir)["version"] == first["version"]


@pytest.fixture
def searches(monkeypatch):
    """Every hyperparameter search the cycle fits: its cv, rows and fold groups."""
    seen = []
    fit = BaseSearchCV.fit

    def spy(self, X, y=None, **params):
        seen.append({"cv": self.cv, "X": X, "y": y, "groups": params.get("groups")})
        return fit(self, X, y, **params)

    monkeypatch.setattr(BaseSearchCV, "fit", spy)
    return seen


def test_the_search_folds_keep_the_gap(settings, engine, searches):
    from liquidity_core.training.cycle import prepare_data, train_challenger

    prepare_data(settings, run_id="gap", panel=make_learnable_panel(snapshots=16))
    train_challenger(settings, run_id="gap", **FAST)

    assert searches, "the training stage ran no hyperparameter search"
    for search in searches:
        t = np.asarray(search["groups"])  # the snapshot-time index of each tuning row
        assert t is not None and len(t) == len(search["X"])
        folds = list(search["cv"].split(search["X"], search["y"], groups=t))
        assert len(folds) == settings.cv_splits
        for train, valid in folds:
            # Each row's target is the next snapshot's log turnover.
            target_times = set((t[train] + 1).tolist())
            feature_times = set(t[valid].tolist())
            assert not target_times & feature_times, (
                f"training targets at snapshot(s) {sorted(target_times & feature_times)} "
                "are validation features"
            )
            assert t[train].max() + 1 < t[valid].min()
