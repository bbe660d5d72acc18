"""The JSON API (``/api/v1``) and the health probes.

Each route checks the request's shape (JSON, size, row count, JSON types), then calls
one ``liquidity_core`` function. Row contents (required fields, numbers, signs,
finiteness) are checked by ``liquidity_core`` itself, whose field errors come back as
a 422 naming each field.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
)

from liquidity_core.reporting.jsonable import jsonable
from liquidity_core.store import db
from webapp.errors import ApiError, public_text
from webapp.openapi import openapi_document, schemas

bp = Blueprint("api", __name__)

#: Most keys one input row may have (the formats need about ten).
MAX_FIELDS_PER_ROW = 64
#: Magnitudes a number may have (or be 0). Real prices, volumes, caps and changes sit far
#: inside; beyond them the model's ratios and float32 inputs overflow.
MAGNITUDE_RANGE = (1e-30, 1e18)


def model_holder():
    """The app's :class:`~liquidity_core.serving.model_cache.ModelHolder`."""
    return current_app.extensions["liquidity_models"]


def app_settings():
    """The app's :class:`~liquidity_core.settings.Settings`."""
    return current_app.config["SETTINGS"]


def app_engine():
    """The shared engine for the app's database (read only)."""
    return db.get_engine(app_settings().database_url)


def _body_error(status: int, code: str, problem: str) -> ApiError:
    item = {"field": "body", "problem": problem}
    return ApiError(status, code, f"request body {problem}", [item])


def read_rows() -> tuple[list[dict], bool]:
    """The JSON body as a list of row objects, and whether it was a single object.

    Raises
    ------
    ApiError
        415 not JSON, 400 malformed JSON, 413 too many rows, 422 not objects or a
        value of a JSON type no input field has (boolean, object, array).
    """
    if not request.is_json:
        got = request.mimetype or "no Content-Type"
        raise _body_error(415, "unsupported_media_type", f"is {got}; send application/json")
    raw = request.get_data(cache=False)  # 413 beyond MAX_CONTENT_LENGTH
    try:
        data = json.loads(raw)
    except RecursionError:
        raise _body_error(400, "malformed_json", "is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, over-long integers
        raise _body_error(400, "malformed_json", f"is not valid JSON: {exc}") from None

    single = isinstance(data, dict)
    if single:
        rows = [data]
    elif isinstance(data, list):
        rows = data
    else:
        raise _body_error(
            422,
            "invalid_input",
            f"is a JSON {_json_type(data)}; send one object or a list of objects",
        )
    if not rows:
        raise _body_error(422, "invalid_input", "is an empty list; send at least one row")
    limit = int(current_app.config["MAX_BATCH_ROWS"])
    if len(rows) > limit:
        raise _body_error(
            413, "too_many_rows", f"has {len(rows)} rows; at most {limit} are accepted"
        )
    problems = []
    for i, row in enumerate(rows):
        where = {} if single else {"index": i}
        if not isinstance(row, dict):
            problems.append(
                {
                    **where,
                    "field": "body",
                    "problem": f"row is a JSON {_json_type(row)}; expected an object",
                }
            )
            continue
        if len(row) > MAX_FIELDS_PER_ROW:
            problems.append(
                {
                    **where,
                    "field": "body",
                    "problem": f"row has {len(row)} fields; at most {MAX_FIELDS_PER_ROW}",
                }
            )
            continue
        found = value_problems(row)
        named = {p["field"] for p in found}  # one problem per field
        found += [p for p in documented_problems(row) if p["field"] not in named]
        problems.extend({**where, **p} for p in found)
    if problems:
        raise ApiError(422, "invalid_input", _summary(problems), problems[:200])
    return rows, single


def value_problems(row: dict) -> list[dict]:
    """``{"field", "problem"}`` for values of the wrong JSON type or out of range."""
    problems = []
    for key, value in row.items():
        if isinstance(value, bool | dict | list):
            problems.append(
                {
                    "field": key,
                    "problem": f"is a JSON {_json_type(value)}; expected a number or a string",
                }
            )
        else:
            problem = _out_of_range(value)
            if problem:
                problems.append({"field": key, "problem": problem})
    return problems


@lru_cache(maxsize=1)
def _documented_fields() -> dict[str, tuple[str, Any]]:
    """The InputRow properties of the OpenAPI document as ``{field: (kind, detail)}``.

    ``kind`` is ``"number"`` (detail: the schema's text pattern and least value) or
    ``"text"`` (detail: the most characters).
    """
    parts = schemas()
    out: dict[str, tuple[str, Any]] = {}
    for field, prop in parts["InputRow"]["properties"].items():
        if "$ref" in prop:
            rule = parts[prop["$ref"].rsplit("/", 1)[1]]
            text = next(s for s in rule["oneOf"] if s["type"] == "string")
            least = min(s.get("minimum", 0) for s in rule["oneOf"] if s["type"] == "number")
            out[field] = ("number", (re.compile(text["pattern"]), least))
        else:
            out[field] = ("text", prop["maxLength"])
    return out


def documented_problems(row: dict) -> list[dict]:
    """``{"field", "problem"}`` for the row's documented fields that break the document's
    InputRow schema: numeric text not in plain decimal notation (an empty string
    included), text that is not a string or is too long.

    Missing fields, nulls in required fields and the signs and sizes of numbers are left
    to :func:`value_problems` and ``liquidity_core``, which refuse them by name.
    """
    problems = []
    for field, (kind, detail) in _documented_fields().items():
        value = row.get(field)
        if value is None or isinstance(value, bool | dict | list):
            continue  # absent, null, or refused by value_problems
        if kind == "text":
            if not isinstance(value, str):
                problem = f"is a JSON {_json_type(value)}; expected a string"
            elif len(value) > detail:
                problem = f"has {len(value)} characters; at most {detail}"
            else:
                continue
        else:
            pattern, least = detail
            if isinstance(value, str):
                if not value.strip():
                    problem = "is an empty string; expected a number"
                elif not pattern.search(value):  # as JSON Schema validators match
                    shown = value if len(value) <= 40 else value[:40] + "..."
                    problem = (
                        f"{shown!r} is not a number in plain decimal notation (e.g. 1234.5) "
                        f"between {least:g} and 1e18"
                    )
                else:
                    continue
            else:
                continue  # signs and sizes of numbers: value_problems and liquidity_core
        problems.append({"field": field, "problem": problem})
    return problems


def _out_of_range(value: Any) -> str | None:
    """Why a finite number (or numeric text) is outside :data:`MAGNITUDE_RANGE`."""
    if isinstance(value, str):
        text = value.strip().replace("$", "").replace(",", "").replace("%", "")
        try:  # any length: "9" * 200 is a number too (1e200)
            value = float(text)
        except ValueError:
            return None
    low, high = MAGNITUDE_RANGE
    if type(value) is float and (value == 0 or low <= abs(value) <= high):
        return None  # the common case, decided without the checks below
    if not isinstance(value, int | float):
        return None
    try:
        size = abs(float(value))
    except OverflowError:
        size = math.inf
    low, high = MAGNITUDE_RANGE
    if size == 0 or not math.isfinite(size) or low <= size <= high:
        return None  # non-finite values are refused, by name, by liquidity_core
    return f"{value!r} is out of range: a number must be 0 or between {low:g} and {high:g} in size"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return "number"


def _summary(problems: list[dict]) -> str:
    first = problems[0]
    where = f"row {first['index']}: " if "index" in first else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}{first['field']} {first['problem']}{more}"


