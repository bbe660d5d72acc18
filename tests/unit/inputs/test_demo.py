"""liquidity_core.inputs.demo: synthetic CoinGecko drops."""

import numpy as np
import pandas as pd
import pytest

from liquidity_core.cli import main
from liquidity_core.errors import InputError
from liquidity_core.inputs.demo import generate_panel, write_demo_drops
from liquidity_core.inputs.formats import COINGECKO
from liquidity_core.inputs.reader import parse_csv


def test_panel_shape_columns_and_determinism():
    panel = generate_panel(coins=12, snapshots=20, seed=3, start="2024-02-01")
    assert list(panel.columns) == list(COINGECKO.header)
    assert len(panel) == 12 * 20
    assert panel["coin"].nunique() == 12 and panel["symbol"].nunique() == 12
    assert panel["date"].min() == "2024-02-01" and panel["date"].nunique() == 20
    assert panel.groupby("date").size().eq(12).all()
    assert (panel[["price", "24h_volume", "mkt_cap"]] > 0).all(axis=None)
    assert panel[["1h", "24h", "7d"]].notna().all(axis=None)
    pd.testing.assert_frame_equal(
        panel, generate_panel(coins=12, snapshots=20, seed=3, start="2024-02-01")
    )
    assert not panel.equals(generate_panel(coins=12, snapshots=20, seed=4, start="2024-02-01"))


def test_turnover_persists_and_reacts_to_price_moves():
    panel = generate_panel(coins=40, snapshots=80, seed=1)
    panel["lt"] = np.log(panel["24h_volume"] / panel["mkt_cap"])
    panel = panel.sort_values(["coin", "date"])
    # Within a coin, log turnover today predicts tomorrow (persistence) ...
    demeaned = panel["lt"] - panel.groupby("coin")["lt"].transform("mean")
    nxt = demeaned.groupby(panel["coin"]).shift(-1)
    assert demeaned.corr(nxt) > 0.4
    # ... and a big price move comes with more turnover.
    assert demeaned.corr(panel["24h"].abs()) > 0.2
    # Coins differ in their level of turnover.
    assert panel.groupby("coin")["lt"].mean().std() > 0.3


def test_changes_agree_with_prices():
    panel = generate_panel(coins=5, snapshots=15, seed=2).sort_values(["coin", "date"])
    ratio = panel["price"] / panel.groupby("coin")["price"].shift(1) - 1
    ok = ratio.notna()
    assert np.allclose(ratio[ok], panel.loc[ok, "24h"], atol=2e-4)


def test_write_demo_drops_writes_one_clean_file_per_snapshot(tmp_path):
    files = write_demo_drops(tmp_path / "drops", coins=8, snapshots=5, seed=9, start="2024-03-01")
    assert [f.name for f in files] == [f"coin_gecko_2024-03-0{d}.csv" for d in range(1, 6)]
    assert not list((tmp_path / "drops").glob("*.part"))
    for f in files:
        parsed = parse_csv(f.read_bytes())
        assert parsed.spec is COINGECKO
        assert len(parsed.rows) == 8 and parsed.rejected.empty


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"coins": 0}, "coins=0"),
        ({"snapshots": -1}, "snapshots=-1"),
        ({"start": "someday"}, "start='someday' is not a date"),
    ],
)
def test_bad_arguments_are_named(kwargs, message, tmp_path):
    with pytest.raises(InputError, match=message):
        write_demo_drops(tmp_path, **{"coins": 3, "snapshots": 3, "seed": 1, **kwargs})


def test_cli_demo_data(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path), "--coins", "4", "--snapshots", "3"]) == 0
    assert f"wrote 3 files to {tmp_path}" in capsys.readouterr().out
    assert len(list(tmp_path.glob("coin_gecko_*.csv"))) == 3
    assert main(["demo-data", "--out", str(tmp_path), "--coins", "0"]) == 3  # input rejected
    assert "coins=0" in capsys.readouterr().err
