"""The report's "Realized accuracy and drift" part.

A table of every model version's realized numbers on its stored forecasts
(:func:`liquidity_core.monitoring.accuracy.monitor`), the alert if one fires, a plot of the
realized skill and coverage per target snapshot, and the feature drift (PSI) of the newest
measured snapshot, each feature flagged above its threshold
(:func:`liquidity_core.monitoring.drift.latest_drift`).
:func:`liquidity_core.reporting.report.model_section` inserts it after the model history.
"""

from __future__ import annotations

import html

import pandas as pd

from liquidity_core.settings import Settings


def accuracy_section(settings: Settings) -> tuple[str, list[str]]:
    """HTML of the section and the ids of the plots it holds."""
    from liquidity_core.monitoring.accuracy import monitor
    from liquidity_core.reporting.html import figure as _figure
    from liquidity_core.reporting.html import svg as _svg
    from liquidity_core.reporting.html import table as _table

    report = monitor(settings)
    parts = ["<h3 id='realized-accuracy'>Realized accuracy of stored forecasts</h3>"]
    plots = []
    if not report["versions"]:
        parts.append("<p>No stored forecast yet: the forecast task stores them.</p>")
    else:
        parts.append(
            "<p>Measured on snapshots no version learned from; skill is against persistence "
            "on the same rows.</p>"
        )
        parts += [f"<p><b>Alert:</b> {html.escape(a)}</p>" for a in report["alerts"]]
        keys = ["version", "status", "snapshots", "rows", "holdout_r2", "realized_r2"]
        keys += ["persistence_r2", "skill", "mae", "coverage", "nominal_coverage", "mean_width"]
        parts.append(
            _table(pd.DataFrame([{k: v.get(k) for k in keys} for v in report["versions"]]))
        )
    measured = [v for v in report["versions"] if v["per_snapshot"]]
    if report["versions"] and not measured:
        parts.append("<p>No stored forecast has met its outcome yet.</p>")
    if measured:
        fig, ax1 = _figure(9, 5.2)
        fig.clear()
        ax1, ax2 = fig.subplots(2, 1, sharex=True)
        for v in measured:
            per = pd.DataFrame(v["per_snapshot"])
            when = pd.to_datetime(per["target_ts"], utc=True)
            ax1.plot(when, per["skill"].astype(float), marker=".", label=v["version"])
            ax2.plot(when, per["coverage"].astype(float), marker=".", label=v["version"])
        ax1.axhline(0, color="k", lw=1)
        ax1.set_ylabel("skill vs persistence")
        nominal = measured[0]["nominal_coverage"] or 0.8
        ax2.axhspan(nominal - 0.1, nominal + 0.1, color="#dafbe1")
        ax2.set_ylabel("interval coverage")
        ax1.legend(fontsize=7)
        parts.append(_svg(fig))
        plots.append("realized-accuracy")
    parts.append("<h3 id='drift'>Feature drift of the newest snapshot</h3>")
    drift = report["drift"]
    if not drift:
        parts.append("<p>No drift measured yet.</p>")
    else:
        parts.append(
            f"<p>PSI against the training window of {html.escape(drift['model_version'])} at "
            f"{html.escape(drift['snapshot_ts'][:19])}; flagged above the threshold "
            + (
                "of each feature (from the PSI at the training window's own snapshots)."
                if drift.get("calibrated")
                else "0.25 (a reference without per-feature thresholds)."
            )
            + "</p>"
        )
        frame = pd.DataFrame(drift["features"])
        frame["flagged"] = frame["flagged"].map({True: "DRIFT", False: ""})
        parts.append(_table(frame, float_format="{:.3f}"))
    return "\n".join(parts), plots
