"""What the forest predicts: the change from an anchor, reassembled as a level.

A random forest predicts the mean of training targets in a leaf, so it cannot predict a
level outside what it has seen, and it shrinks every prediction toward the middle of the
panel: the largest, least traded coins come out too high and the busiest too low (the
market-cap bias of the first models). Predicting the *change* from the coin's current
log turnover removes the level from what the trees must learn; the published output is
the anchor plus the predicted change.

The anchor is the coin's current log turnover moved by a small linear HAR-style base: a
ridge regression of the change on today's level and the coin's mean log turnover over
3, 7, 30 and 60 snapshots (each as its distance from today). The ridge penalty (chosen
by RidgeCV) shrinks the base toward persistence, so on a short or noisy panel it falls
back to "tomorrow = today"; the linear part carries the mean reversion that a forest
would otherwise approximate in steps, and the forest models what is left.

:class:`AnchoredPipeline` is a scikit-learn :class:`~sklearn.pipeline.Pipeline` (so the
published model is still ``Pipeline(StandardScaler, RandomForestRegressor)``, tuned by
``GridSearchCV`` and cloned like one) whose ``fit`` subtracts the anchor from ``y`` and
whose ``predict`` adds it back. Serving, which walks the trees itself, adds
:meth:`AnchoredPipeline.anchor_of` to each tree's output.

How much of the forest to trust is a parameter too: the prediction is
``anchor + blend * change``. ``blend=0`` is the HAR base alone, ``blend=1`` the forest on
top of it. Training scores every weight of :data:`BLEND_WEIGHTS` on the same fitted fold
models (:func:`blend_scores`), so time-series CV chooses it with the forest's parameters
at no extra fit, and never anything it ranks below the base alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

#: The default anchor: the coin's current log turnover (persistence).
DEFAULT_ANCHOR = "log_turnover"
#: Used, in order, where the anchor column is missing (NaN).
ANCHOR_FALLBACKS = ("log_turnover_mean_7", "log_turnover_mean_30")
#: Columns of the linear base, each taken as its difference from the anchor.
HAR_COLUMNS = (
    "log_turnover_mean_3",
    "log_turnover_mean_7",
    "log_turnover_mean_30",
    "log_turnover_mean_60",
)
#: Weights of the forest's change that time-series CV chooses among (0: the base alone).
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Ridge penalties the base chooses among (on standardized columns).
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))


def har_design(X: pd.DataFrame, anchor: np.ndarray, columns) -> pd.DataFrame:
    """The base's inputs: the anchor and each HAR column's distance from it."""
    design = har_matrix({c: X[c].to_numpy(dtype=float) for c in columns if c in X}, anchor, columns)
    return pd.DataFrame(design, columns=["anchor", *columns], index=X.index)


def har_matrix(X, anchor: np.ndarray, columns) -> np.ndarray:
    """:func:`har_design` as a float64 matrix, from a mapping of column -> array."""
    design = np.empty((1 + len(columns), len(anchor))).T  # column-major, as from a frame
    design[:, 0] = anchor
    for j, c in enumerate(columns, start=1):
        values = np.asarray(X[c], dtype=float) if c in X else np.full(len(anchor), np.nan)
        design[:, j] = values - anchor
    return design


def har_ridge(alphas=RIDGE_ALPHAS):
    """``Pipeline(SimpleImputer, StandardScaler, RidgeCV)``: the linear base."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("ridge", RidgeCV(alphas=alphas)),
        ]
    )


class AnchoredPipeline(Pipeline):
    """A Pipeline fitted on ``y - anchor`` whose predictions are ``anchor + output``.

    Parameters
    ----------
    steps : list of (str, estimator)
        As :class:`~sklearn.pipeline.Pipeline`.
    anchor : str, default="log_turnover"
        Feature column of the anchor. Where it is NaN the first finite of
        :data:`ANCHOR_FALLBACKS` is used, then the mean training target.
    base_columns : tuple of str or None, default=HAR_COLUMNS
        Columns of the linear base added to the anchor; None or empty: no base (the
        steps predict the plain change from the anchor).
    blend : float, default=1.0
        Weight of the steps' predicted change: ``predict`` is ``anchor_of(X) + blend *
        change``. It does not change what ``fit`` learns.
    memory, verbose
        As :class:`~sklearn.pipeline.Pipeline`.

    Attributes
    ----------
    anchor_fill_ : float
        Mean training target, the anchor of rows with no usable column.
    base_ : Pipeline or None
        The fitted linear base (:func:`har_ridge`), fitted on ``y - anchor``.
    """

    def __init__(
        self,
        steps,
        *,
        anchor: str = DEFAULT_ANCHOR,
        base_columns=HAR_COLUMNS,
        blend: float = 1.0,
        memory=None,
        verbose=False,
    ):
        self.anchor = anchor
        self.base_columns = base_columns
        self.blend = blend
        super().__init__(steps, memory=memory, verbose=verbose)

    def __setstate__(self, state):
        state.setdefault("blend", 1.0)  # models pickled before the blend: the whole forest
        super().__setstate__(state)

    def anchor_of(self, X) -> np.ndarray:
        """The anchor of each row of ``X``: the anchor column plus the linear base."""
        level = self._level(X)
        base = getattr(self, "base_", None)
        if base is None:
            return level
        return level + base.predict(har_design(X, level, self.base_columns))

    def _level(self, X) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("AnchoredPipeline needs a DataFrame with named feature columns")
        names = (self.anchor, *ANCHOR_FALLBACKS)
        given = {c: X[c].to_numpy(dtype=float) for c in names if c in X.columns}
        return self.level_of(given, len(X))

    def level_of(self, columns, n: int) -> np.ndarray:
        """The anchor column (then its fallbacks, then the fill) from a mapping of
        column -> float array (``n`` rows); what :meth:`anchor_of` adds the base to."""
        fill = getattr(self, "anchor_fill_", 0.0)
        out = np.full(n, np.nan)
        for name in (self.anchor, *ANCHOR_FALLBACKS):
            if name in columns:
                out = np.where(np.isfinite(out), out, columns[name])
        return np.where(np.isfinite(out), out, fill)

    def fit(self, X, y, **params):
        y = np.asarray(y, dtype=float)
        self.anchor_fill_ = float(np.nanmean(y)) if len(y) else 0.0
        self.base_ = None
        if self.base_columns:
            level = self._level(X)
            self.base_ = har_ridge().fit(har_design(X, level, self.base_columns), y - level)
        return super().fit(X, y - self.anchor_of(X), **params)

    def predict(self, X, **params):
        return self.anchor_of(X) + self.blend * super().predict(X, **params)

    def predict_change(self, X, **params):
        """The fitted steps' own output: the predicted change from the anchor."""
        return super().predict(X, **params)

    def score(self, X, y, sample_weight=None, **params):
        from sklearn.metrics import r2_score

        return r2_score(y, self.predict(X), sample_weight=sample_weight)


