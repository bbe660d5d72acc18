"""The splits at their limits: the fewest snapshots they accept, the defaults, the errors."""

import numpy as np
import pytest
from sklearn.model_selection import TimeSeriesSplit

from liquidity_core.errors import NotEnoughData
from liquidity_core.learn.splits import PanelTimeSeriesSplit, holdout_split, min_times_for


def splits(n_times, n_splits, gap):
    return list(TimeSeriesSplit(n_splits=n_splits, gap=gap).split(np.arange(n_times)))


@pytest.mark.parametrize("n_splits", [2, 3, 4, 5])
@pytest.mark.parametrize("gap", [0, 1, 2, 3, 4])
def test_min_times_is_exactly_the_fewest_times_that_split(n_splits, gap):
    need = min_times_for(n_splits, gap)
    assert len(splits(need, n_splits, gap)) == n_splits
    for fewer in range(1, need):  # (with a gap over 1, some larger counts fail again)
        with pytest.raises(ValueError):
            splits(fewer, n_splits, gap)


def panel_times(n_times, coins=3):
    return np.repeat(np.arange(n_times), coins)


def test_the_default_split_has_three_folds_and_a_one_snapshot_gap():
    cv = PanelTimeSeriesSplit()
    assert cv.get_n_splits() == 3
    t = panel_times(8)
    folds = list(cv.split(t, groups=t))
    assert len(folds) == 3
    for train, test in folds:
        assert t[test].min() - t[train].max() == 2  # one snapshot left out between


def test_the_fewest_times_split_and_one_fewer_is_refused_with_the_counts():
    need = min_times_for(3, 1)
    t = panel_times(need)
    assert len(list(PanelTimeSeriesSplit(3, gap=1).split(t, groups=t))) == 3
    t = panel_times(need - 1)
    with pytest.raises(
        ValueError, match=rf"{need - 1} unique snapshot times; need at least {need}"
    ):
        list(PanelTimeSeriesSplit(3, gap=1).split(t, groups=t))


def test_the_split_needs_the_snapshot_times_of_as_many_rows():
    t = panel_times(8)
    with pytest.raises(
        ValueError, match="^PanelTimeSeriesSplit needs groups= the snapshot time of each row$"
    ):
        list(PanelTimeSeriesSplit().split(t))
    with pytest.raises(ValueError, match="groups has 23 entries for 24 rows"):
        list(PanelTimeSeriesSplit().split(t, groups=t[:-1]))


def needed(n_splits=3, gap=1, holdout=2):
    return min_times_for(n_splits, gap) + gap + holdout


def test_holdout_defaults_leave_one_snapshot_and_three_folds():
    n = needed()  # with the defaults gap=1, n_splits=3
    t = panel_times(n)
    tuning, holdout = holdout_split(t, np.ones(len(t), bool), holdout_snapshots=2)
    assert sorted(set(t[holdout])) == [n - 2, n - 1]
    assert t[tuning].max() == n - 4  # time n - 3 is the gap
    with pytest.raises(NotEnoughData):
        holdout_split(t[t > 0], np.ones(int((t > 0).sum()), bool), holdout_snapshots=2)


def test_the_fewest_target_times_suffice_and_one_fewer_names_the_counts():
    n = needed(holdout=2)
    t = panel_times(n)
    tuning, holdout = holdout_split(t, np.ones(len(t), bool), holdout_snapshots=2, gap=1)
    assert len(set(t[tuning])) == min_times_for(3, 1) and len(set(t[holdout])) == 2
    t = panel_times(n - 1)
    with pytest.raises(NotEnoughData) as err:
        holdout_split(t, np.ones(len(t), bool), holdout_snapshots=2, gap=1)
    assert str(err.value).startswith(f"{n - 1} of {n - 1} snapshot time(s) have a next snapshot")
    assert f"training needs at least {n} ({n + 1} snapshots in all)" in str(err.value)
    assert "for cv_splits=3 with gap=1, a gap of 1, and 2 for holdout_snapshots=2" in str(err.value)


def test_the_larger_the_gap_or_holdout_the_more_times_are_needed():
    for gap, holdout in [(2, 2), (1, 4), (0, 1)]:
        n = needed(gap=gap, holdout=holdout)
        t = panel_times(n)
        has = np.ones(len(t), bool)
        holdout_split(t, has, holdout_snapshots=holdout, gap=gap)
        with pytest.raises(NotEnoughData):
            holdout_split(t[t > 0], has[t > 0], holdout_snapshots=holdout, gap=gap)


def test_has_target_is_a_mask_even_as_zeros_and_ones():
    n = needed() + 1
    t = panel_times(n, coins=2)
    has = np.ones(len(t), dtype=int)
    has[1] = 0  # one coin at the oldest time has no target
    tuning, holdout = holdout_split(t, has.tolist(), holdout_snapshots=2)
    assert 1 not in tuning and 0 in tuning
    assert len(holdout) == 4


def test_holes_in_the_targets_before_the_holdout_still_leave_enough_times():
    need_tuning = min_times_for(3, 1)
    n = need_tuning + 2 + 1 + 2
    t = panel_times(n)
    has = ~np.isin(t, [0, 1])  # the oldest two have no target
    tuning, holdout = holdout_split(t, has, holdout_snapshots=2)
    assert len(set(t[tuning])) == need_tuning
    assert sorted(set(t[holdout])) == [n - 2, n - 1]
