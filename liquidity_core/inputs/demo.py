"""Synthetic CoinGecko-format market data for demos, tests and benchmarks.

The panel is built so that liquidity is forecastable but not trivially so:

- each coin has its own long-run log turnover (volume / market cap) that it reverts to;
- log turnover follows an AR(1) around that level, so it persists from day to day;
- turnover reacts to price moves: the size of today's and yesterday's return pushes it up;
- returns have clustered volatility (GARCH-like), so a big move today means more big moves;
- the observed turnover carries measurement noise.

So "tomorrow = today" (persistence) is a decent baseline, and a model that also sees the
recent price changes and the coin's level can beat it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from liquidity_core.errors import InputError

_SYLLABLES = (
    "ba",
    "co",
    "da",
    "fi",
    "ga",
    "ho",
    "ka",
    "li",
    "mo",
    "nu",
    "pa",
    "qui",
    "ra",
    "so",
    "ta",
    "vi",
    "xe",
    "zo",
    "el",
    "or",
    "an",
    "is",
    "um",
    "ex",
    "lu",
    "ne",
)
_SUFFIXES = ("", "", "", " Coin", " Token", " Network", " Protocol", " Chain", " Finance")


def _names(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    names: list[str] = []
    symbols: list[str] = []
    seen_names: set[str] = set()
    seen_symbols: set[str] = set()
    while len(names) < n:
        parts = rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))
        stem = "".join(parts).capitalize()
        name = stem + str(rng.choice(_SUFFIXES))
        if name in seen_names:
            continue
        symbol = stem[: int(rng.integers(3, 6))].upper()
        k = 2
        while symbol in seen_symbols:
            symbol = f"{stem[:3].upper()}{k}"
            k += 1
        seen_names.add(name)
        seen_symbols.add(symbol)
        names.append(name)
        symbols.append(symbol)
    return names, symbols


def _check_counts(coins: int, snapshots: int) -> None:
    if int(coins) < 1 or int(snapshots) < 1:
        raise InputError(f"coins={coins} and snapshots={snapshots}: both must be at least 1")


def generate_panel(
    *,
    coins: int = 60,
    snapshots: int = 60,
    seed: int = 7,
    start="2024-01-01",
) -> pd.DataFrame:
    """Generate a panel of daily CoinGecko-format snapshots.

    Parameters
    ----------
    coins : int, default=60
        Number of coins (distinct names and symbols).
    snapshots : int, default=60
        Number of daily snapshots.
    seed : int, default=7
        Random seed; the same arguments always give the same panel.
    start : str or datetime-like, default="2024-01-01"
        Date of the first snapshot (UTC).

    Returns
    -------
    pandas.DataFrame
        Columns ``coin, symbol, price, 1h, 24h, 7d, 24h_volume, mkt_cap, date`` (changes as
        fractions, ``date`` as ``YYYY-MM-DD``), ``coins * snapshots`` rows ordered by date,
        then market cap descending.

    Raises
    ------
    InputError
        When ``coins`` or ``snapshots`` is below 1 or ``start`` is not a date.
    """
    _check_counts(coins, snapshots)
    try:
        first = pd.Timestamp(start)
    except (ValueError, TypeError):
        raise InputError(f"start={start!r} is not a date (expected YYYY-MM-DD)") from None
    first = first.tz_localize(None) if first.tzinfo else first
    first = first.normalize()
    rng = np.random.default_rng(seed)
    n, t_total = int(coins), int(snapshots)
    burn = 30  # simulate a month before the first snapshot so 7d changes and AR states settle
    steps = t_total + burn

    names, symbols = _names(rng, n)
    level = rng.normal(np.log(0.06), 0.7, n)  # long-run log turnover per coin
    phi = rng.uniform(0.55, 0.85, n)  # persistence of log turnover
    react_now = rng.uniform(3.0, 7.0, n)  # reaction to |today's return| / vol
    react_lag = rng.uniform(3.0, 6.0, n)  # delayed reaction to yesterday's move
    base_vol = rng.uniform(0.015, 0.06, n)  # daily return volatility
    supply = np.exp(rng.normal(18.0, 2.0, n))
    price0 = np.exp(rng.normal(0.0, 3.0, n))

    market = rng.normal(0.0, 0.02, steps)  # common market factor
    var = base_vol**2
    ret = np.zeros((steps, n))
    latent = np.empty((steps, n))
    prev_ret = np.zeros(n)
    prev_latent = level.copy()
    for t in range(steps):  # loop over time, vectorized over coins
        var = base_vol**2 * 0.1 + 0.15 * prev_ret**2 + 0.75 * var
        r = 0.8 * market[t] + np.sqrt(var) * rng.standard_t(5, n) * np.sqrt(3 / 5)
        shock = react_now * (np.abs(r) - 0.8 * base_vol) + react_lag * (
            np.abs(prev_ret) - 0.8 * base_vol
        )
        prev_latent = level + phi * (prev_latent - level) + 0.6 * shock + rng.normal(0, 0.12, n)
        latent[t] = prev_latent
        ret[t] = r
        prev_ret = r

    log_price = np.log(price0) + np.cumsum(ret, axis=0)
    price = np.exp(log_price)
    change_24h = np.expm1(ret)
    change_7d = np.full_like(price, np.nan)
    change_7d[7:] = price[7:] / price[:-7] - 1.0
    change_1h = ret / 24.0 + rng.normal(0.0, 0.004, (steps, n))
    turnover = np.exp(latent + rng.normal(0.0, 0.25, (steps, n)))
    mkt_cap = price * supply
    volume = turnover * mkt_cap

    sl = slice(burn, steps)
    dates = pd.date_range(first, periods=t_total, freq="D").strftime("%Y-%m-%d")
    frame = pd.DataFrame(
        {
            "coin": np.tile(np.array(names, dtype=object), t_total),
            "symbol": np.tile(np.array(symbols, dtype=object), t_total),
            "price": _round_sig(price[sl].ravel(), 8),
            "1h": np.round(change_1h[sl].ravel(), 4),
            "24h": np.round(change_24h[sl].ravel(), 4),
            "7d": np.round(change_7d[sl].ravel(), 4),
            "24h_volume": np.round(volume[sl].ravel(), 0),
            "mkt_cap": np.round(mkt_cap[sl].ravel(), 0),
            "date": np.repeat(np.asarray(dates, dtype=object), n),
        }
    )
    frame = frame.sort_values(["date", "mkt_cap"], ascending=[True, False], kind="stable")
    return frame.reset_index(drop=True)


def _round_sig(values: np.ndarray, digits: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(values))))
    scale = np.where(np.isfinite(scale), scale, 1.0)
    return np.round(values * scale) / scale


def write_demo_drops(
    out,
    *,
    coins: int = 60,
    snapshots: int = 60,
    seed: int = 7,
    start="2024-01-01",
) -> list[Path]:
    """Write :func:`generate_panel` as one CSV drop per snapshot.

    Files are named ``coin_gecko_<date>.csv`` like the real samples. Each is written to a
    ``.part`` file first and renamed, so a watcher never sees half a file.

    Parameters
    ----------
    out : str or Path
        Folder to write to (created if missing).
    coins, snapshots, seed, start
        As for :func:`generate_panel`.

    Returns
    -------
    list of Path
        The files written, in date order.

    Raises
    ------
    InputError
        For bad counts or start date, or when ``out`` exists and is not a folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    panel = generate_panel(coins=coins, snapshots=snapshots, seed=seed, start=start)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for date, rows in panel.groupby("date", sort=True):
        path = out / f"coin_gecko_{date}.csv"
        part = path.with_name(path.name + ".part")
        rows.to_csv(part, index=False)
        os.replace(part, path)
        written.append(path)
    return written


