"""Airflow 3 plugin: a "Model history" view in the Airflow UI.

A small FastAPI app, mounted by Airflow's API server under ``/liquidity`` through the
plugin's ``fastapi_apps``, renders the ``model_versions`` history (read through
``liquidity_core.registry.champion.list_versions``) with the holdout R² chart; ``external_views``
adds a "Model history" entry to the navigation that opens it inside the UI.

``GET /liquidity/models`` is the page, ``GET /liquidity/models.json`` the same data as
JSON. Nothing runs at import time apart from building the (empty) app object.

Access: Airflow does not authenticate plugin apps (a mounted app inherits none of the core
API's dependencies), so this app checks every request itself with Airflow's own auth
manager: ``requires_access_view(AccessView.PLUGINS)`` from
``airflow.api_fastapi.core_api.security``, which reads the same JWT the UI uses (the
``_token`` cookie, or ``Authorization: Bearer``) and asks the configured auth manager.
Without a valid login the JSON answers 401 and the page redirects to the auth manager's
login, which comes back to the page; a user the auth manager refuses gets a 403. The
app's own OpenAPI and docs routes are off, so nothing is served before that check.
"""

from __future__ import annotations

import html

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from liquidity_core.errors import DatabaseError, LiquidityError

URL_PREFIX = "/liquidity"

app = FastAPI(
    title="crypto-liquidity model history",
    description="The model_versions history of the liquidity retraining DAG.",
    # Every route needs a caller that Airflow's auth manager lets see plugin views.
    dependencies=[Depends(requires_access_view(AccessView.PLUGINS))],
    # The schema and docs routes would not carry that dependency: leave them out.
    openapi_url=None,
    docs_url=None,
    redoc_url=None,
)


def _wants_json(request: Request) -> bool:
    return request.url.path.endswith(".json")


@app.exception_handler(HTTPException)
def _refused(request: Request, exc: HTTPException):
    """No login: the page sends the browser to Airflow's login; JSON gets the status."""
    if exc.status_code == 401 and not _wants_json(request):
        return RedirectResponse(
            get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303
        )
    if exc.status_code in (401, 403):
        code = "unauthenticated" if exc.status_code == 401 else "forbidden"
        message = (
            "log in to Airflow first (send its JWT as the _token cookie or a bearer token)"
            if exc.status_code == 401
            else "your Airflow login may not see this view"
        )
        if _wants_json(request):
            return JSONResponse(
                {"error": code, "message": message},
                status_code=exc.status_code,
                headers={"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None,
            )
        return HTMLResponse(
            f"<!doctype html><title>Model history</title><h1>Model history</h1>"
            f"<p>{html.escape(message)}</p>",
            status_code=exc.status_code,
        )
    return JSONResponse({"error": "http_error", "message": str(exc.detail)}, exc.status_code)


# Mounted inside Airflow's app, a handler for Exception itself answers and then re-raises
# (Starlette's ServerErrorMiddleware), which Airflow's middlewares turn into a 500: the
# errors the history can raise are handled by class instead.
@app.exception_handler(LiquidityError)
@app.exception_handler(SQLAlchemyError)
@app.exception_handler(OSError)
@app.exception_handler(Exception)
def _unavailable(request, exc: Exception):
    """Database or registry trouble: a 503 naming the problem, never a traceback."""
    if isinstance(exc, DatabaseError):
        message = f"{exc} (has `liquidity db upgrade` been run?)"
    elif isinstance(exc, LiquidityError):
        message = str(exc)
    else:
        message = (
            f"the liquidity database cannot answer ({type(exc).__name__}); "
            "has `liquidity db upgrade` been run?"
        )
    if request.url.path.endswith(".json"):
        return JSONResponse({"error": "unavailable", "message": message}, status_code=503)
    return HTMLResponse(
        f"<!doctype html><title>Model history</title><h1>Model history</h1>"
        f"<p>{html.escape(message)}</p>",
        status_code=503,
    )


def _history() -> list[dict]:
    """The model versions, each with its realized skill and coverage."""
    from liquidity_core.monitoring.accuracy import history_with_realized
    from liquidity_core.settings import load_settings

    return history_with_realized(load_settings())


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model history</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
th, td {{ padding: .4rem .6rem; border-bottom: 1px solid #d1d9e0; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.status-champion {{ background: #dafbe1; }}
svg {{ max-width: 760px; width: 100%; height: auto; }}
</style></head><body>
<h1>Model history</h1>
<p>{summary}</p>
{chart}
{table}
</body></html>
"""


@app.get("/models", response_class=HTMLResponse)
def model_history_page() -> HTMLResponse:
    """The history table and the R² chart."""
    from liquidity_core.reporting.charts import r2_history_svg
    from liquidity_core.reporting.model_history import render_history_table

    versions = _history()
    champion = next((v["version"] for v in versions if v.get("status") == "champion"), None)
    summary = (
        f"{len(versions)} training runs; champion <code>{html.escape(champion)}</code>."
        if champion
        else f"{len(versions)} training runs; no champion yet."
    )
    return HTMLResponse(
        _PAGE.format(
            summary=summary, chart=r2_history_svg(versions), table=render_history_table(versions)
        )
    )


@app.get("/models.json")
def model_history_json() -> JSONResponse:
    """The history as JSON (same rows as ``liquidity models --json``)."""
    from liquidity_core.reporting.jsonable import jsonable

    versions = _history()
    champion = next((v["version"] for v in versions if v.get("status") == "champion"), None)
    return JSONResponse(jsonable({"champion": champion, "versions": versions}))


class LiquidityPlugin(AirflowPlugin):
    """Adds "Model history" to the Airflow UI navigation."""

    name = "liquidity"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Liquidity model history"}]
    external_views = [
        {
            "name": "Model history",
            "href": f"{URL_PREFIX.lstrip('/')}/models",
            "destination": "nav",
            "category": "browse",
            "url_route": "liquidity-model-history",
        }
    ]
