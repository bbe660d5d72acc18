"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import liquidity_core

_NONNEG = {
    "oneOf": [
        {"type": "number", "minimum": 0, "maximum": 1e18},
        {"type": "string", "maxLength": 64},
    ],
}
_CHANGE = {
    "oneOf": [
        {"type": "number", "minimum": -1, "maximum": 1e18},
        {"type": "string", "maxLength": 64},
    ],
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {
        400: "Malformed JSON.",
        401: "The server requires API keys and the request sent none.",
        403: "The API key is unknown or revoked.",
        404: "Not found.",
        405: "Method not allowed.",
        413: "Body larger than the limit, or too many rows.",
        415: "Body is not application/json.",
        422: "Well-formed JSON with bad fields; each is named in `errors`.",
        429: "Over this client's rate limit; `Retry-After` says when to try again.",
        503: "No verified model is loaded, or the database cannot answer.",
    }
    out = {str(c): _json(_ref("Error"), text[c]) for c in codes}
    if 429 in codes:
        out["429"]["headers"] = {
            "Retry-After": {
                "description": "Seconds until the client's window admits a request again.",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return out


def _monitoring_schema() -> dict:
    """``GET /api/v1/monitoring`` (:func:`liquidity_core.monitoring.accuracy.monitor`)."""
    score = {"type": ["number", "null"]}
    keys = ("realized_r2", "persistence_r2", "skill", "mae", "coverage", "nominal_coverage")
    return {
        "type": "object",
        "required": ["champion", "versions", "alerts"],
        "properties": {
            "champion": {"type": ["string", "null"]},
            "alerts": {"type": "array", "items": {"type": "string"}},
            "drift": {"type": ["object", "null"]},
            "versions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["version", "snapshots", "rows", *keys],
                    "properties": {
                        "version": {"type": "string"},
                        "snapshots": {"type": "integer", "minimum": 0},
                        "rows": {"type": "integer", "minimum": 0},
                        **{k: score for k in (*keys, "mean_width")},
                        "per_snapshot": {"type": "array", "items": {"type": "object"}},
                        "recent": {"type": "object"},
                    },
                },
            },
        },
    }


#: The documented one-row request (CoinGecko field names); the web tests send it too.
EXAMPLE_ROW = {
    "coin": "Bitcoin",
    "symbol": "BTC",
    "price": 40859.46,
    "1h": 0.022,
    "24h": 0.03,
    "7d": 0.055,
    "24h_volume": 35390763321.0,
    "mkt_cap": 770991461396.0,
}


def openapi_document(config: Mapping[str, Any]) -> dict:
    """Build the document; limits come from the app config.

    Parameters
    ----------
    config : mapping
        The Flask config (``MAX_BATCH_ROWS``, ``MAX_CONTENT_LENGTH``).

    Returns
    -------
    dict
    """
    max_rows = int(config["MAX_BATCH_ROWS"])
    max_bytes = int(config["MAX_CONTENT_LENGTH"])
    row = {
        "type": "object",
        "description": (
            "One market snapshot of a coin, in the column names of any accepted input "
            "format (header names are case- and space-insensitive): CoinGecko "
            "(`price`, `1h`, `24h`, `7d` as fractions, `24h_volume`, `mkt_cap`), "
            "CoinMarketCap (`Price`, `% 1h`, `% 24h`, `% 7d` in percent, `Volume (24h)`, "
            "`Market Cap`; `$` and `,` allowed) or OHLCV history. Coin, symbol and date "
            "are optional. Extra numeric columns are kept. Numbers must be finite, and 0 "
            "or between 1e-30 and 1e18 in size; price, volume and market cap must not be "
            "negative."
        ),
        "properties": {
            "coin": {"type": "string", "maxLength": 200},
            "symbol": {"type": "string", "maxLength": 40},
            "price": _NONNEG,
            "1h": _CHANGE,
            "24h": _CHANGE,
            "7d": _CHANGE,
            "24h_volume": _NONNEG,
            "mkt_cap": _NONNEG,
            "date": {"type": "string", "maxLength": 40},
        },
        "required": ["price", "1h", "24h", "7d", "24h_volume", "mkt_cap"],
        "additionalProperties": {"type": ["number", "string", "null"]},
        "maxProperties": 64,
        "example": dict(EXAMPLE_ROW),
    }
    prediction = {
        "type": "object",
        "required": ["predicted_turnover", "liquidity_level", "interval", "model_version"],
        "properties": {
            "predicted_turnover": {
                "type": "number",
                "description": "Forecast of volume_24h / market_cap at the next snapshot.",
            },
            "liquidity_level": {"type": "string", "enum": ["Low", "Medium", "High"]},
            "interval": {
                "type": "object",
                "required": ["low", "high"],
                "properties": {"low": {"type": "number"}, "high": {"type": "number"}},
            },
            "model_version": {"type": "string"},
            "source": {
                "type": "string",
                "enum": ["stored", "computed"],
                "description": "stored: the forecast task's record for the served model and "
                "the newest snapshot; computed: made for this request.",
            },
        },
    }
    error = {
        "type": "object",
        "required": ["error", "message", "errors"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "problem"],
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "field": {"type": "string"},
                        "problem": {"type": "string"},
                    },
                },
            },
        },
    }
    version = {
        "type": "object",
        "required": ["version", "created_at", "status", "reason"],
        "properties": {
            "version": {"type": "string"},
            "created_at": {"type": "string"},
            "status": {"type": "string", "enum": ["champion", "retired", "rejected"]},
            "reason": {"type": "string"},
            "holdout_r2": {"type": ["number", "null"]},
            "champion_holdout_r2": {"type": ["number", "null"]},
            "persistence_r2": {"type": ["number", "null"]},
        },
    }
    status = {
        "type": "object",
        "required": ["status", "ready", "model_version", "reason"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not_ready"]},
            "ready": {"type": "boolean"},
            "model_version": {"type": ["string", "null"]},
            "loaded_at": {"type": ["string", "null"]},
            "reason": {"type": ["string", "null"]},
            "failed_at": {"type": ["string", "null"]},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crypto-liquidity API",
            "version": liquidity_core.__version__,
            "description": (
                "Forecast each coin's turnover (24h volume / market cap) at its next "
                "snapshot with the champion model. Errors are JSON naming each bad field."
            ),
        },
        "paths": {
            "/api/v1/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Predict from one row (object) or many (list)",
                    "requestBody": {
                        "required": True,
                        "description": f"At most {max_rows} rows and {max_bytes} bytes.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        _ref("InputRow"),
                                        {
                                            "type": "array",
                                            "items": _ref("InputRow"),
                                            "minItems": 1,
                                            "maxItems": max_rows,
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "oneOf": [
                                    _ref("Prediction"),
                                    {
                                        "type": "object",
                                        "required": ["predictions", "model_version"],
                                        "properties": {
                                            "predictions": {
                                                "type": "array",
                                                "items": _ref("Prediction"),
                                            },
                                            "model_version": {"type": "string"},
                                        },
                                    },
                                ]
                            },
                            "One prediction for an object; `predictions` for a list.",
                        ),
                        **_errors(400, 401, 403, 413, 415, 422, 429, 503),
                    },
                    # A key is needed only when the server sets LIQUIDITY_API_KEYS.
                    "security": [{}, {"apiKey": []}],
                }
            },
            "/api/v1/coins/{symbol}/prediction": {
                "get": {
                    "operationId": "coinPrediction",
                    "summary": "Predicted next turnover of a stored coin",
                    "parameters": [
                        {
                            "name": "symbol",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 40},
                        }
                    ],
                    "responses": {
                        "200": _json(
                            {"allOf": [_ref("Prediction")], "type": "object"},
                            "The prediction from the coin's latest stored snapshot.",
                        ),
                        **_errors(404, 422, 429, 503),
                    },
                }
            },
            "/api/v1/monitoring": {
                "get": {
                    "operationId": "monitoring",
                    "summary": "Realized accuracy and coverage of stored forecasts per version",
                    "responses": {
                        "200": _json(_monitoring_schema(), "Per model version, newest first."),
                        **_errors(503),
                    },
                }
            },
            "/api/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "summary": "The model history, one entry per training run",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["champion", "versions"],
                                "properties": {
                                    "champion": {"type": ["string", "null"]},
                                    "versions": {"type": "array", "items": _ref("ModelVersion")},
                                },
                            },
                            "Every model version, newest first.",
                        ),
                        **_errors(429, 503),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "The process is up",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"const": "ok"}},
                            },
                            "Up.",
                        )
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "A verified model is loaded",
                    "responses": {
                        "200": _json(_ref("ServingStatus"), "Ready."),
                        "503": _json(_ref("ServingStatus"), "Not ready; `reason` says why."),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": _json({"type": "object"}, "OpenAPI 3.1."),
                        **_errors(429),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "An API key issued by the operator (`python -m webapp.apikeys "
                        "issue`). Needed for POSTs only when the server sets "
                        "LIQUIDITY_API_KEYS; every /api/v1 route is rate-limited per client."
                    ),
                }
            },
            "schemas": {
                "InputRow": row,
                "Prediction": prediction,
                "Error": error,
                "ModelVersion": version,
                "ServingStatus": status,
            },
        },
    }
