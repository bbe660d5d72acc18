"""``liquidity report``: one self-contained HTML file with the EDA and the model report.

Plots are drawn with matplotlib (Agg) and embedded as inline SVG, so the file opens with
no network. Sections:

- Data: rows, coins and snapshots; missing values and ranges per column; distributions
  of volume, market cap and turnover; correlations; turnover over time for the largest
  coins.
- Models: holdout R² and skill over versions with the champion marked; predicted against
  actual on the champion's holdout; residuals by market-cap bucket; feature importances;
  how the other candidates compared in cross-validation.
"""

from __future__ import annotations

import html
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from liquidity_core.reporting.data_section import data_section
from liquidity_core.reporting.html import figure as _figure
from liquidity_core.reporting.html import svg as _svg
from liquidity_core.reporting.html import table as _table
from liquidity_core.reporting.model_plots import candidate_rows, candidates_figure, history_figure
from liquidity_core.reporting.totals import EDA_ROWS, stored_totals
from liquidity_core.settings import Settings
from liquidity_core.store import db

log = logging.getLogger(__name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crypto-liquidity report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem;
       padding: 0 1rem; color: #1d2733; }}
table {{ border-collapse: collapse; font-size: .85rem; margin: .5rem 0 1.5rem; }}
table {{ display: block; overflow-x: auto; max-width: 100%; }}
th, td {{ border: 1px solid #d5dbe3; padding: .25rem .5rem; text-align: right; }}
td:first-child, td:last-child {{ text-align: left; }}
th {{ background: #eef2f7; }}
svg {{ max-width: 100%; height: auto; }}
</style></head>
<body>
<h1>crypto-liquidity report</h1>
<p>Generated {generated} UTC from {database}.</p>
<h2>Data</h2>
{data}
<h2>Models</h2>
{models}
<script type="application/json" id="report-plots">{plots}</script>
</body></html>
"""


def report_path(settings: Settings) -> Path:
    """Where the nightly report is written and served from: ``<var_dir>/report/report.html``."""
    return settings.var_dir / "report" / "report.html"


def build_report(settings: Settings, *, out_dir: Path | None = None) -> Path:
    """Write ``report.html`` and return its path.

    Parameters
    ----------
    settings : Settings
    out_dir : Path, default=None
        Folder for the file; default the folder of :func:`report_path`.

    Returns
    -------
    Path
        The written HTML file (written to a temp name and renamed into place).
    """
    from liquidity_core.features.panel_stream import stored_chunks
    from liquidity_core.store.snapshots import load_snapshots

    engine = db.get_engine(settings.database_url)
    db.require_schema(engine)
    totals = stored_totals(engine)
    times = totals["times"]
    if len(times):
        # The newest snapshots, up to EDA_ROWS rows (at least one snapshot).
        newest = np.cumsum(totals["rows_at"][::-1]) <= EDA_ROWS
        since = times[-max(1, int(newest.sum()))]
        panel = pd.concat(stored_chunks(engine, since=since), ignore_index=True)
        latest = panel[panel["snapshot_ts"] == panel["snapshot_ts"].max()]
        largest = latest.nlargest(8, "market_cap")["coin_id"].tolist()
        history = load_snapshots(engine, coin_ids=largest)
    else:
        panel, history = load_snapshots(engine), None
    data_html, plots = data_section(panel, totals if len(times) else None, history)
    models_html, model_plots = model_section(settings, engine, times)
    target = report_path(settings) if out_dir is None else Path(out_dir) / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(
        PAGE.format(
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
            database=html.escape(db.describe_backend(settings.database_url)),
            data=data_html,
            models=models_html,
            plots=json.dumps(plots + model_plots),
        ),
        encoding="utf-8",
    )
    tmp.replace(target)
    return target


def _skill_by_snapshot_plot(by_snapshot: dict, metadata: dict) -> str:
    """Skill against persistence and R² at each holdout snapshot of a version."""
    frame = pd.DataFrame.from_dict(by_snapshot, orient="index")
    frame.index = pd.to_datetime(frame.index, utc=True)
    frame = frame.sort_index()
    fig, ax = _figure(9, 3.6)
    ax.plot(frame.index, frame["skill"].astype(float), "o-", ms=3, label="skill vs persistence")
    ax.plot(frame.index, frame["r2"].astype(float), "s:", ms=3, alpha=0.6, label="R²")
    ax.axhline(0, color="k", lw=1)
    share = metadata.get("snapshots_beating_persistence")
    title = "" if share is None else f"beats persistence at {share:.0%} of holdout snapshots"
    ax.set_title(title, fontsize=9)
    ax.set_ylabel("per snapshot")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _svg(fig)


def _champion_holdout(settings: Settings, engine, times: pd.DatetimeIndex):
    """Predictions of the verified champion on its own holdout rows, with the rows' market
    caps. Reads only the holdout's snapshots, the history their features need and the
    next snapshot (the target), a chunk at a time."""
    from liquidity_core.features.build import HISTORY_ROWS
    from liquidity_core.features.panel_stream import stored_chunks, windowed_features
    from liquidity_core.registry.champion import load_verified_model

    model = load_verified_model(settings)
    start = pd.Timestamp(model.metadata["holdout_start"])
    end = pd.Timestamp(model.metadata["holdout_end"])
    first = max(0, int(times.searchsorted(start)) - (HISTORY_ROWS - 1))
    after = int(times.searchsorted(end, side="right"))
    until = times[min(after, len(times) - 1)]
    X_parts, y_parts = [], []
    for X, y, meta in windowed_features(stored_chunks(engine, since=times[first], until=until)):
        stamps = meta["snapshot_ts"]
        rows = ((stamps >= start) & (stamps <= end)).to_numpy() & np.isfinite(y.to_numpy())
        X_parts.append(X.loc[rows].reindex(columns=model.feature_names))
        y_parts.append(y.to_numpy()[rows])
    X_hold = pd.concat(X_parts, ignore_index=True)
    pred = model.pipeline.predict(X_hold)
    market_cap = np.exp(X_hold["log_market_cap"].to_numpy(dtype=float))
    return model, np.concatenate(y_parts), pred, market_cap


def model_section(settings: Settings, engine, times: pd.DatetimeIndex) -> tuple[str, list[str]]:
    """HTML for the model part and the ids of the plots it holds."""
    from liquidity_core.registry.champion import list_versions
    from liquidity_core.reporting.model_history import render_history_table

    versions = list_versions(engine)
    if not versions:
        return "<p>No model has been trained yet.</p>", []
    history = pd.DataFrame(versions).sort_values("created_at")
    parts = [
        "<h3 id='model-history'>Holdout R² and skill over versions</h3>",
        _svg(history_figure(history)[0]),
        render_history_table(
            sorted(versions, key=lambda v: str(v["created_at"]), reverse=True),
            table_id=None,
            extra=True,
        ),
    ]
    plots = ["model-history"]
    from liquidity_core.reporting.accuracy_section import (
        accuracy_section,  # realized accuracy and drift
    )

    accuracy_html, accuracy_plots = accuracy_section(settings)
    parts.append(accuracy_html)
    plots += accuracy_plots
    if not (history["status"] == "champion").any():
        parts.append("<p>No model has been promoted yet.</p>")
        return "\n".join(parts), plots

    model, actual, pred, market_cap = _champion_holdout(settings, engine, times)
    parts.append(
        f"<p>Champion: <b>{html.escape(model.version)}</b> ({len(actual):,} holdout rows).</p>"
    )
    parts += [
        "<h3 id='predicted-vs-actual'>Predicted against actual, champion holdout</h3>",
        _predicted_vs_actual_plot(actual, pred),
    ]
    plots.append("predicted-vs-actual")
    parts += [
        "<h3 id='residuals-by-market-cap'>Residuals by market-cap bucket</h3>",
        _residuals_by_market_cap_plot(actual, pred, market_cap),
    ]
    plots.append("residuals-by-market-cap")

    by_snapshot = model.metadata.get("holdout_skill_by_snapshot")
    if by_snapshot:
        parts += [
            "<h3 id='skill-by-snapshot'>Skill and R² per holdout snapshot, champion</h3>",
            _skill_by_snapshot_plot(by_snapshot, model.metadata),
        ]
        plots.append("skill-by-snapshot")

    parts += ["<h3 id='feature-importances'>Feature importances</h3>", _importances_plot(model)]
    plots.append("feature-importances")
    parts += [
        "<h3 id='candidates'>How the other candidates compared</h3>",
        *_candidates(history),
    ]
    plots.append("candidates")
    return "\n".join(parts), plots


def _predicted_vs_actual_plot(actual: np.ndarray, pred: np.ndarray) -> str:
    """The champion's holdout predictions against the actual values, the diagonal dashed."""
    fig, ax = _figure(5, 5)
    ax.scatter(actual, pred, s=6, alpha=0.4)
    lo, hi = float(np.nanmin(actual)), float(np.nanmax(actual))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel("actual log turnover (next snapshot)")
    ax.set_ylabel("predicted log turnover")
    return _svg(fig)


def _residuals_by_market_cap_plot(actual: np.ndarray, pred: np.ndarray, market_cap) -> str:
    """Box plots of the holdout residuals in up to five market-cap quantile buckets."""
    residual = pred - actual
    buckets = pd.qcut(np.log10(market_cap), q=min(5, max(1, len(actual) // 20)), duplicates="drop")
    groups = pd.Series(residual).groupby(np.asarray(buckets), observed=True)
    fig, ax = _figure(8, 3.6)
    labels = [f"{iv.left:.1f}–{iv.right:.1f}" for iv in groups.groups]
    ax.boxplot([g.to_numpy() for _, g in groups], showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.axhline(0, color="k", lw=1)
    ax.set_xlabel("log10 market cap bucket")
    ax.set_ylabel("residual (predicted − actual)")
    return _svg(fig)


def _importances_plot(model) -> str:
    """The champion's impurity feature importances, smallest at the bottom."""
    forest = model.pipeline[-1]
    # The columns the forest saw: the steps before it may leave some out (DropColumns).
    names = model.pipeline[:-1].get_feature_names_out(model.feature_names)
    importances = pd.Series(forest.feature_importances_, index=names)
    importances = importances.sort_values()
    fig, ax = _figure(7, max(2.5, 0.25 * len(importances)))
    ax.barh(importances.index, importances.to_numpy(), color="#3b6ea5")
    ax.set_xlabel("impurity importance")
    return _svg(fig)


def _candidates(history: pd.DataFrame) -> list[str]:
    """The champion's cross-validation and holdout R² beside those of the other candidates:
    a chart (a failed candidate labelled, with no bars) and the same numbers as a table."""
    rows = candidate_rows(history[history["status"] == "champion"].iloc[-1])
    table = pd.DataFrame(
        {
            "candidate": r["candidate"],
            "cv R² mean": np.nan if r["cv_r2_mean"] is None else r["cv_r2_mean"],
            "holdout R²": np.nan if r["holdout_r2"] is None else r["holdout_r2"],
            "status": "failed" if r["error"] else "",
        }
        for r in rows
    )
    return [_svg(candidates_figure(rows)[0]), _table(table)]
