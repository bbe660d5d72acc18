"""What a coin's page shows: its forecast, its recent stored snapshots and a chart of both."""

from __future__ import annotations

from liquidity_core.monitoring.forecasts import coin_forecasts, forecast_for_symbol
from liquidity_core.reporting.forecast_charts import coin_forecast_svg
from liquidity_core.settings import Settings
from liquidity_core.store import db
from liquidity_core.store.snapshots import load_snapshots

#: Stored snapshots listed on the page, newest first.
SHOWN_ROWS = 200


def coin_page(symbol: str, *, settings: Settings, model=None) -> dict:
    """A coin's forecast of its next snapshot, its newest stored snapshots (at most
    :data:`SHOWN_ROWS`, newest first) and the chart of its snapshots and past forecasts.

    Raises
    ------
    NotFound
        When no stored coin has that symbol (from :func:`forecast_for_symbol`).
    """
    prediction = forecast_for_symbol(symbol, settings=settings, model=model)
    engine = db.get_engine(settings.database_url)
    history = load_snapshots(engine, coin_ids=[prediction["coin_id"]])
    rows = history.sort_values("snapshot_ts", ascending=False).head(SHOWN_ROWS)
    chart = coin_forecast_svg(history, coin_forecasts(settings, prediction["coin_id"]))
    return {"prediction": prediction, "history": rows.to_dict("records"), "chart": chart}
