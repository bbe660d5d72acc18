"""Time-ordered validation for panels: folds and the holdout split on snapshot times.

Several coins share each snapshot time, so splitting rows with a plain
``TimeSeriesSplit`` could put one timestamp on both sides. Here the unique times are
split (by scikit-learn's ``TimeSeriesSplit`` itself) and every row follows its time.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import TimeSeriesSplit

from liquidity_core.errors import NotEnoughData


def min_times_for(n_splits: int, gap: int) -> int:
    """The fewest unique times ``TimeSeriesSplit(n_splits, gap=gap)`` can split."""
    n = n_splits + 1 + gap
    while n - gap - (n // (n_splits + 1)) * n_splits <= 0:
        n += 1
    return n


class PanelTimeSeriesSplit:
    """Expanding-window cross-validation on the unique snapshot times of a panel.

    Parameters
    ----------
    n_splits : int, default=3
        Number of folds.
    gap : int, default=1
        Snapshot times left out between each training window and its validation
        window. With a one-snapshot-ahead target, ``gap=1`` makes sure no training
        target is a validation feature.

    Examples
    --------
    >>> import numpy as np
    >>> times = np.repeat(np.arange(6), 2)  # 6 snapshots of 2 coins
    >>> for train, test in PanelTimeSeriesSplit(n_splits=2, gap=1).split(times, groups=times):
    ...     print(sorted(set(times[train].tolist())), sorted(set(times[test].tolist())))
    [0] [2, 3]
    [0, 1, 2] [4, 5]
    """

    def __init__(self, n_splits: int = 3, *, gap: int = 1):
        self.n_splits = n_splits
        self.gap = gap

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of folds."""
        return self.n_splits

    def split(self, X, y=None, groups=None):
        """Yield ``(train_rows, test_rows)`` index arrays.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Only its length is used.
        y : ignored
        groups : array-like of shape (n_samples,)
            The snapshot time (or an integer code of it) of each row. Required.

        Raises
        ------
        ValueError
            When ``groups`` is missing or there are too few unique times for
            ``n_splits`` and ``gap``; the message gives the counts.
        """
        if groups is None:
            raise ValueError("PanelTimeSeriesSplit needs groups= the snapshot time of each row")
        groups = np.asarray(groups)
        if len(groups) != len(X):
            raise ValueError(f"groups has {len(groups)} entries for {len(X)} rows")
        codes, times = _codes(groups)
        need = min_times_for(self.n_splits, self.gap)
        if len(times) < need:
            raise ValueError(
                f"Too many splits={self.n_splits} with gap={self.gap} for "
                f"{len(times)} unique snapshot times; need at least {need}"
            )
        tss = TimeSeriesSplit(n_splits=self.n_splits, gap=self.gap)
        for train_t, test_t in tss.split(np.arange(len(times))):
            yield (
                np.flatnonzero(np.isin(codes, train_t)),
                np.flatnonzero(np.isin(codes, test_t)),
            )


def _codes(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    times, codes = np.unique(groups, return_inverse=True)
    return codes.ravel(), times


def holdout_split(
    t: np.ndarray,
    has_target: np.ndarray,
    *,
    holdout_snapshots: int,
    gap: int = 1,
    n_splits: int = 3,
):
    """Split rows into tuning rows and holdout rows by snapshot time.

    The holdout is the newest ``holdout_snapshots`` times that have a target; tuning
    rows are the times before it, ``gap`` times apart, so no tuning target lies in the
    holdout. Rows without a finite target belong to neither.

    Parameters
    ----------
    t : array of int
        Integer snapshot-time code of each row (0 = oldest).
    has_target : array of bool
        Whether each row's target is finite.
    holdout_snapshots : int
        Number of holdout snapshot times.
    gap : int, default=1
        Times left out between tuning and holdout.
    n_splits : int, default=3
        CV folds the tuning rows must support.

    Returns
    -------
    tuning_rows, holdout_rows : arrays of int

    Raises
    ------
    NotEnoughData
        When there are too few snapshot times; the message gives the counts.
    """
    t = np.asarray(t)
    has_target = np.asarray(has_target, dtype=bool)
    target_times = np.unique(t[has_target])
    need_tuning = min_times_for(n_splits, gap)
    need = need_tuning + gap + holdout_snapshots
    if len(target_times) < need:
        n_times = len(np.unique(t))
        raise NotEnoughData(
            f"{len(target_times)} of {n_times} snapshot time(s) have a next snapshot to "
            f"forecast; training needs at least {need} ({need + 1} snapshots in all): "
            f"{need_tuning} for cv_splits={n_splits} with gap={gap}, a gap of {gap}, and "
            f"{holdout_snapshots} for holdout_snapshots={holdout_snapshots}"
        )
    holdout_times = target_times[-holdout_snapshots:]
    first_holdout = holdout_times[0]
    tuning = np.flatnonzero(has_target & (t < first_holdout - gap))
    holdout = np.flatnonzero(has_target & np.isin(t, holdout_times))
    n_tuning_times = len(np.unique(t[tuning]))
    if n_tuning_times < need_tuning:
        raise NotEnoughData(
            f"only {n_tuning_times} snapshot time(s) with a target before the holdout "
            f"(which starts at time #{first_holdout}); cv_splits={n_splits} with gap={gap} "
            f"needs {need_tuning}"
        )
    return tuning, holdout
