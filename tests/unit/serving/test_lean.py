"""The request path's NumPy application of fitted steps (``model/lean.py``) matches
scikit-learn's own ``transform``/``predict``, and steps it does not know go through
scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from liquidity_core.learn.estimators import AnchoredPipeline, DropColumns, DropEmpty, har_ridge
from liquidity_core.serving import numpy_path as lean

NAMES = [f"f{i}" for i in range(6)]


def _data(seed: int, n: int, nan_share: float = 0.2):
    rng = np.random.default_rng(seed)
    X = rng.standard_t(df=3, size=(n, len(NAMES))) * rng.uniform(0.1, 100, len(NAMES))
    X[rng.random(X.shape) < nan_share] = np.nan
    X[:, 5] = np.nan if seed % 2 else X[:, 5]  # a column with no values at all
    y = np.nan_to_num(X[:, 0]) * 0.3 + rng.normal(size=n)
    return X, y


@pytest.mark.parametrize(
    "make",
    [
        lambda: har_ridge(),
        lambda: Pipeline([("i", SimpleImputer(keep_empty_features=True)), ("r", Ridge())]),
        lambda: Pipeline(
            [
                ("i", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("s", StandardScaler(with_mean=False)),
                ("r", RidgeCV(alphas=(0.1, 1.0, 10.0))),
            ]
        ),
        lambda: Pipeline(
            [
                ("d", DropColumns(drop=("f1", "f3"))),
                ("e", DropEmpty()),
                ("i", SimpleImputer(keep_empty_features=True)),
                ("r", Ridge()),
            ]
        ),
        # Not handled with NumPy: the whole pipeline goes through scikit-learn.
        lambda: Pipeline(
            [("i", SimpleImputer(keep_empty_features=True)), ("m", MinMaxScaler()), ("r", Ridge())]
        ),
        lambda: Pipeline(
            [("i", SimpleImputer(add_indicator=True, keep_empty_features=True)), ("r", Ridge())]
        ),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_apply_steps_matches_sklearn(make, seed):
    X_train, y = _data(seed, 400)
    pipe = make().fit(pd.DataFrame(X_train, columns=NAMES), y)
    X, _ = _data(seed + 10, 300, nan_share=0.3)
    for rows in (X, X[[7]]):
        want = pipe.predict(pd.DataFrame(rows, columns=NAMES))
        got = lean.apply_steps(pipe.steps, rows, NAMES)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        assert np.isnan(rows).any(), "the input is left as it was"


def test_transform_and_anchor_match_the_anchored_pipeline():
    from sklearn.ensemble import RandomForestRegressor

    names = [
        "log_turnover",
        "log_turnover_mean_3",
        "log_turnover_mean_7",
        "log_turnover_mean_30",
        "log_turnover_mean_60",
        "x",
    ]
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, len(names)))
    X[rng.random(X.shape) < 0.15] = np.nan
    y = np.nan_to_num(X[:, 0]) + rng.normal(scale=0.1, size=len(X))
    pipe = AnchoredPipeline(
        [("scale", StandardScaler()), ("model", RandomForestRegressor(n_estimators=5))]
    ).fit(pd.DataFrame(X, columns=names), y)
    frame = pd.DataFrame(X, columns=names)
    np.testing.assert_allclose(
        lean.transform(pipe, X, names), pipe[:-1].transform(frame), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        lean.anchor_of(pipe, X, names), pipe.anchor_of(frame), rtol=1e-12, atol=1e-12
    )
