import numpy as np
import pandas as pd
import pytest
from support.training import train_on_demo

from liquidity_core.errors import InputError, ModelError, NotFound
from liquidity_core.features.build import build_features
from liquidity_core.ingest import ingest_paths
from liquidity_core.registry import champion as registry
from liquidity_core.serving.predict import LEVELS, predict_for_symbol, predict_liquidity
from liquidity_core.store.snapshots import load_snapshots


@pytest.fixture
def champion(settings, engine, tmp_path):
    return train_on_demo(settings, tmp_path)


def test_predicts_rows_in_every_format(settings, champion, engine):
    panel = load_snapshots(engine)
    known = panel.iloc[-1]
    rows = [
        {  # CoinGecko names, a known coin
            "coin": known["coin_name"],
            "symbol": known["symbol"],
            "price": 1.5,
            "1h": 0.01,
            "24h": -0.02,
            "7d": 0.1,
            "24h_volume": 2e6,
            "mkt_cap": 9e7,
        },
        {  # CoinMarketCap names, percent and $ formatting, unknown coin
            "Name": "Brand New",
            "Symbol": "BNEW",
            "Price": "$1,000.50",
            "Volume (24h)": "$5,000,000",
            "Market Cap": "$250,000,000",
            "% 24h": "2.5",
        },
        {"Close": 3.0, "Volume": 1e5, "Marketcap": 1e7},  # OHLCV names, no identity at all
    ]
    out = predict_liquidity(rows, settings=settings)
    assert len(out) == 3
    for r in out:
        assert set(r) >= {
            "predicted_turnover",
            "liquidity_level",
            "interval",
            "model_version",
            "history_snapshots",
        }
        assert r["predicted_turnover"] > 0
        assert r["liquidity_level"] in LEVELS
        assert 0 < r["interval"]["low"] <= r["interval"]["high"]
        assert r["model_version"] == champion["version"]
    assert out[0]["history_snapshots"] > 0 and out[0]["symbol"] == known["symbol"]
    assert out[1]["history_snapshots"] == 0 and out[2]["history_snapshots"] == 0
    frame_out = predict_liquidity(pd.DataFrame(rows[:1]), settings=settings)
    assert frame_out[0]["predicted_turnover"] == pytest.approx(out[0]["predicted_turnover"])


def test_symbol_forecast_matches_training_features(settings, champion, engine):
    panel = load_snapshots(engine)
    fs = build_features(panel)
    model = registry.load_verified_model(settings)
    coin = panel.iloc[-1]
    last = fs.meta.index[(fs.meta["coin_id"] == coin["coin_id"])][-1]
    expected = float(model.pipeline.predict(fs.X.loc[[last], model.feature_names])[0])
    got = predict_for_symbol(coin["symbol"].lower(), settings=settings, model=model)
    assert got["predicted_log_turnover"] == pytest.approx(expected, rel=1e-9)
    assert got["coin_id"] == coin["coin_id"]
    assert got["as_of"].startswith(str(panel["snapshot_ts"].max().date()))
    # The same snapshot given as a new row (its stored time) gives the same forecast.
    row = {
        "coin": coin["coin_name"],
        "symbol": coin["symbol"],
        "price": coin["price"],
        "1h": coin["change_1h"],
        "24h": coin["change_24h"],
        "7d": coin["change_7d"],
        "24h_volume": coin["volume_24h"],
        "mkt_cap": coin["market_cap"],
        "date": coin["snapshot_ts"].isoformat(),
    }
    again = predict_liquidity([row], settings=settings, model=model)[0]
    assert again["predicted_log_turnover"] == pytest.approx(expected, rel=1e-9)


def test_unknown_symbol_is_not_found(settings, champion):
    with pytest.raises(NotFound, match="'NOPE'"):
        predict_for_symbol("NOPE", settings=settings)


def test_bad_rows_name_index_field_and_problem(settings, champion):
    rows = [
        {"price": 1, "24h_volume": 10, "mkt_cap": 100},
        {"price": "abc", "24h_volume": -5, "mkt_cap": 100},
        {"price": 1, "mkt_cap": 100},
    ]
    with pytest.raises(InputError) as info:
        predict_liquidity(rows, settings=settings)
    errors = info.value.errors
    fields = {(e["index"], e["field"]) for e in errors}
    assert {(1, "price"), (1, "24h_volume"), (2, "24h_volume")} <= fields, errors
    assert all(e["problem"] for e in errors)
    assert "row 1 field 'price'" in str(info.value)


def test_no_model_is_a_model_error(settings, engine):
    with pytest.raises(ModelError, match="no model has been published"):
        predict_liquidity([{"price": 1, "24h_volume": 10, "mkt_cap": 100}], settings=settings)


