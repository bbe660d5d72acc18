"""Fitted scikit-learn steps applied with plain NumPy, for the request path.

A one-row request spends more time in scikit-learn's input checks (feature names, dtypes,
finiteness, run once per step and again in each nested pipeline) than in the arithmetic.
The serving path validates its input once (the columns are the model's features, in
order, as float64) and then applies each fitted step here, with the same operations, in
the same order, as the step's own ``transform``/``predict``:

- ``StandardScaler``: ``X -= mean_``, then ``X /= scale_``;
- ``SimpleImputer`` (NaN as missing, no indicator): NaN becomes ``statistics_``;
- ``Ridge``/``RidgeCV``/``LinearRegression``: ``X @ coef_.T + intercept_``;
- ``DropColumns``/``DropEmpty`` (:mod:`liquidity_core.learn.estimators`): ``X[:, keep_]``.

A step of any other kind, or set up otherwise, goes through scikit-learn itself, so the
result never depends on whether the fast path applies;
``tests/unit/serving/test_predict_fast_path.py`` compares both on random rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV
from sklearn.preprocessing import StandardScaler

from liquidity_core.learn.estimators import DropColumns, DropEmpty, har_matrix


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


def _columns(step, X: np.ndarray) -> np.ndarray:
    return X[:, step.keep_]


def _kind(step):
    """The NumPy application of ``step``, or None when scikit-learn must apply it."""
    kind = type(step)
    if kind in (DropColumns, DropEmpty):
        return _columns
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
    columns = {c: X[:, i] for i, c in enumerate(names)}
    level = pipeline.level_of(columns, len(X))
    base = getattr(pipeline, "base_", None)
    if base is None:
        return level
    design = har_matrix(columns, level, pipeline.base_columns)
    return level + apply_steps(base.steps, design, ["anchor", *pipeline.base_columns])


# --- the forest's trees, walked together ------------------------------------------------------

#: Most rows :func:`tree_values` walks all trees at once for: the walk holds a few
#: (rows x trees) arrays, so a larger batch goes tree by tree.
FOREST_WALK_ROWS = 64


class _Forest:
    """Every tree of a fitted forest as one node table: each tree's nodes at an offset,
    leaves pointing at themselves (a walk of ``depth`` steps ends on every leaf)."""

    def __init__(self, trees):
        sizes = [t.node_count for t in trees]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        nodes = np.arange(sum(sizes), dtype=np.intp)
        left = np.concatenate([t.children_left for t in trees]).astype(np.intp)
        right = np.concatenate([t.children_right for t in trees]).astype(np.intp)
        leaf = left == -1
        shift = np.repeat(offsets, sizes)
        left = np.where(leaf, nodes, left + shift)
        right = np.where(leaf, nodes, right + shift)
        #: The child of node k: ``child[2k]`` when the row goes left, ``child[2k + 1]`` else.
        self.child = np.stack([left, right], axis=1).ravel()
        self.feature = np.where(leaf, 0, np.concatenate([t.feature for t in trees]))
        self.threshold = np.concatenate([t.threshold for t in trees])
        missing = [getattr(t, "missing_go_to_left", None) for t in trees]
        self.missing_left = (
            np.zeros(len(nodes), dtype=bool)
            if any(m is None for m in missing)
            else np.concatenate(missing).astype(bool)
        )
        self.value = np.concatenate([t.value[:, 0, 0] for t in trees])
        self.roots = offsets
        self.depth = max(t.max_depth for t in trees)


_forests: dict[int, tuple[object, _Forest]] = {}


def _forest(forest) -> _Forest | None:
    """The node table of ``forest`` (built once per fitted forest), or None when its trees
    are not single-output regression trees."""
    cached = _forests.get(id(forest))
    if cached is not None and cached[0] is forest:
        return cached[1]
    trees = [e.tree_ for e in forest.estimators_]
    if not trees or any(t.n_outputs != 1 or t.value.shape[1:] != (1, 1) for t in trees):
        return None
    table = _Forest(trees)
    if len(_forests) >= 2:  # the served model and the one loading, at most
        _forests.clear()
    _forests[id(forest)] = (forest, table)
    return table


def tree_values(forest, X: np.ndarray) -> np.ndarray:
    """Each tree's prediction for each row of ``X`` (float32, C order): ``(trees, rows)``.

    The same leaves and values as each tree's ``tree_.predict``: a row goes left where its
    value (as float64) is at most the node's threshold, or, when it is NaN, where the node
    sends missing values. A few rows walk every tree at once (one NumPy step per level
    instead of one call per tree); a batch goes tree by tree.
    """
    estimators = forest.estimators_
    table = _forest(forest) if len(X) <= FOREST_WALK_ROWS else None
    if table is None:
        per_tree = np.empty((len(estimators), len(X)))
        for i, tree in enumerate(estimators):
            per_tree[i] = tree.tree_.predict(X).reshape(len(X))
        return per_tree
    values = X.astype(np.float64)
    n, width = values.shape
    flat = values.ravel()
    base = (np.arange(n, dtype=np.intp) * width)[:, None]
    node = np.broadcast_to(table.roots, (n, len(table.roots))).copy()
    if not np.isnan(flat).any():  # no missing value to send: a row goes right past a threshold
        for _ in range(table.depth):
            right = flat[base + table.feature[node]] > table.threshold[node]
            node = table.child[2 * node + right]
        return table.value[node].T.copy()
    for _ in range(table.depth):
        x = flat[base + table.feature[node]]
        right = ~((x <= table.threshold[node]) | (np.isnan(x) & table.missing_left[node]))
        node = table.child[2 * node + right]
    return table.value[node].T.copy()
