"""HTML pages: the prediction form, a coin's history, the model history, the report.

Each page view calls one ``liquidity_core`` function and renders its result (the form
checks its fields first, as the JSON API does); errors from ``liquidity_core`` are shown
on the page next to the field they name.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from liquidity_core.errors import InputError, ModelError
from webapp.api import app_settings, model_holder, predict_rows, value_problems
from webapp.errors import ApiError, public_text

bp = Blueprint("views", __name__)

#: The form's inputs: (name sent to predict_liquidity, label, hint, required).
#: Names are the CoinGecko snapshot columns, so field errors come back under them.
FORM_FIELDS = [
    ("price", "Price (USD)", "e.g. 40859.46", True),
    ("1h", "1h change", "fraction: 0.012 = +1.2 %", True),
    ("24h", "24h change", "fraction: -0.03 = -3 %", True),
    ("7d", "7d change", "fraction", True),
    ("24h_volume", "24h volume (USD)", "e.g. 35390763321", True),
    ("mkt_cap", "Market cap (USD)", "e.g. 770991461396", True),
    ("coin", "Coin name", "optional", False),
    ("symbol", "Symbol", "optional", False),
]


@bp.app_context_processor
def _served_model():
    def served_version():
        try:
            return model_holder().get().version
        except ModelError:
            return None

    return {"served_version": served_version}


@bp.route("/", methods=["GET", "POST"])
def index():
    """The form; on POST, the prediction or the field errors."""
    values = {name: "" for name, *_ in FORM_FIELDS}
    result, field_errors, message, status = None, {}, None, 200
    if request.method == "POST":
        for name, *_ in FORM_FIELDS:
            values[name] = request.form.get(name, "")[:200]
        row = {k: v.strip() for k, v in values.items() if v.strip()}
        try:
            problems = value_problems(row)
            if problems:
                raise ApiError(422, "invalid_input", "bad fields", problems)
            result = predict_rows([row], model_holder().get())[0]
        except (InputError, ApiError) as exc:
            status = 422
            message = "Please correct the marked fields."
            for item in getattr(exc, "errors", None) or []:
                field_errors.setdefault(item.get("field"), []).append(item.get("problem"))
            if not field_errors:
                message = str(exc)
        except ModelError as exc:
            status, message = 503, public_text(f"No model can serve predictions yet: {exc}")
    return (
        render_template(
            "index.html",
            fields=FORM_FIELDS,
            values=values,
            result=result,
            field_errors=field_errors,
            message=message,
        ),
        status,
    )


@bp.get("/coins")
def coin_lookup():
    """``/coins?symbol=BTC`` redirects to ``/coins/BTC``."""
    symbol = request.args.get("symbol", "").strip()
    if not symbol:
        return redirect(url_for("views.index"))
    return redirect(url_for("views.coin", symbol=symbol[:40]))


@bp.get("/coins/<symbol>")
def coin(symbol: str):
    """A coin's stored snapshots, its predicted next turnover and its past forecasts."""
    from liquidity_core.reporting.coin_page import coin_page

    page = coin_page(symbol, settings=app_settings(), model=model_holder().get())
    return render_template("coin.html", symbol=symbol, **page)


@bp.get("/models")
def models():
    """The model history table, the holdout R² chart, realized accuracy and drift."""
    from liquidity_core.reporting.models_page import models_page

    return render_template("models.html", **models_page(app_settings()))


@bp.get("/report")
def report():
    """The latest ``liquidity report`` output, once it exists."""
    from liquidity_core.reporting.report import report_path

    path = report_path(app_settings())
    if not path.is_file():
        abort(404, "No report yet: run `liquidity report` to write one.")
    response = Response(path.read_bytes(), mimetype="text/html")
    # The report carries matplotlib SVG with inline style attributes.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return response
