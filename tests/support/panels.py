"""Small synthetic panels, in the columns the trainer loads from the store."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_panel(coins=5, snapshots=12, seed=0, extras=True):
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=snapshots, freq="D", tz="UTC")
    df = pd.DataFrame(
        {
            "coin_id": np.tile([f"coin{i:03d}" for i in range(coins)], snapshots),
            "snapshot_ts": np.repeat(ts, coins),
        }
    )
    n = len(df)
    df["symbol"] = df["coin_id"].str.upper()
    df["coin_name"] = df["coin_id"].str.title()
    df["price"] = rng.lognormal(3, 1, n)
    df["volume_24h"] = rng.lognormal(15, 1, n)
    df["market_cap"] = rng.lognormal(18, 1, n)
    for c in ("change_1h", "change_24h", "change_7d"):
        df[c] = rng.normal(0, 0.05, n)
    if extras:
        df["x_sentiment"] = rng.normal(0, 1, n)
    return df


def make_learnable_panel(
    coins=40, snapshots=24, seed=0, *, noise=0.05, random_walk=False, sign=1.0
):
    """A panel whose next log turnover is a known function of today's features.

    learnable: lt[t+1] = -3 + 0.4 (lt[t] + 3) + 1.5 tanh(12 change_24h[t]) + small noise.
    random_walk: lt[t+1] = lt[t] + N(0, 0.3), everything else pure noise: nothing beats
    persistence.
    """
    rng = np.random.default_rng(seed)
    lt = np.empty((snapshots, coins))
    ch24 = rng.normal(0, 0.08, (snapshots, coins))
    lt[0] = rng.normal(-3, 0.8, coins)
    for t in range(1, snapshots):
        if random_walk:
            lt[t] = lt[t - 1] + rng.normal(0, 0.3, coins)
        else:
            lt[t] = (
                -3
                + 0.4 * (lt[t - 1] + 3)
                + sign * 1.5 * np.tanh(12 * ch24[t - 1])
                + rng.normal(0, noise, coins)
            )
    mcap = np.exp(rng.normal(20, 1.5, coins))[None, :] * np.exp(
        rng.normal(0, 0.02, (snapshots, coins))
    )
    ts = pd.date_range("2024-01-01", periods=snapshots, freq="D", tz="UTC")
    return pd.DataFrame(
        {
            "coin_id": np.tile([f"coin{i:03d}" for i in range(coins)], snapshots),
            "symbol": np.tile([f"C{i:03d}" for i in range(coins)], snapshots),
            "coin_name": np.tile([f"Coin {i}" for i in range(coins)], snapshots),
            "snapshot_ts": np.repeat(ts, coins),
            "price": np.exp(rng.normal(2, 2, snapshots * coins)),
            "change_1h": rng.normal(0, 0.01, snapshots * coins),
            "change_24h": ch24.ravel(),
            "change_7d": rng.normal(0, 0.1, snapshots * coins),
            "volume_24h": (np.exp(lt) * mcap).ravel(),
            "market_cap": mcap.ravel(),
        }
    )
