"""``liquidity`` commands for models: train, models, rollback, predict.

Kept apart from ``data.py`` so the ingestion and model sides grow without touching each
other; importing this module registers the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

from liquidity_core.cli.commands import command
from liquidity_core.errors import InputError
from liquidity_core.settings import Settings

#: Training and rollback only change the champion; forecasting is a step of its own (the
#: forecast DAG runs it on the champion_model Asset).
FORECAST_HINT = "run `liquidity forecast` to store the new champion's forecasts"

# --- train -------------------------------------------------------------------------------


def _train_args(p):
    p.add_argument(
        "--no-promote",
        action="store_true",
        help="train and record the challenger, but never make it champion",
    )
    p.add_argument(
        "--grid",
        choices=["default", "fast"],
        default="default",
        help="forest parameter grid (fast: a tiny grid for demos and tests)",
    )
    p.add_argument(
        "--no-candidates",
        action="store_true",
        help="skip scoring the other algorithms (gradient boosting, SVR)",
    )


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _form_text(form: dict) -> str:
    """``form: HAR base + 0.75 x forest change (CV R² 0.6906; base alone 0.6781, ...)``."""
    weight, by_blend = form.get("blend_weight", 1.0), form.get("cv_r2_by_blend") or {}
    chosen = by_blend.get(f"{weight:g}")
    return (
        f"form: HAR base + {weight:g} x forest change (CV R² {_fmt(chosen)}; "
        f"base alone {_fmt(by_blend.get('0'))}, whole forest {_fmt(by_blend.get('1'))})"
    )


@command("train", "one full retraining cycle, as the nightly DAG runs it", arguments=_train_args)
def _train(args, settings: Settings):
    from liquidity_core.training.cycle import run_training_cycle

    result = run_training_cycle(
        settings,
        promote=not args.no_promote,
        grid=args.grid,
        candidates=not args.no_candidates,
    )
    result["text"] = (
        f"{result['version']}: {'PROMOTED' if result['promoted'] else 'not promoted'}\n"
        f"  holdout R² {_fmt(result['holdout_r2'])}, champion {_fmt(result['champion_holdout_r2'])}"
        f", persistence {_fmt(result['persistence_r2'])}, skill {_fmt(result['holdout_skill'])}"
        f", beats persistence at {_fmt(result.get('snapshots_beating_persistence'))} of "
        "holdout snapshots\n"
        f"  {_form_text(result.get('model_form') or {})}\n"
        f"  {result['reason']}"
    )
    if result["promoted"]:
        result["next"] = FORECAST_HINT
        result["text"] += f"\n  {FORECAST_HINT}"
    return result, 0


# --- models ------------------------------------------------------------------------------

_LIST_KEYS = (
    "version",
    "created_at",
    "status",
    "holdout_r2",
    "champion_version",
    "champion_holdout_r2",
    "persistence_r2",
    "recent_mean_r2",
    "holdout_skill",
    "snapshots_beating_persistence",
    "cv_r2_mean",
    "n_train_rows",
    "n_holdout_rows",
    "data_window_start",
    "data_window_end",
    "holdout_start",
    "holdout_end",
    "artifact_path",
    "artifact_sha256",
    "artifact_bytes",
    "train_seconds",
    "params",
    "candidates",
    "band_edges",
    "reason",
    "run_id",
)


@command("models", "the model history, newest first")
def _models(args, settings: Settings):
    from liquidity_core.registry.champion import list_versions, read_current_pointer
    from liquidity_core.store import db

    versions = list_versions(db.get_engine(settings.database_url))
    pointer = read_current_pointer(settings.model_dir)
    lines = [
        f"{v['version']}  {v['status']:<8}  R² {_fmt(v['holdout_r2'])}  "
        f"persistence {_fmt(v['persistence_r2'])}  {v['reason']}"
        for v in versions
    ] or ["no model has been trained yet (run `liquidity train`)"]
    return {
        "versions": [{k: v.get(k) for k in _LIST_KEYS} for v in versions],
        "current": pointer,
        "text": "\n".join(lines),
    }, 0


# --- rollback ----------------------------------------------------------------------------


def _rollback_args(p):
    p.add_argument("version", nargs="?", help="version to restore (default: the previous champion)")


@command("rollback", "make an earlier champion the champion again", arguments=_rollback_args)
def _rollback(args, settings: Settings):
    from liquidity_core.registry.champion import rollback

    result = rollback(settings, args.version)
    result["next"] = FORECAST_HINT
    result["text"] += f"\n  {FORECAST_HINT}"
    return result, 0


# --- predict -----------------------------------------------------------------------------


def _predict_args(p):
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--symbol", help="forecast a stored coin's next snapshot")
    which.add_argument(
        "--input",
        type=Path,
        help="JSON file: one row object or a list of them, in any input format's names",
    )


def _read_rows(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list):
        raise InputError(f"{path} must hold a JSON object or a list of objects")
    return rows


def _line(r: dict) -> str:
    who = r.get("symbol") or r.get("coin_name") or "row"
    return (
        f"{who}: turnover {r['predicted_turnover']:.4g} ({r['liquidity_level']}), "
        f"80% interval {r['interval']['low']:.4g} .. {r['interval']['high']:.4g}, "
        f"model {r['model_version']}"
    )


@command(
    "predict",
    "forecast turnover for a stored coin or for rows in a JSON file",
    arguments=_predict_args,
)
def _predict(args, settings: Settings):
    from liquidity_core.monitoring.forecasts import forecast_for_symbol
    from liquidity_core.serving.predict import predict_liquidity

    if args.symbol:
        result = forecast_for_symbol(args.symbol, settings=settings)  # stored or computed
        return dict(result, text=f"{_line(result)} ({result['source']})"), 0
    try:
        results = predict_liquidity(_read_rows(args.input), settings=settings)
    except InputError as exc:
        errors = getattr(exc, "errors", None)
        if errors:
            wrapped = InputError(f"{exc}; errors: {json.dumps(errors)}")
            wrapped.errors = errors  # the JSON error object lists them as well
            raise wrapped from None
        raise
    return {"predictions": results, "text": "\n".join(_line(r) for r in results)}, 0
