import numpy as np
import pytest

from liquidity_core.errors import NotEnoughData
from liquidity_core.learn.splits import PanelTimeSeriesSplit, holdout_split, min_times_for


def test_folds_split_on_times_expanding_with_gap():
    times = np.repeat(np.arange(10), 3)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(times))
    times = times[order]
    folds = list(PanelTimeSeriesSplit(n_splits=3, gap=1).split(times, groups=times))
    assert len(folds) == 3
    prev_train = set()
    for train, test in folds:
        tr, te = set(times[train]), set(times[test])
        assert not tr & te
        assert max(tr) + 1 < min(te)  # gap of one snapshot time
        assert prev_train <= tr  # expanding
        prev_train = tr
        # every row of a time is on the same side
        assert len(train) == 3 * len(tr) and len(test) == 3 * len(te)


def test_matches_sklearn_time_series_split_on_unique_times():
    from sklearn.model_selection import TimeSeriesSplit

    times = np.repeat(np.arange(8), 2)
    mine = [
        sorted(set(times[te]))
        for _, te in PanelTimeSeriesSplit(3, gap=1).split(times, groups=times)
    ]
    ref = [list(te) for _, te in TimeSeriesSplit(3, gap=1).split(np.arange(8))]
    assert mine == ref


def test_too_few_times_names_counts():
    times = np.repeat(np.arange(3), 4)
    msg = r"splits=3 with gap=1 for 3 unique snapshot times; need at least 5"
    with pytest.raises(ValueError, match=msg):
        list(PanelTimeSeriesSplit(3, gap=1).split(times, groups=times))
    with pytest.raises(ValueError, match="groups"):
        list(PanelTimeSeriesSplit(3).split(times))
    assert min_times_for(3, 1) == 5


def test_holdout_is_newest_target_times_separated_by_gap():
    t = np.repeat(np.arange(12), 2)
    has_target = t < 11  # the last snapshot has no next one
    tuning, holdout = holdout_split(t, has_target, holdout_snapshots=3, gap=1, n_splits=3)
    assert sorted(set(t[holdout])) == [8, 9, 10]
    assert max(t[tuning]) == 6  # its target (t=7) is before the holdout
    with pytest.raises(NotEnoughData, match=r"1 of 2 snapshot time\(s\) have a next snapshot"):
        holdout_split(np.repeat([0, 1], 5), np.repeat([True, False], 5), holdout_snapshots=3)
