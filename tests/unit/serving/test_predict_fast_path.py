"""The serving fast path agrees with scikit-learn's own ``predict``.

``predict_frame`` calls each tree's Cython predictor (``tree.tree_.predict``) directly, or
for a few rows walks the trees' node tables itself (``numpy_path.tree_values``), on input
it validated once, to keep one-row requests fast. That bypasses the public API, so a
scikit-learn upgrade could change what it returns without any error. These tests compare it
with ``pipeline.predict`` and each ``tree.predict``, on many random rows with NaNs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from liquidity_core.learn import intervals
from liquidity_core.registry.champion import LoadedModel, load_verified_model
from liquidity_core.serving import numpy_path as lean
from liquidity_core.serving.predict import INTERVAL_PERCENTILES, predict_frame

FEATURES = [f"f{i}" for i in range(8)]


def _random_frame(rng: np.random.Generator, n: int, *, nan_share: float) -> pd.DataFrame:
    """``n`` rows of heavy-tailed features, a share of them NaN."""
    values = rng.standard_t(df=3, size=(n, len(FEATURES))) * rng.uniform(0.1, 1e3, len(FEATURES))
    values[rng.random(values.shape) < nan_share] = np.nan
    return pd.DataFrame(values, columns=FEATURES)


def _sklearn_reference(pipeline, X: pd.DataFrame, calibration=None) -> dict:
    """What ``predict_frame`` should return, through scikit-learn's public API only.

    With a ``calibration`` (models trained since migration 006) the interval is the
    calibrated one around the point forecast; without, the trees' percentiles.
    """
    forest = pipeline.steps[-1][1]
    transformed = pipeline[:-1].transform(X)
    per_tree = np.stack([tree.predict(transformed) for tree in forest.estimators_])
    if hasattr(pipeline, "anchor_of"):  # the trees predict the change from the anchor
        per_tree = per_tree + pipeline.anchor_of(X)
    point = pipeline.predict(X)
    if calibration:
        low, high = intervals.bounds_for(point, X, calibration)
    else:
        low, high = np.percentile(per_tree, INTERVAL_PERCENTILES, axis=0)
    return {"point": point, "low": low, "high": high}


def _assert_same(got: dict, want: dict) -> None:
    for key in ("point", "low", "high"):
        assert got[key].shape == want[key].shape, key
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("train_nan_share", [0.0, 0.2])
def test_fast_path_matches_sklearn_on_random_rows_with_nans(train_nan_share):
    """A forest shaped like the trained one (scaler, then forest), fitted on random data
    with and without NaNs, predicting 5,000 random rows of which a fifth of values are NaN
    (plus rows wholly NaN, and one row alone)."""
    rng = np.random.default_rng(2024)
    X_train = _random_frame(rng, 3000, nan_share=train_nan_share)
    y = np.nan_to_num(X_train["f0"].to_numpy()) * 0.01 + rng.normal(size=len(X_train))
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "model",
                RandomForestRegressor(n_estimators=25, max_samples=0.5, random_state=3, n_jobs=1),
            ),
        ]
    )
    pipeline.fit(X_train, y)
    model = LoadedModel(
        version="v-test", pipeline=pipeline, metadata={"features": FEATURES}, sha256="0" * 64
    )

    X = _random_frame(rng, 5000, nan_share=0.2)
    X.iloc[:50] = np.nan
    _assert_same(predict_frame(model, X), _sklearn_reference(pipeline, X))
    one = X.iloc[[123]]
    _assert_same(predict_frame(model, one), _sklearn_reference(pipeline, one))
    for start, n in ((0, 3), (40, 20), (300, lean.FOREST_WALK_ROWS)):  # walked all at once
        few = X.iloc[start : start + n]
        _assert_same(predict_frame(model, few), _sklearn_reference(pipeline, few))
    # Columns in another order are put in the model's order first.
    shuffled = X[FEATURES[::-1]]
    _assert_same(predict_frame(model, shuffled), _sklearn_reference(pipeline, X))


def test_fast_path_matches_sklearn_for_the_trained_champion(settings, engine, tmp_path):
    """The real thing: a champion trained on the demo panel, on random feature rows."""
    from support.training import train_on_demo

    train_on_demo(settings, tmp_path)
    model = load_verified_model(settings)
    assert hasattr(model.pipeline.steps[-1][1], "estimators_"), "the champion is a forest"
    rng = np.random.default_rng(7)
    columns = model.feature_names
    values = rng.normal(size=(4000, len(columns))) * 3
    values[rng.random(values.shape) < 0.1] = np.nan
    X = pd.DataFrame(values, columns=columns)
    calibration = model.metadata["interval_calibration"]
    assert calibration, "a newly trained champion carries its interval calibration"
    _assert_same(predict_frame(model, X), _sklearn_reference(model.pipeline, X, calibration))
    for i in range(0, 200, 7):  # one row, as a request sends it
        one = X.iloc[[i]]
        _assert_same(
            predict_frame(model, one), _sklearn_reference(model.pipeline, one, calibration)
        )


@pytest.mark.parametrize("train_nan_share", [0.0, 0.3])
def test_trees_walked_together_give_each_trees_own_prediction(train_nan_share):
    """lean.tree_values on a few rows is, bit for bit, each tree's ``tree_.predict``: NaN
    sent where each node sends missing values, infinities, values on a threshold."""
    rng = np.random.default_rng(11)
    X_train = _random_frame(rng, 2000, nan_share=train_nan_share).to_numpy(np.float32)
    y = np.nan_to_num(X_train[:, 0]) * 0.01 + rng.normal(size=len(X_train))
    forest = RandomForestRegressor(n_estimators=30, min_samples_leaf=2, random_state=5)
    forest.fit(X_train, y)
    X = np.array(_random_frame(rng, 500, nan_share=0.25), dtype=np.float32)
    X[:5] = np.nan
    X[5:10] = np.inf
    X[10:15] = -np.inf
    tree = forest.estimators_[0].tree_
    X[15, tree.feature[0]] = tree.threshold[0]  # exactly on the root's threshold
    X[200:210] = np.nan_to_num(X[200:210], nan=0.5)  # rows without a missing value
    X = np.ascontiguousarray(X)
    cases = ((0, 1), (0, 20), (15, 1), (100, lean.FOREST_WALK_ROWS), (0, 500), (200, 1), (200, 10))
    for start, n in cases:
        rows = X[start : start + n]
        want = np.stack([e.tree_.predict(rows).reshape(n) for e in forest.estimators_])
        got = lean.tree_values(forest, rows)
        assert got.shape == want.shape
        assert got.tobytes() == want.tobytes()
