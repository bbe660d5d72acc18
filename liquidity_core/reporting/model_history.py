"""The model history table, rendered once for every page that shows it.

The web app's ``/models`` page, the Airflow plugin's "Model history" view and the report
all show the ``model_versions`` history (:func:`liquidity_core.registry.champion.list_versions`).
They render it through :func:`render_history_table`, from the one Jinja template
``liquidity_core/templates/model_history.html``, so the three cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cache

from markupsafe import Markup

R2_COLUMNS = ("holdout_r2", "champion_holdout_r2", "persistence_r2")
"""The R² columns every history table shows, after the version and the time."""

EXTRA_COLUMNS = (
    ("recent_mean_r2", "R² (recent mean)"),
    ("holdout_skill", "Skill"),
    ("snapshots_beating_persistence", "Snapshots beating persistence"),
)
"""Columns shown with ``extra=True`` (the report), when a row has a value for them."""

REALIZED_COLUMNS = (
    ("realized_skill", "Realized skill"),
    ("realized_coverage", "Realized coverage"),
)
"""Realized accuracy of the version's stored forecasts, shown whenever a row
has it (see :func:`liquidity_core.monitoring.accuracy.with_realized`)."""


def _r2(value) -> str:
    """A score with 3 decimals, or an en dash when missing or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(number) else f"{number:.3f}"


def _trained(value) -> str:
    """``2024-01-02 03:04:05`` from an ISO time (string or datetime)."""
    return "" if value is None else str(value)[:19].replace("T", " ")


def _form(params) -> str:
    """The model form CV chose: ``base + 0.75 x forest`` (and the CV R² it won by)."""
    params = params if isinstance(params, dict) else {}
    weight = params.get("blend_weight")
    if weight is None:
        return "forest"
    by_blend = params.get("cv_r2_by_blend") or {}
    chosen, base = by_blend.get(f"{weight:g}"), by_blend.get("0")
    gain = f" (CV R² +{chosen - base:.3f} over the base)" if None not in (chosen, base) else ""
    return f"HAR base + {weight:g} × forest{gain}" if weight else "HAR base alone"


@cache
def _template():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("liquidity_core", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["r2"] = _r2
    env.filters["trained"] = _trained
    env.filters["form"] = _form
    return env.get_template("model_history.html")


def render_history_table(
    rows: Sequence[Mapping], *, table_id: str | None = "model-history", extra: bool = False
) -> Markup:
    """HTML ``<table>`` of model versions, one row per version in the order given.

    Parameters
    ----------
    rows : sequence of mapping
        ``model_versions`` rows as :func:`~liquidity_core.registry.champion.list_versions` returns
        them (``version``, ``created_at``, ``status``, the R² columns, ``reason``).
    table_id : str or None, default="model-history"
        The table's ``id`` attribute; None for none (the report's heading has that id).
    extra : bool, default=False
        Also show :data:`EXTRA_COLUMNS` that any row has a value for.

    Returns
    -------
    markupsafe.Markup
        The table, every value escaped; with no rows, one row saying so.
    """
    extra_columns = [
        (key, label)
        for key, label in EXTRA_COLUMNS
        if extra and any(row.get(key) is not None for row in rows)
    ] + [(k, label) for k, label in REALIZED_COLUMNS if any(r.get(k) is not None for r in rows)]
    html = _template().render(
        rows=rows,
        table_id=table_id,
        r2_columns=[*R2_COLUMNS, *(key for key, _ in extra_columns)],
        extra_columns=extra_columns,
    )
    return Markup(html)
