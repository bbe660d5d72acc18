"""Matplotlib figures of the report's model part: the versions over time and the candidates.

Each ``*_figure`` function returns the open ``(fig, ax)`` so that a test can read its
axes; :func:`liquidity_core.reporting.html.svg` turns a figure into inline SVG.
"""

from __future__ import annotations

import math

import pandas as pd

from liquidity_core.reporting.html import figure as _figure

#: Half the time axis around a single training run (or runs made within one day).
SINGLE_RUN_HALF_SPAN = pd.Timedelta(days=1)

PUBLISHED = "random forest (published)"


def date_axis(ax) -> None:
    """Dates on ``ax``'s x axis with as many ticks as fit, labelled concisely."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def history_figure(history: pd.DataFrame):
    """Holdout R², persistence R² and skill of every version over time, champion ringed.

    Runs made within one day get an x range of :data:`SINGLE_RUN_HALF_SPAN` either side
    of them, so a single run is a point in a day's range, not years of empty axis.
    """
    fig, ax = _figure(9, 3.6)
    x = pd.to_datetime(history["created_at"], utc=True)
    ax.plot(x, history["holdout_r2"], "o-", label="challenger holdout R²")
    ax.plot(x, history["persistence_r2"], "s--", label="persistence R²", alpha=0.7)
    if "holdout_skill" in history:
        ax.plot(x, history["holdout_skill"], "^:", label="skill vs persistence", alpha=0.7)
    champ = history["status"] == "champion"
    ax.scatter(
        x[champ],
        history.loc[champ, "holdout_r2"],
        s=160,
        facecolors="none",
        edgecolors="#c0392b",
        linewidths=2,
        label="current champion",
        zorder=5,
    )
    if len(x) and x.max() - x.min() < SINGLE_RUN_HALF_SPAN:
        middle = x.min() + (x.max() - x.min()) / 2
        ax.set_xlim(middle - SINGLE_RUN_HALF_SPAN, middle + SINGLE_RUN_HALF_SPAN)
    date_axis(ax)
    ax.set_ylabel("holdout R² / skill")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, ax


def _finite(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def candidate_rows(champion: dict | pd.Series) -> list[dict]:
    """The published model and every other candidate of the champion's run:
    ``{"candidate", "cv_r2_mean", "holdout_r2", "error"}``; a candidate that raised, or
    has neither score, has an ``error`` (its message, or "no score")."""
    rows = [
        {
            "candidate": PUBLISHED,
            "cv_r2_mean": _finite(champion.get("cv_r2_mean")),
            "holdout_r2": _finite(champion.get("holdout_r2")),
            "error": None,
        }
    ]
    for name, c in (champion.get("candidates") or {}).items():
        c = c or {}
        cv, hold = _finite(c.get("cv_r2_mean")), _finite(c.get("holdout_r2"))
        error = c.get("error") or (None if cv is not None or hold is not None else "no score")
        rows.append({"candidate": str(name), "cv_r2_mean": cv, "holdout_r2": hold, "error": error})
    return rows


def candidates_figure(rows: list[dict]):
    """Each candidate's mean CV R² and holdout R² as a pair of horizontal bars (the
    published model at the top); a failed candidate has no bars and is labelled failed."""
    fig, ax = _figure(8, max(2.2, 0.55 * len(rows) + 1.0))
    height = 0.38
    scores = [r[k] for r in rows if not r["error"] for k in ("cv_r2_mean", "holdout_r2")]
    finite = [v for v in scores if v is not None]
    lo, hi = min(finite + [0.0]), max(finite + [0.0])
    span = (hi - lo) or 1.0
    for i, r in enumerate(rows):
        if r["error"]:
            message = str(r["error"]).splitlines()[0] if str(r["error"]).strip() else ""
            label = "failed" + (f": {message[:60]}" if message else "")
            x = lo + 0.02 * span
            ax.text(x, i, label, va="center", color="#c0392b", fontsize=9)
            continue
        for offset, key, colour in (
            (-height / 2, "cv_r2_mean", "#3b6ea5"),
            (height / 2, "holdout_r2", "#e08a2e"),
        ):
            value = r[key]
            if value is None:
                ax.text(0, i + offset, " no score", va="center", fontsize=8, color="#57606a")
                continue
            ax.barh(i + offset, value, height=height, color=colour)
            text = f" {value:.3f}" if value >= 0 else f"{value:.3f} "
            ax.text(
                value,
                i + offset,
                text,
                va="center",
                fontsize=8,
                ha="left" if value >= 0 else "right",
            )
    ax.set_yticks(range(len(rows)), [r["candidate"] for r in rows])
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=1)
    ax.set_xlim(lo - (0.2 if lo < 0 else 0.05) * span, hi + 0.2 * span)
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color="#3b6ea5", label="mean CV R²"),
            Patch(color="#e08a2e", label="holdout R²"),
        ],
        fontsize=8,
        loc="best",
    )
    ax.set_xlabel("R²")
    fig.tight_layout()
    return fig, ax