def test_a_batch_forecasts_each_row_as_it_would_alone(settings, champion, engine):
    panel = load_snapshots(engine)
    symbols = panel["symbol"].unique()
    rng = np.random.default_rng(0)
    rows = [
        {
            "symbol": str(symbols[i % len(symbols)]) if i % 2 else f"UNK{i}",
            "price": float(rng.lognormal()),
            "24h": float(rng.normal(0, 0.05)),
            "24h_volume": float(rng.lognormal(14)),
            "mkt_cap": float(rng.lognormal(18)),
        }
        for i in range(1000)
    ]
    model = registry.load_verified_model(settings)
    out = predict_liquidity(rows, settings=settings, model=model)
    assert len(out) == 1000
    assert all(r["history_snapshots"] > 0 for r in out[1::2])  # known symbols
    assert all(r["history_snapshots"] == 0 for r in out[0::2])  # unknown ones
    for i in (0, 1, 2, 3, 500, 999):
        alone = predict_liquidity([rows[i]], settings=settings, model=model)[0]
        assert alone["predicted_log_turnover"] == pytest.approx(
            out[i]["predicted_log_turnover"], rel=1e-12
        )
        assert alone["history_snapshots"] == out[i]["history_snapshots"]


def test_forecasts_use_a_snapshot_as_soon_as_it_is_ingested(settings, champion, engine, tmp_path):
    panel = load_snapshots(engine)
    coin = panel.iloc[-1]
    before = predict_for_symbol(coin["symbol"], settings=settings)
    newest = panel["snapshot_ts"].max()
    later = newest + pd.Timedelta(days=1)
    drop = tmp_path / "later.csv"
    pd.DataFrame(
        [
            {
                "coin": coin["coin_name"],
                "symbol": coin["symbol"],
                "price": coin["price"] * 2,
                "1h": 0.0,
                "24h": 0.0,
                "7d": 0.0,
                "24h_volume": coin["volume_24h"] * 10,
                "mkt_cap": coin["market_cap"],
                "date": later.strftime("%Y-%m-%d"),
            }
        ]
    ).to_csv(drop, index=False)
    (result,) = ingest_paths([drop], settings=settings)
    assert result.status == "loaded"
    after = predict_for_symbol(coin["symbol"], settings=settings)
    assert before["as_of"].startswith(str(newest.date()))
    assert after["as_of"].startswith(str(later.date()))
    assert after["predicted_log_turnover"] != before["predicted_log_turnover"]


def test_served_features_match_training_features_with_the_market(settings, champion, engine):
    """The market-wide features of a request come from every stored coin, as in training
    (the request alone would make each row its own market)."""
    from liquidity_core.features.build import MARKET_FEATURES
    from liquidity_core.learn.estimators import AnchoredPipeline
    from liquidity_core.serving.predict import features_for_rows

    panel = load_snapshots(engine)
    fs = build_features(panel)
    newest = fs.meta["snapshot_ts"] == fs.meta["snapshot_ts"].max()
    rows = panel[panel["snapshot_ts"] == panel["snapshot_ts"].max()].head(3)
    X, _seen = features_for_rows(rows.reset_index(drop=True), engine)
    want = fs.X[newest.to_numpy()].set_index(fs.meta.loc[newest, "coin_id"]).loc[rows["coin_id"]]
    for col in [
        *MARKET_FEATURES,
        "log_turnover_dev_market",
        "log_mcap_rel",
        "log_turnover_mean_60",
        "log_turnover_ewm_8",
    ]:
        np.testing.assert_allclose(X[col].to_numpy(), want[col].to_numpy(), rtol=1e-9, err_msg=col)
    model = registry.load_verified_model(settings)
    assert isinstance(model.pipeline, AnchoredPipeline)


def test_served_features_are_the_full_build_bit_for_bit(settings, champion, engine, monkeypatch):
    """Serving computes only each row's own features and takes the market-cap rank and
    the market from the store: the same numbers as build_features on the same rows, whose
    cross-sectional columns serving overwrote."""
    from liquidity_core.serving import predict as served

    panel = load_snapshots(engine)
    times = sorted(panel["snapshot_ts"].unique())
    rows = panel[panel["snapshot_ts"] == times[-1]].head(4).reset_index(drop=True)
    rows.loc[1, "snapshot_ts"] = times[-5]  # a row dated in the stored history
    rows.loc[2, ["coin_id", "symbol"]] = ["brand-new", "BNEW"]  # an unknown coin
    rows.loc[3, "snapshot_ts"] = pd.NaT  # taken as the next snapshot
    symbol = rows.loc[0, "symbol"]
    lean_X, lean_seen = served.features_for_rows(rows, engine)
    lean_coin = predict_for_symbol(symbol, settings=settings)

    def full_build(panel, *, rows, times=None):
        fs = build_features(panel, rows=rows, times=times)
        values = fs.X.to_numpy()[np.argsort(fs.rows, kind="stable")]
        return {c: values[:, i] for i, c in enumerate(fs.X.columns)}

    monkeypatch.setattr(served, "own_features", full_build)
    full_X, full_seen = served.features_for_rows(rows, engine)
    pd.testing.assert_frame_equal(lean_X, full_X, check_exact=True)
    np.testing.assert_array_equal(lean_seen, full_seen)
    assert predict_for_symbol(symbol, settings=settings) == lean_coin
    assert lean_X.notna().any().all()  # every column is filled for some row