#: Dollar amounts are capped here: among 50,000 simulated coins a few random walks drift
#: past what an int64 holds, which no real market cap or volume approaches.
MAX_DOLLARS = 1e18


def _whole_dollars(values: np.ndarray) -> np.ndarray:
    return np.round(np.minimum(values, MAX_DOLLARS), 0).astype(np.int64)


def write_panel_csv(
    path,
    *,
    coins: int = 60,
    snapshots: int = 60,
    seed: int = 7,
    start="2024-01-01",
    dates_per_write: int = 20,
) -> int:
    """Write a panel like :func:`generate_panel` as ONE CSV file, one date at a time.

    The same model as :func:`generate_panel` (not the same draws: each step draws its own
    noise), but memory stays at a few arrays of ``coins`` values whatever ``snapshots``
    is, so benchmarks can write 50,000,000-row files. Rows are ordered by date, then
    market cap descending; written to ``<path>.part`` and renamed when complete.

    Parameters
    ----------
    path : str or Path
        The CSV file to write.
    coins, snapshots, seed, start
        As for :func:`generate_panel`.
    dates_per_write : int, default=20
        Dates formatted per ``to_csv`` call.

    Returns
    -------
    int
        Rows written (``coins * snapshots``).
    """
    _check_counts(coins, snapshots)
    first = pd.Timestamp(start).normalize()
    rng = np.random.default_rng(seed)
    n, burn = int(coins), 30
    names, symbols = _names(rng, n)
    names_arr, symbols_arr = np.array(names, dtype=object), np.array(symbols, dtype=object)
    level = rng.normal(np.log(0.06), 0.7, n)
    phi = rng.uniform(0.55, 0.85, n)
    react_now = rng.uniform(3.0, 7.0, n)
    react_lag = rng.uniform(3.0, 6.0, n)
    base_vol = rng.uniform(0.015, 0.06, n)
    supply = np.exp(rng.normal(18.0, 2.0, n))
    log_price = np.log(np.exp(rng.normal(0.0, 3.0, n)))
    var = base_vol**2
    prev_ret = np.zeros(n)
    latent = level.copy()
    past = [np.full(n, np.nan)] * 7  # prices of the last 7 steps, oldest first
    path = Path(path)
    part = path.with_name(path.name + ".part")
    pending: list[pd.DataFrame] = []
    with open(part, "w", encoding="utf-8", newline="") as out:
        out.write("coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\n")
        for t in range(snapshots + burn):
            var = base_vol**2 * 0.1 + 0.15 * prev_ret**2 + 0.75 * var
            r = 0.8 * rng.normal(0.0, 0.02) + np.sqrt(var) * rng.standard_t(5, n) * np.sqrt(3 / 5)
            shock = react_now * (np.abs(r) - 0.8 * base_vol) + react_lag * (
                np.abs(prev_ret) - 0.8 * base_vol
            )
            latent = level + phi * (latent - level) + 0.6 * shock + rng.normal(0, 0.12, n)
            prev_ret = r
            log_price = log_price + r
            price = np.exp(log_price)
            change_7d = price / past[0] - 1.0
            past = [*past[1:], price]
            change_1h = r / 24.0 + rng.normal(0.0, 0.004, n)
            mkt_cap = price * supply
            volume = np.exp(latent + rng.normal(0.0, 0.25, n)) * mkt_cap
            if t < burn:
                continue
            order = np.argsort(-np.round(mkt_cap, 0), kind="stable")
            date = (first + pd.Timedelta(days=t - burn)).strftime("%Y-%m-%d")
            frame = pd.DataFrame(
                {
                    "coin": names_arr,
                    "symbol": symbols_arr,
                    "price": _round_sig(price, 8),
                    "1h": np.round(change_1h, 4),
                    "24h": np.round(np.expm1(r), 4),
                    "7d": np.round(change_7d, 4),
                    "24h_volume": _whole_dollars(volume),
                    "mkt_cap": _whole_dollars(mkt_cap),
                    "date": date,
                }
            )
            pending.append(frame.iloc[order])
            if len(pending) >= dates_per_write:
                pd.concat(pending).to_csv(out, index=False, header=False, float_format="%.8g")
                pending = []
        if pending:
            pd.concat(pending).to_csv(out, index=False, header=False, float_format="%.8g")
    os.replace(part, path)
    return n * int(snapshots)
