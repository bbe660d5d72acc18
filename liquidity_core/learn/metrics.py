"""Holdout scores of a forecast against persistence, overall and per snapshot."""

from __future__ import annotations

import numpy as np
import pandas as pd


def r2(y_true, y_pred) -> float | None:
    """R² (None with fewer than two rows or a constant target)."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if len(y_true) < 2:
        return None
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot == 0.0:
        return None
    return 1.0 - float(np.sum((y_true - y_pred) ** 2)) / ss_tot


def mse(y_true, y_pred) -> float:
    return float(np.mean((np.asarray(y_true, float) - np.asarray(y_pred, float)) ** 2))


def skill(y_true, y_pred, baseline) -> float | None:
    """``1 - MSE(pred) / MSE(baseline)``; None when the baseline is exact."""
    base = mse(y_true, baseline)
    return None if base == 0 else 1.0 - mse(y_true, y_pred) / base


def holdout_scores(meta_hold: pd.DataFrame, y_hold, pred, persistence) -> dict:
    """Skill and R² of ``pred`` against ``persistence`` on the holdout, and per snapshot.

    Returns
    -------
    dict
        ``holdout_skill``, ``holdout_r2``, ``persistence_r2``, ``mse``,
        ``persistence_mse``, ``per_snapshot`` (ISO time -> ``{"n", "skill", "r2",
        "persistence_r2"}``), ``snapshots_beating_persistence`` (share of holdout
        snapshots where the model's MSE is below persistence's; None without snapshots),
        ``snapshot_skill_median`` and ``n_snapshots``.
    """
    y_hold = np.asarray(y_hold, dtype=float)
    pred = np.asarray(pred, dtype=float)
    persistence = np.asarray(persistence, dtype=float)
    per = {}
    beats = []
    for ts, idx in meta_hold.groupby("snapshot_ts").indices.items():
        m, p = mse(y_hold[idx], pred[idx]), mse(y_hold[idx], persistence[idx])
        per[pd.Timestamp(ts).isoformat()] = {
            "n": int(len(idx)),
            "skill": None if p == 0 else 1.0 - m / p,
            "r2": r2(y_hold[idx], pred[idx]),
            "persistence_r2": r2(y_hold[idx], persistence[idx]),
        }
        beats.append(m < p)
    skills = [v["skill"] for v in per.values() if v["skill"] is not None]
    return {
        "holdout_skill": skill(y_hold, pred, persistence),
        "holdout_r2": r2(y_hold, pred),
        "persistence_r2": r2(y_hold, persistence),
        "mse": mse(y_hold, pred),
        "persistence_mse": mse(y_hold, persistence),
        "per_snapshot": per,
        "snapshots_beating_persistence": float(np.mean(beats)) if beats else None,
        "snapshot_skill_median": float(np.median(skills)) if skills else float("nan"),
        "n_snapshots": len(per),
    }


def fmt(value) -> str:
    """A score as text for logs and reasons: four decimals, or "n/a"."""
    return "n/a" if value is None else f"{value:.4f}"