def predict_rows(rows: list[dict], model) -> list[dict]:
    """``predict_liquidity`` on ``model``; overflowing inputs become a 422."""
    from liquidity_core.serving.predict import predict_liquidity

    try:
        return predict_liquidity(rows, settings=app_settings(), model=model)
    except ValueError as exc:
        # Safety net: finite inputs whose derived features overflow (a ratio of extreme
        # values) reach scikit-learn as infinities; that is bad input, not a crash.
        if "infinity or a value too large" not in str(exc):
            raise
        raise _body_error(
            422,
            "invalid_input",
            "has values whose derived features overflow; check the sizes of the numbers",
        ) from None


@bp.post("/api/v1/predict")
def predict():
    """Predict next-snapshot turnover for one row or a list of rows."""
    rows, single = read_rows()
    model = model_holder().get()  # this request finishes on this model object
    if single:
        try:
            results = predict_rows(rows, model)
        except Exception as exc:
            for item in getattr(exc, "errors", None) or []:
                if isinstance(item, dict):
                    item.pop("index", None)
            raise
        return jsonify(jsonable(results[0]))
    results = predict_rows(rows, model)
    return jsonify(jsonable({"predictions": results, "model_version": model.version}))


@bp.get("/api/v1/coins/<symbol>/prediction")
def coin_prediction(symbol: str):
    """Predicted next turnover of a stored coin, from its latest snapshot (stored or computed)."""
    from liquidity_core.monitoring.forecasts import forecast_for_symbol

    model = model_holder().get()
    return jsonify(jsonable(forecast_for_symbol(symbol, settings=app_settings(), model=model)))


@bp.get("/api/v1/monitoring")
def monitoring():
    """Realized accuracy and coverage of the stored forecasts, per model version."""
    from liquidity_core.monitoring.accuracy import monitor

    return jsonify(jsonable(monitor(app_settings())))


@bp.get("/api/v1/models")
def models():
    """The model history, newest first."""
    from liquidity_core.registry.champion import list_versions

    versions = list_versions(app_engine())
    champion = next((v["version"] for v in versions if v.get("status") == "champion"), None)
    return jsonify(jsonable({"champion": champion, "versions": versions}))


@bp.get("/api/v1/openapi.json")
def openapi():
    """The OpenAPI 3.0 description of this API."""
    return jsonify(openapi_document(current_app.config))


#: Swagger UI's files the docs page loads (from the swagger-ui-bundle package).
SWAGGER_UI_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js"})

#: The docs page runs Swagger UI's script and fetches the document; nothing else.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@bp.get("/api/v1/docs")
def docs():
    """The OpenAPI document in Swagger UI (assets served from this app, no CDN)."""
    response = current_app.make_response(render_template("docs.html"))
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


@bp.get("/swagger-ui/<path:filename>")
def swagger_ui(filename: str):
    """One of :data:`SWAGGER_UI_FILES`, from the installed swagger-ui-bundle package."""
    from swagger_ui_bundle import swagger_ui_path

    if filename not in SWAGGER_UI_FILES:
        abort(404)
    return send_from_directory(str(swagger_ui_path), filename, max_age=3600)


@bp.get("/healthz")
def healthz():
    """The process is up (no I/O)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when a verified model is loaded and the newest pointer loaded cleanly."""
    status = model_holder().status()
    body = {"status": "ready" if status.ready else "not_ready", **status.as_dict()}
    body["reason"] = public_text(body["reason"])
    return jsonify(body), 200 if status.ready else 503
