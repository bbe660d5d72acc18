"""The series the features are made of: each row's log turnover and logs, and the
market-wide medians per snapshot time (:mod:`liquidity_core.features.build` assembles
them into features)."""

from __future__ import annotations

import numpy as np

from liquidity_core.features.columns import MARKET_CHANGE_LAG, TURNOVER_FLOOR
from liquidity_core.features.windows import by_time_median


def log_turnover(volume, market_cap) -> np.ndarray:
    """``log(volume / market_cap)`` with a floor; NaN where the market cap is not positive."""
    volume = np.asarray(volume, dtype=float)
    market_cap = np.asarray(market_cap, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        turnover = np.where(market_cap > 0, volume / market_cap, np.nan)
        return np.log(np.maximum(turnover, TURNOVER_FLOOR))


def safe_log(values) -> np.ndarray:
    """``log(values)``; NaN where a value is not positive."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log(values), np.nan)


def market_series(t: np.ndarray, n_times: int, lt, ret, log_mcap) -> dict[str, np.ndarray]:
    """The market-wide components per snapshot time (index = time code): the median log
    turnover, its change over the last MARKET_CHANGE_LAG snapshot times, the median
    absolute log return and the median log market cap. Each uses only the rows at that
    time and at earlier times."""
    market_lt = by_time_median(lt, t, n_times)
    earlier = np.full(n_times, np.nan)
    lag = min(MARKET_CHANGE_LAG, max(n_times - 1, 0))
    if lag:
        # The change from the newest known median LAG times back (or the oldest one).
        codes = np.arange(n_times)
        back = np.maximum(codes - MARKET_CHANGE_LAG, 0)
        earlier = np.where(codes > 0, market_lt[back], np.nan)
    return {
        "market_log_turnover": market_lt,
        "market_log_turnover_change": market_lt - earlier,
        "market_abs_return": by_time_median(np.abs(ret), t, n_times),
        "market_log_market_cap": by_time_median(log_mcap, t, n_times),
    }
