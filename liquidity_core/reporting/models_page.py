"""What the model page shows: the history with realized accuracy, its charts, the drift."""

from __future__ import annotations

from liquidity_core.monitoring.accuracy import monitor, with_realized
from liquidity_core.registry.champion import list_versions
from liquidity_core.reporting.charts import r2_history_svg
from liquidity_core.reporting.drift_chart import drift_svg
from liquidity_core.reporting.forecast_charts import realized_svg
from liquidity_core.reporting.model_history import render_history_table
from liquidity_core.settings import Settings
from liquidity_core.store import db


def models_page(settings: Settings) -> dict:
    """The model history table (with each version's realized accuracy), the holdout R²
    chart, the realized-accuracy chart, the drift chart and the monitoring report."""
    versions = list_versions(db.get_engine(settings.database_url))
    report = monitor(settings)
    return {
        "table": render_history_table(with_realized(versions, report)),
        "chart": r2_history_svg(versions),
        "realized": realized_svg(report),
        "drift_chart": drift_svg(report.get("drift")),
        "monitoring": report,
    }