def har_challenger():
    """The linear HAR challenger scored beside the forest: a ridge regression of the
    next log turnover on today's and the mean log turnover over 3, 7, 30 and 60
    snapshots (``Pipeline(select, SimpleImputer, StandardScaler, RidgeCV)``)."""
    from sklearn.compose import ColumnTransformer

    select = ColumnTransformer([("har", "passthrough", [DEFAULT_ANCHOR, *HAR_COLUMNS])])
    return Pipeline([("select", select), *har_ridge().steps])


def blend_scores(y, anchor: np.ndarray, change: np.ndarray, weights=BLEND_WEIGHTS) -> dict:
    """The R² of ``anchor + w * change`` for each weight (keys ``blend_0``, ``blend_25``...):
    what a fold model scores at every blend weight, from one prediction of its change."""
    from sklearn.metrics import r2_score

    return {blend_key(w): float(r2_score(y, anchor + w * change)) for w in weights}


def blend_key(w: float) -> str:
    """The scoring key of a blend weight: ``blend_75`` for 0.75."""
    return f"blend_{round(w * 100)}"


def best_blend(cv_results: dict, weights=BLEND_WEIGHTS) -> tuple[int, float]:
    """The (parameter index, weight) with the best mean CV R² over every blend weight."""
    means = np.array([cv_results[f"mean_test_{blend_key(w)}"] for w in weights])
    wi, pi = np.unravel_index(np.nanargmax(means), means.shape)
    return int(pi), float(weights[wi])


class DropColumns(TransformerMixin, BaseEstimator):
    """A transformer that leaves out the named columns of the frame it is fitted on.

    The forest's pipeline starts with one
    (:data:`~liquidity_core.features.columns.LEFT_OUT_OF_FOREST`): those features are
    still built, stored and read by the anchor, the intervals and the report, but the
    trees never split on them. It is fitted on a DataFrame and later applied to rows with
    the same columns in the same order (the model's ``feature_names``; a DataFrame with
    other columns is refused, as scikit-learn's own steps refuse it); names in ``drop``
    that it does not find are ignored.

    Parameters
    ----------
    drop : tuple of str, default=()
        The columns to leave out.

    Attributes
    ----------
    keep_ : ndarray of int
        Positions of the columns kept, in their order.
    feature_names_in_, feature_names_out_ : ndarray of str
        The names of the columns it was fitted on, and of those kept.
    """

    def __init__(self, drop=()):
        self.drop = drop

    def fit(self, X, y=None):
        if not isinstance(X, pd.DataFrame):
            raise TypeError("DropColumns needs a DataFrame with named feature columns")
        names = np.asarray(X.columns, dtype=object)
        self.keep_ = np.flatnonzero(~np.isin(names, list(self.drop)))
        self.feature_names_in_ = names
        self.feature_names_out_ = names[self.keep_]
        self.n_features_in_ = len(names)
        return self

    def transform(self, X):
        if isinstance(X, pd.DataFrame) and not np.array_equal(X.columns, self.feature_names_in_):
            raise ValueError(
                "DropColumns was fitted on other columns, or in another order: "
                f"expected {list(self.feature_names_in_)}, got {list(X.columns)}"
            )
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"DropColumns was fitted on {self.n_features_in_} columns, "
                f"got an array of shape {X.shape}"
            )
        return X[:, self.keep_]

    def get_feature_names_out(self, input_features=None):
        """The names of the columns kept (``input_features``, when given, must be the
        columns it was fitted on): what ``Pipeline.get_feature_names_out`` passes on."""
        if input_features is not None and not np.array_equal(
            input_features, self.feature_names_in_
        ):
            raise ValueError(f"DropColumns was fitted on {list(self.feature_names_in_)}")
        return self.feature_names_out_


class DropEmpty(TransformerMixin, BaseEstimator):
    """A transformer that drops the columns with no finite value in its training rows.

    HistGradientBoosting fails on such a column ("window shape cannot be larger than input
    array shape"): ``target_weekday`` at a monthly cadence, ``change_1h`` in a daily history.
    Fitted per fold, since a column can be empty in an early fold only.
    """

    def fit(self, X, y=None):
        self.keep_ = np.flatnonzero(np.isfinite(np.asarray(X, dtype=float)).any(axis=0))
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)[:, self.keep_]
