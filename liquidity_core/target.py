"""What the forest predicts: the change from an anchor, reassembled as a level.

A random forest predicts the mean of training targets in a leaf, so it cannot predict a
level outside what it has seen, and it shrinks every prediction toward the middle of the
panel: the largest, least traded coins come out too high and the busiest too low (the
market-cap bias of the first models). Predicting the *change* from the coin's current
log turnover removes the level from what the trees must learn; the published output is
the anchor plus the predicted change.

:class:`AnchoredPipeline` is a scikit-learn :class:`~sklearn.pipeline.Pipeline` (so the
published model is still ``Pipeline(StandardScaler, RandomForestRegressor)``, tuned by
``GridSearchCV`` and cloned like one) whose ``fit`` subtracts the anchor from ``y`` and
whose ``predict`` adds it back. Serving, which walks the trees itself, adds
:meth:`AnchoredPipeline.anchor_of` to each tree's output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

#: The default anchor: the coin's current log turnover (persistence).
DEFAULT_ANCHOR = "log_turnover"
#: Used, in order, where the anchor column is missing (NaN).
ANCHOR_FALLBACKS = ("log_turnover_mean_7", "log_turnover_mean_30")


class AnchoredPipeline(Pipeline):
    """A Pipeline fitted on ``y - anchor`` whose predictions are ``anchor + output``.

    Parameters
    ----------
    steps : list of (str, estimator)
        As :class:`~sklearn.pipeline.Pipeline`.
    anchor : str, default="log_turnover"
        Feature column of the anchor. Where it is NaN the first finite of
        :data:`ANCHOR_FALLBACKS` is used, then the mean training target.
    memory, verbose
        As :class:`~sklearn.pipeline.Pipeline`.

    Attributes
    ----------
    anchor_fill_ : float
        Mean training target, the anchor of rows with no usable column.
    """

    def __init__(self, steps, *, anchor: str = DEFAULT_ANCHOR, memory=None, verbose=False):
        self.anchor = anchor
        super().__init__(steps, memory=memory, verbose=verbose)

    def anchor_of(self, X) -> np.ndarray:
        """The anchor of each row of ``X`` (a DataFrame with the model's features)."""
        fill = getattr(self, "anchor_fill_", 0.0)
        if not isinstance(X, pd.DataFrame):
            raise TypeError("AnchoredPipeline needs a DataFrame with named feature columns")
        out = np.full(len(X), np.nan)
        for name in (self.anchor, *ANCHOR_FALLBACKS):
            if name in X.columns:
                values = X[name].to_numpy(dtype=float)
                out = np.where(np.isfinite(out), out, values)
        return np.where(np.isfinite(out), out, fill)

    def fit(self, X, y, **params):
        y = np.asarray(y, dtype=float)
        self.anchor_fill_ = float(np.nanmean(y)) if len(y) else 0.0
        return super().fit(X, y - self.anchor_of(X), **params)

    def predict(self, X, **params):
        return super().predict(X, **params) + self.anchor_of(X)

    def predict_change(self, X, **params):
        """The fitted steps' own output: the predicted change from the anchor."""
        return super().predict(X, **params)

    def score(self, X, y, sample_weight=None, **params):
        from sklearn.metrics import r2_score

        return r2_score(y, self.predict(X), sample_weight=sample_weight)
