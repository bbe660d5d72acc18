"""AnchoredPipeline: the model forecasts the change from today's level and adds it back."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.pipeline import Pipeline

from liquidity_core.learn.estimators import (
    BLEND_WEIGHTS,
    HAR_COLUMNS,
    AnchoredPipeline,
    DropEmpty,
    best_blend,
    blend_key,
    blend_scores,
    har_challenger,
    har_design,
)


def zero_change(**kwargs):
    """An anchored pipeline whose steps forecast no change at all."""
    return AnchoredPipeline(
        [("model", DummyRegressor(strategy="constant", constant=0.0))], **kwargs
    )


def frame(level, **columns):
    return pd.DataFrame({"log_turnover": np.asarray(level, dtype=float), **columns})


def test_without_a_base_no_change_forecasts_today():
    X = frame([-3.0, -1.0, 2.0])
    pipe = zero_change(base_columns=None).fit(X, [-2.0, 0.0, 1.0])
    np.testing.assert_allclose(pipe.predict(frame([-5.0, 0.5])), [-5.0, 0.5])
    assert pipe.base_ is None


def test_the_change_is_learned_and_added_back_beyond_the_training_levels():
    X = frame([-3.0, -2.0, -1.0])
    pipe = AnchoredPipeline([("model", DummyRegressor())], base_columns=None)
    pipe.fit(X, X["log_turnover"] + 0.5)
    # Levels far outside the training range come out at their own level plus the change.
    np.testing.assert_allclose(pipe.predict(frame([-10.0, 4.0])), [-9.5, 4.5])
    np.testing.assert_allclose(pipe.predict_change(frame([-10.0, 4.0])), [0.5, 0.5])
    np.testing.assert_allclose(pipe.anchor_of(frame([-10.0, 4.0])), [-10.0, 4.0])


def test_a_missing_level_falls_back_to_the_means_then_to_the_mean_target():
    X = pd.DataFrame(
        {
            "log_turnover": [1.0, np.nan, np.nan, np.nan],
            "log_turnover_mean_7": [9.0, 2.0, np.nan, np.nan],
            "log_turnover_mean_30": [9.0, 9.0, 3.0, np.nan],
        }
    )
    y = np.array([4.0, 6.0, 8.0, 10.0])
    pipe = zero_change(base_columns=None).fit(X, y)
    assert pipe.anchor_fill_ == pytest.approx(7.0)
    np.testing.assert_allclose(pipe.predict(X), [1.0, 2.0, 3.0, 7.0])


def test_a_custom_anchor_column_is_used():
    X = pd.DataFrame({"log_turnover": [0.0, 0.0], "other": [5.0, 6.0]})
    pipe = zero_change(anchor="other", base_columns=None).fit(X, [1.0, 2.0])
    np.testing.assert_allclose(pipe.predict(X), [5.0, 6.0])


def test_the_target_is_the_change_from_the_anchor():
    # The steps see y - anchor: a linear model of the change recovers it exactly.
    rng = np.random.default_rng(0)
    level = rng.normal(-3, 1, 200)
    x = rng.normal(0, 1, 200)
    X = pd.DataFrame({"log_turnover": level, "x": x})
    y = level + 2.0 * x
    pipe = AnchoredPipeline([("model", LinearRegression())], base_columns=None).fit(X, y)
    np.testing.assert_allclose(pipe.named_steps["model"].coef_, [0.0, 2.0], atol=1e-9)
    np.testing.assert_allclose(pipe.predict(X), y, atol=1e-9)
    assert pipe.score(X, y) == pytest.approx(1.0)


def har_panel(n=400, seed=0, reversion=0.4):
    rng = np.random.default_rng(seed)
    level = rng.normal(-3, 1, n)
    means = {c: level + rng.normal(0, 0.5, n) for c in HAR_COLUMNS}
    y = level + reversion * (means["log_turnover_mean_30"] - level) + rng.normal(0, 0.01, n)
    return pd.DataFrame({"log_turnover": level, **means}), y


def test_the_linear_base_carries_the_mean_reversion():
    X, y = har_panel()
    pipe = zero_change().fit(X, y)
    assert pipe.base_ is not None
    X_new, y_new = har_panel(seed=1)
    assert r2_score(y_new, pipe.predict(X_new)) > 0.99
    # Without the base, no change means persistence, which misses the reversion.
    plain = zero_change(base_columns=None).fit(X, y)
    assert r2_score(y_new, plain.predict(X_new)) < 0.95
    np.testing.assert_allclose(pipe.predict(X_new), pipe.anchor_of(X_new))


def test_the_base_uses_each_mean_as_its_distance_from_today():
    X = frame([1.0, 2.0], log_turnover_mean_7=[1.5, 1.0])
    design = har_design(X, X["log_turnover"].to_numpy(), ("log_turnover_mean_7", "absent"))
    assert list(design.columns) == ["anchor", "log_turnover_mean_7", "absent"]
    np.testing.assert_allclose(design["anchor"], [1.0, 2.0])
    np.testing.assert_allclose(design["log_turnover_mean_7"], [0.5, -1.0])
    assert design["absent"].isna().all()


def test_the_base_copes_with_missing_means():
    X, y = har_panel()
    X.loc[::3, "log_turnover_mean_60"] = np.nan
    X = X.drop(columns=["log_turnover_mean_3"])
    pipe = zero_change().fit(X, y)
    assert np.isfinite(pipe.predict(X)).all()
    assert r2_score(y, pipe.predict(X)) > 0.99


def test_a_search_can_clone_it_with_its_settings():
    pipe = zero_change(anchor="other", base_columns=("log_turnover_mean_7",))
    copy = clone(pipe)
    assert copy.anchor == "other" and copy.base_columns == ("log_turnover_mean_7",)
    params = pipe.get_params()
    assert params["anchor"] == "other" and params["base_columns"] == ("log_turnover_mean_7",)
    X = pd.DataFrame({"other": [1.0, 2.0, 3.0], "log_turnover_mean_7": [1.0, 1.0, 1.0]})
    assert np.isfinite(copy.fit(X, [1.0, 2.0, 3.0]).predict(X)).all()


def test_it_needs_named_columns():
    pipe = zero_change(base_columns=None)
    with pytest.raises(TypeError, match="^AnchoredPipeline needs a DataFrame with named feature"):
        pipe.fit(np.zeros((3, 1)), [0.0, 1.0, 2.0])


def test_the_har_challenger_forecasts_the_level():
    X, y = har_panel()
    model = har_challenger().fit(X.assign(noise=0.0), y)
    X_new, y_new = har_panel(seed=1)
    assert r2_score(y_new, model.predict(X_new.assign(noise=0.0))) > 0.99


def test_its_pipeline_settings_are_kept_and_it_fits_quietly(capsys):
    pipe = zero_change(memory=None, base_columns=None)
    assert pipe.verbose is False and pipe.memory is None
    pipe.fit(frame([1.0, 2.0]), [1.0, 2.0])
    assert capsys.readouterr().out == ""
    loud = zero_change(verbose=True, memory="cache", base_columns=None)
    assert loud.verbose is True and loud.memory == "cache"
    assert clone(loud).get_params()["memory"] == "cache"


def test_fit_predict_and_score_pass_their_parameters_to_the_steps():
    X = frame([0.0, 0.0, 0.0])
    y = np.array([1.0, 2.0, 6.0])
    pipe = AnchoredPipeline([("model", DummyRegressor())], base_columns=None)
    pipe.fit(X, y, model__sample_weight=[0.0, 0.0, 1.0])
    np.testing.assert_allclose(pipe.predict(X), [6.0, 6.0, 6.0])
    weights = np.array([1.0, 0.0, 0.0])
    assert pipe.score(X, y, sample_weight=weights) == pytest.approx(
        r2_score(y, pipe.predict(X), sample_weight=weights)
    )
    assert pipe.score(X, y, sample_weight=weights) != pytest.approx(pipe.score(X, y))


class Shifted(DummyRegressor):
    """A regressor whose predict takes a parameter."""

    def predict(self, X, shift=0.0):
        return super().predict(X) + shift


def test_predict_parameters_reach_the_steps():
    pipe = AnchoredPipeline([("model", Shifted())], base_columns=None)
    pipe.fit(frame([1.0, 2.0]), [1.0, 2.0])
    np.testing.assert_allclose(pipe.predict(frame([5.0]), shift=1.0), [6.0])
    np.testing.assert_allclose(pipe.predict_change(frame([5.0]), shift=1.0), [1.0])


def test_a_model_pickled_before_the_base_and_the_fill_existed_still_predicts():
    pipe = zero_change(base_columns=None).fit(frame([1.0, 2.0]), [5.0, 7.0])
    del pipe.base_, pipe.anchor_fill_
    got = pipe.anchor_of(pd.DataFrame({"log_turnover": [3.0, np.nan]}))
    np.testing.assert_allclose(got, [3.0, 0.0])


def test_values_arriving_as_objects_with_gaps_are_numbers_and_missing():
    X = pd.DataFrame({"log_turnover": pd.array([1.0, None], dtype=object)})
    pipe = zero_change(base_columns=None).fit(frame([0.0, 0.0]), [3.0, 5.0])
    np.testing.assert_allclose(pipe.predict(X), [1.0, 4.0])
    from liquidity_core.learn.estimators import har_matrix

    design = har_matrix(
        {"log_turnover_mean_7": np.array([2.0, None], dtype=object)},
        np.array([1.0, 1.0]),
        ("log_turnover_mean_7",),
    )
    assert design[0, 1] == 1.0 and np.isnan(design[1, 1])


def test_a_missing_mean_counts_as_the_median_distance():
    X, y = har_panel(n=101)
    pipe = zero_change().fit(X, y)
    row = X.iloc[[0]].copy()
    row["log_turnover_mean_30"] = np.nan
    median = float(np.median(X["log_turnover_mean_30"] - X["log_turnover"]))
    filled = X.iloc[[0]].copy()
    filled["log_turnover_mean_30"] = filled["log_turnover"] + median
    np.testing.assert_allclose(pipe.predict(row), pipe.predict(filled))


def test_the_har_challenger_reads_only_the_har_columns():
    X, y = har_panel()
    rng = np.random.default_rng(5)
    model = har_challenger().fit(X.assign(noise=rng.normal(0, 1, len(X))), y)
    a = model.predict(X.assign(noise=0.0))
    b = model.predict(X.assign(noise=100.0))
    np.testing.assert_array_equal(a, b)


# --- the blend weight: anchor + w * change, w chosen by the grid search ------------------------


def learned_change(blend=1.0):
    """A pipeline that learns a constant change of +0.5 from the level."""
    X = frame([-3.0, -2.0, -1.0, 0.0])
    pipe = AnchoredPipeline([("model", DummyRegressor())], base_columns=None, blend=blend)
    return pipe.fit(X, X["log_turnover"] + 0.5)


def test_a_model_pickled_before_the_blend_existed_adds_the_whole_change():
    state = learned_change().__getstate__()
    del state["blend"]  # what unpickling a model saved before the blend existed does:
    old = AnchoredPipeline.__new__(AnchoredPipeline)
    old.__setstate__(state)
    assert old.blend == 1.0
    np.testing.assert_allclose(old.predict(frame([1.0])), [1.5])
    np.testing.assert_allclose(learned_change(blend=0.5).predict(frame([1.0])), [1.25])


def test_each_blend_weight_is_scored_from_one_prediction_of_the_change():
    pipe = learned_change()
    X, y = frame([0.0, 1.0, 2.0, 3.0]), np.array([0.1, 1.4, 2.2, 3.0])
    anchor, change = pipe.anchor_of(X), pipe.predict_change(X)
    scores = blend_scores(y, anchor, change)
    assert list(scores) == ["blend_0", "blend_25", "blend_50", "blend_75", "blend_100"]
    for w in BLEND_WEIGHTS:
        want = r2_score(y, X["log_turnover"] + w * 0.5)
        assert scores[blend_key(w)] == pytest.approx(want)
    assert scores["blend_100"] == pytest.approx(pipe.score(X, y))
    assert list(blend_scores(y, anchor, change, (0.3,))) == ["blend_30"]


def test_the_best_blend_is_the_best_mean_score_over_every_weight_and_parameter():
    cv = {
        "mean_test_blend_0": np.array([0.10, 0.20, np.nan]),
        "mean_test_blend_50": np.array([0.30, 0.15, 0.35]),
        "mean_test_blend_100": np.array([0.25, np.nan, 0.05]),
    }
    assert best_blend(cv, weights=(0.0, 0.5, 1.0)) == (2, 0.5)
    cv["mean_test_blend_0"][1] = 0.9
    assert best_blend(cv, weights=(0.0, 0.5, 1.0)) == (1, 0.0)
    everything = {f"mean_test_{blend_key(w)}": np.array([0.1, 0.2]) for w in BLEND_WEIGHTS}
    everything["mean_test_blend_75"] = np.array([0.1, 0.8])
    assert best_blend(everything) == (1, 0.75)
    assert isinstance(best_blend(everything)[0], int)


def test_columns_with_no_finite_value_in_training_are_dropped_for_good():
    X = np.array([[1.0, np.nan, np.inf, 4.0], [2.0, np.nan, np.nan, np.nan]])
    drop = DropEmpty().fit(X)
    np.testing.assert_array_equal(drop.transform(X), [[1.0, 4.0], [2.0, np.nan]])
    later = [[5, 6, 7, 8]]
    got = drop.transform(later)
    np.testing.assert_array_equal(got, [[5.0, 8.0]])
    assert got.dtype == np.float64
    assert DropEmpty().fit(pd.DataFrame({"a": ["1", None]}, dtype=object)).keep_.tolist() == [0]


def test_named_columns_are_left_out_and_their_names_followed():
    from sklearn.preprocessing import StandardScaler

    from liquidity_core.learn.estimators import DropColumns

    X = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, np.nan]})
    drop = DropColumns(drop=("b", "not_there")).fit(X)
    np.testing.assert_array_equal(drop.transform(X), [[1.0, 5.0], [2.0, np.nan]])
    np.testing.assert_array_equal(drop.transform(X.to_numpy()), [[1.0, 5.0], [2.0, np.nan]])
    assert list(drop.get_feature_names_out()) == ["a", "c"]
    with pytest.raises(ValueError, match="fitted on 3 columns"):
        drop.transform(X[["a", "b"]].to_numpy())
    with pytest.raises(ValueError, match="another order"):
        drop.transform(X[["c", "b", "a"]])
    with pytest.raises(TypeError, match="DataFrame"):
        DropColumns(drop=("b",)).fit(X.to_numpy())
    # The names a pipeline passes on (the report's importances): those the step kept.
    pipe = Pipeline([("select", drop), ("scale", StandardScaler()), ("model", DummyRegressor())])
    pipe.fit(X.fillna(0.0), [1.0, 2.0])
    assert list(pipe[:-1].get_feature_names_out(list(X.columns))) == ["a", "c"]
    with pytest.raises(ValueError, match="fitted on"):
        pipe[:-1].get_feature_names_out(["c", "b", "a"])


def test_the_anchor_reads_a_column_the_steps_leave_out():
    from sklearn.ensemble import RandomForestRegressor

    from liquidity_core.learn.estimators import DropColumns

    rng = np.random.default_rng(3)
    X = frame(rng.normal(size=300), log_turnover_mean_60=rng.normal(size=300))
    X["x"] = rng.normal(size=300)
    y = X["log_turnover"] + 0.5 * (X["log_turnover_mean_60"] - X["log_turnover"])
    steps = [
        ("select", DropColumns(drop=("log_turnover_mean_60",))),
        ("model", RandomForestRegressor(n_estimators=3, random_state=0)),
    ]
    pipe = AnchoredPipeline(steps, base_columns=("log_turnover_mean_60",)).fit(X, y)
    assert pipe.named_steps["model"].n_features_in_ == 2
    assert pipe.base_.named_steps["ridge"].coef_[1] != 0  # the base used the column
    np.testing.assert_allclose(pipe.anchor_of(X), y, atol=0.05)
