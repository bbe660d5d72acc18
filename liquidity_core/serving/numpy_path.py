"""Fitted scikit-learn steps applied with plain NumPy, for the request path.

A one-row request spends more time in scikit-learn's input checks (feature names, dtypes,
finiteness, run once per step and again in each nested pipeline) than in the arithmetic.
The serving path validates its input once (the columns are the model's features, in
order, as float64) and then applies each fitted step here, with the same operations, in
the same order, as the step's own ``transform``/``predict``:

- ``StandardScaler``: ``X -= mean_``, then ``X /= scale_``;
- ``SimpleImputer`` (NaN as missing, no indicator): NaN becomes ``statistics_``;
- ``Ridge``/``RidgeCV``/``LinearRegression``: ``X @ coef_.T + intercept_``.

A step of any other kind, or set up otherwise, goes through scikit-learn itself, so the
result never depends on whether the fast path applies; ``tests/test_predict_fast_path.py``
compares both on random rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _scaler(step, X: np.ndarray) -> np.ndarray:
    if step.with_mean:
        X -= step.mean_
    if step.with_std:
        X /= step.scale_
    return X


def _imputer(step, X: np.ndarray) -> np.ndarray:
    missing = np.isnan(X)
    if missing.any():
        X[missing] = np.broadcast_to(step.statistics_, X.shape)[missing]
    return X


def _linear(step, X: np.ndarray) -> np.ndarray:
    return X @ step.coef_.T + step.intercept_


def _kind(step):
    """The NumPy application of ``step``, or None when scikit-learn must apply it."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, Ridge, RidgeCV
    from sklearn.preprocessing import StandardScaler

    kind = type(step)
    if kind is StandardScaler:
        return _scaler
    if kind is SimpleImputer:
        plain = (
            not step.add_indicator
            and isinstance(step.missing_values, float)
            and np.isnan(step.missing_values)
            and (step.keep_empty_features or not np.isnan(step.statistics_).any())
        )
        return _imputer if plain else None
    if kind in (Ridge, RidgeCV, LinearRegression) and np.ndim(step.coef_) == 1:
        return _linear
    return None


def _plan(steps) -> list | None:
    """The NumPy application of each step, or None when one step is not supported."""
    funcs = [_kind(step) for _name, step in steps]
    return None if any(f is None for f in funcs) else funcs


def apply_steps(steps, X: np.ndarray, names: list[str]) -> np.ndarray:
    """Apply fitted ``(name, step)`` pairs in turn to ``X`` (columns ``names``).

    The last step may be a predictor; the others are transformers. ``X`` is float64 and
    is not modified.
    """
    funcs = _plan(steps)
    if funcs is None:
        frame = pd.DataFrame(X, columns=names)
        for _name, step in steps[:-1]:
            frame = step.transform(frame)
        last = steps[-1][1]
        return last.predict(frame) if hasattr(last, "predict") else last.transform(frame)
    out = np.array(X, dtype=float, copy=True)
    for func, (_name, step) in zip(funcs, steps, strict=True):
        out = func(step, out)
    return out


def transform(pipeline, X: np.ndarray, names: list[str]) -> np.ndarray:
    """``pipeline[:-1].transform(X)``: the steps before the final estimator."""
    steps = pipeline.steps[:-1]
    if not steps:
        return np.asarray(X, dtype=float)
    funcs = _plan(steps)
    if funcs is None:
        return np.asarray(pipeline[:-1].transform(pd.DataFrame(X, columns=names)))
    return apply_steps(steps, X, names)


def anchor_of(pipeline, X: np.ndarray, names: list[str]) -> np.ndarray:
    """``AnchoredPipeline.anchor_of(X)`` for a float64 matrix with columns ``names``."""
    from liquidity_core.learn.estimators import har_matrix

    columns = {c: X[:, i] for i, c in enumerate(names)}
    level = pipeline.level_of(columns, len(X))
    base = getattr(pipeline, "base_", None)
    if base is None:
        return level
    design = har_matrix(columns, level, pipeline.base_columns)
    return level + apply_steps(base.steps, design, ["anchor", *pipeline.base_columns])
