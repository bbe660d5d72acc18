"""The Data part of the report: counts, missing values and ranges per column, the
distributions of volume, market cap and turnover, their correlations, and turnover over
time for the largest coins (matplotlib plots as inline SVG)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from liquidity_core.reporting.html import figure as _figure
from liquidity_core.reporting.html import svg as _svg
from liquidity_core.reporting.html import table as _table
from liquidity_core.store.schema import MEASURES

NUMERIC = list(MEASURES)


def data_section(
    panel: pd.DataFrame, totals: dict | None = None, coin_history: pd.DataFrame | None = None
) -> tuple[str, list[str]]:
    """HTML for the EDA part and the ids of the plots it holds.

    ``panel`` gives the medians, distributions and correlations. ``totals``
    (:func:`.totals.stored_totals`) gives exact counts, missing values and ranges over
    every stored row when ``panel`` is only the newest snapshots; ``coin_history`` holds
    the whole history of the coins plotted over time (default: their rows in ``panel``).
    """
    plots: list[str] = []
    if panel.empty:
        return "<p>No market data has been ingested yet.</p>", plots
    turnover = panel["volume_24h"] / panel["market_cap"].where(panel["market_cap"] > 0)
    numeric = panel[[c for c in panel.columns if c in NUMERIC or c.startswith("x_")]].copy()
    numeric["turnover"] = turnover
    summary = _column_summary(numeric)
    parts = _counts(panel, totals, summary)
    parts += ["<h3>Missing values and ranges</h3>", _table(summary)]
    parts += ["<h3 id='distributions'>Distributions</h3>", _distributions_plot(panel, turnover)]
    plots.append("distributions")
    corr = _correlations_plot(panel, numeric, turnover)
    parts += ["<h3 id='correlations'>Correlations</h3>", corr]
    plots.append("correlations")
    over_time = _turnover_over_time_plot(panel, coin_history)
    parts += ["<h3 id='turnover-over-time'>Turnover over time, largest coins</h3>", over_time]
    plots.append("turnover-over-time")
    return "\n".join(parts), plots


def _column_summary(numeric: pd.DataFrame) -> pd.DataFrame:
    """Missing values, minimum, median and maximum of each column of ``numeric``."""
    return pd.DataFrame(
        {
            "column": numeric.columns,
            "missing": [int(numeric[c].isna().sum()) for c in numeric.columns],
            "missing %": [100 * numeric[c].isna().mean() for c in numeric.columns],
            "min": [numeric[c].min() for c in numeric.columns],
            "median": [numeric[c].median() for c in numeric.columns],
            "max": [numeric[c].max() for c in numeric.columns],
        }
    )


def _counts(panel: pd.DataFrame, totals: dict | None, summary: pd.DataFrame) -> list[str]:
    """Rows, coins, snapshots and time span. When ``panel`` holds only the newest of the
    stored rows, ``summary``'s counts, missing values and ranges are replaced (in place)
    by the ones over every stored row, and a note says which figures cover what."""
    t = totals or {
        "n_rows": len(panel),
        "n_coins": panel["coin_id"].nunique(),
        "n_snapshots": panel["snapshot_ts"].nunique(),
        "first": panel["snapshot_ts"].min(),
        "last": panel["snapshot_ts"].max(),
    }
    parts = [
        f"<p>{t['n_rows']:,} rows, {t['n_coins']:,} coins, {t['n_snapshots']:,} snapshots "
        f"from {t['first']:%Y-%m-%d %H:%M} to {t['last']:%Y-%m-%d %H:%M} UTC.</p>",
    ]
    if totals is not None and len(panel) < totals["n_rows"]:
        for i, col in enumerate(summary["column"]):
            if col in totals["columns"]:
                present, low, high = totals["columns"][col]
                missing = totals["n_rows"] - present
                summary.loc[i, ["missing", "missing %", "min", "max"]] = [
                    missing,
                    100 * missing / totals["n_rows"],
                    low,
                    high,
                ]
        parts.append(
            f"<p>Counts, missing values and ranges cover every row; medians, distributions "
            f"and correlations the newest {panel['snapshot_ts'].nunique():,} snapshots "
            f"({len(panel):,} rows).</p>"
        )
    return parts


def _distributions_plot(panel: pd.DataFrame, turnover: pd.Series) -> str:
    """Histograms of log10 volume, market cap and turnover (positive values)."""
    fig, axes = _figure(10, 3.2)
    fig.clf()
    for i, (name, values) in enumerate(
        [
            ("24h volume", panel["volume_24h"]),
            ("market cap", panel["market_cap"]),
            ("turnover", turnover),
        ]
    ):
        ax = fig.add_subplot(1, 3, i + 1)
        positive = values[(values > 0) & np.isfinite(values)]
        ax.hist(np.log10(positive), bins=40, color="#3b6ea5")
        ax.set_title(f"log10 {name}")
    return _svg(fig)


def _correlations_plot(panel: pd.DataFrame, numeric: pd.DataFrame, turnover: pd.Series) -> str:
    """The correlation matrix of the numeric columns, volume, market cap and turnover
    taken as log10."""
    corr = (
        numeric.assign(
            log_volume=np.log10(panel["volume_24h"].where(panel["volume_24h"] > 0)),
            log_market_cap=np.log10(panel["market_cap"].where(panel["market_cap"] > 0)),
            log_turnover=np.log10(turnover.where(turnover > 0)),
        )
        .drop(columns=["volume_24h", "market_cap", "turnover"])
        .corr()
    )
    fig, ax = _figure(6, 5)
    im = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), corr.columns, rotation=60, ha="right")
    ax.set_yticks(range(len(corr)), corr.columns)
    fig.colorbar(im, ax=ax)
    return _svg(fig)


def _turnover_over_time_plot(panel: pd.DataFrame, coin_history: pd.DataFrame | None) -> str:
    return _svg(turnover_over_time_figure(panel, coin_history)[0])


def turnover_over_time_figure(panel: pd.DataFrame, coin_history: pd.DataFrame | None = None):
    """Turnover over time of the eight largest coins at the newest snapshot: the open
    ``(fig, ax)``, its dates as many as fit, labelled concisely and never overprinted."""
    from liquidity_core.reporting.model_plots import date_axis

    latest = panel[panel["snapshot_ts"] == panel["snapshot_ts"].max()]
    largest = latest.nlargest(8, "market_cap")["coin_id"]
    fig, ax = _figure(9, 3.8)
    history = panel if coin_history is None else coin_history
    for coin in largest:
        rows = history[history["coin_id"] == coin].sort_values("snapshot_ts")
        ax.plot(rows["snapshot_ts"], rows["volume_24h"] / rows["market_cap"], label=coin)
    ax.set_yscale("log")
    date_axis(ax)
    ax.set_ylabel("turnover (volume / market cap)")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    return fig, ax
