"""The OpenAPI document: a valid OpenAPI 3 document, filled in from the app's settings,
describing exactly the app's JSON routes, and holding the server to its InputRow rules.

The fuzzing against a live server is tests/test_openapi_fuzz.py.
"""

from __future__ import annotations

import copy

import jsonschema_rs
import pytest
import schemathesis
from support.rows import ROW

from webapp import DEFAULTS
from webapp.api import documented_problems
from webapp.openapi import DOCUMENT_PATH, EXAMPLE_ROW, openapi_document

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _validate(document: dict) -> None:
    schemathesis.openapi.from_dict(document).validate()


def test_document_is_valid_openapi(app):
    # Checked against the official OpenAPI 3.0 meta-schema (the one schemathesis ships).
    _validate(openapi_document(app.config))


def test_validation_catches_a_broken_document(app):
    # The check above has teeth: a document the spec forbids is refused.
    broken = openapi_document(app.config)
    broken["paths"]["/api/v1/models"]["get"]["responses"]["200"].pop("description")
    with pytest.raises(jsonschema_rs.ValidationError):
        _validate(broken)
    broken = openapi_document(app.config)
    broken["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"] = "json"
    with pytest.raises(jsonschema_rs.ValidationError):
        _validate(broken)


def test_document_is_a_data_file_shipped_with_the_package():
    assert DOCUMENT_PATH.name == "openapi.yaml" and DOCUMENT_PATH.parent.name == "webapp"
    assert DOCUMENT_PATH.is_file()


def test_served_document_is_the_filled_in_data_file(client, app):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = resp.get_json()
    assert doc == openapi_document(app.config)
    assert doc["openapi"].startswith("3.0")  # what the vendored Swagger UI renders
    import liquidity_core

    assert doc["info"]["version"] == liquidity_core.__version__
    # Callers get a copy: changing one does not change the next.
    doc["info"]["title"] = "changed"
    assert openapi_document(app.config)["info"]["title"] != "changed"


def _json_routes(app) -> set[tuple[str, str]]:
    """(path in OpenAPI form, method) of every route whose answers are JSON or the docs."""
    out = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule in ("/healthz", "/readyz", "/metrics")):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        out.update((path, m) for m in rule.methods & METHODS)
    return out


def _documented(doc: dict) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


def test_every_route_is_documented_and_every_operation_exists(app):
    doc = openapi_document(app.config)
    routes, documented = _json_routes(app), _documented(doc)
    assert routes - documented == set(), "routes missing from the document"
    assert documented - routes == set(), "documented operations the app does not have"
    assert ("/api/v1/docs", "GET") in routes and ("/api/v1/predict", "POST") in routes


def test_limits_and_keys_come_from_the_settings(app, settings, make_app):
    doc = openapi_document(app.config)
    body = doc["paths"]["/api/v1/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["oneOf"][1]["maxItems"] == 5000
    assert str(DEFAULTS["MAX_CONTENT_LENGTH"]) in body["description"]
    assert doc["paths"]["/api/v1/predict"]["post"]["security"] == [{}, {"apiKey": []}]

    from webapp.apikeys import hash_key

    keyed = make_app(
        settings.with_overrides(api_keys=hash_key("k")), MAX_BATCH_ROWS=7, PRELOAD_MODEL=False
    )
    doc = keyed.test_client().get("/api/v1/openapi.json").get_json()
    post = doc["paths"]["/api/v1/predict"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/InputRow"},
        "minItems": 1,
        "maxItems": 7,
    }
    assert post["security"] == [{"apiKey": []}]
    _validate(doc)


def test_413_is_documented_where_the_server_sends_it(app):
    doc = openapi_document(app.config)
    assert "413" in doc["paths"]["/api/v1/predict"]["post"]["responses"]


def test_responses_are_spelled_out_in_place(app):
    # Readers of the JSON (and the tests) find each response's description, headers and
    # body schema under the operation itself, not behind a $ref.
    doc = openapi_document(app.config)
    for item in doc["paths"].values():
        for operation in item.values():
            for response in operation["responses"].values():
                assert "$ref" not in response and response["description"]
    limited = doc["paths"]["/api/v1/models"]["get"]["responses"]["429"]
    assert "Retry-After" in limited["headers"]


def test_example_row_is_the_documented_example_and_valid(app):
    doc = openapi_document(app.config)
    example = doc["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]["application/json"][
        "example"
    ]
    assert EXAMPLE_ROW == example == ROW
    assert documented_problems(copy.deepcopy(EXAMPLE_ROW)) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", ""),
        ("price", "   "),
        ("mkt_cap", "1e5"),
        ("24h_volume", "$1,000"),
        ("price", "-0"),
        ("1h", ""),
        ("1h", "-1.5"),
        ("7d", "5%"),
        ("coin", 0),
        ("coin", "x" * 201),
        ("symbol", "x" * 41),
        ("date", 20240101),
        ("date", "x" * 41),
    ],
)
def test_schema_and_server_refuse_the_same_values(field, value):
    """What the InputRow schema refuses the server refuses, naming the field."""
    doc = openapi_document(DEFAULTS)
    row = {**ROW, field: value}
    assert not _schema_accepts(doc, row)
    assert [p["field"] for p in documented_problems(row)] == [field]


@pytest.mark.parametrize(("field", "value"), [("price", -1.0), ("mkt_cap", -5), ("1h", -1.5)])
def test_schema_and_core_refuse_the_same_numbers(field, value):
    """Signs of numbers are refused by liquidity_core's row checks, by name."""
    from liquidity_core.inputs.records import normalize_records

    doc = openapi_document(DEFAULTS)
    row = {**ROW, field: value}
    assert not _schema_accepts(doc, row)
    assert documented_problems(row) == []
    _, errors = normalize_records([row], require_identity=False)
    assert [e["field"] for e in errors] == [field]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", "0"),
        ("price", "40859.46"),
        ("price", 0),
        ("mkt_cap", "999999999999999999"),
        ("1h", None),
        ("1h", "-1"),
        ("1h", "-0.5"),
        ("24h", -1),
        ("coin", None),
        ("coin", ""),
        ("symbol", "x" * 40),
        ("date", "2024-02-28"),
        ("date", ""),
    ],
)
def test_schema_and_server_accept_the_same_values(field, value):
    doc = openapi_document(DEFAULTS)
    row = {**ROW, field: value}
    assert _schema_accepts(doc, row)
    assert documented_problems(row) == []


def _schema_accepts(doc: dict, row: dict) -> bool:
    """The row against InputRow, as schemathesis reads OpenAPI 3.0 (nullable and all)."""
    from schemathesis.specs.openapi.converter import to_json_schema

    schemas = {
        name: to_json_schema(copy.deepcopy(s), nullable_keyword="nullable")
        for name, s in doc["components"]["schemas"].items()
    }
    root = {"$ref": "#/components/schemas/InputRow", "components": {"schemas": schemas}}
    return jsonschema_rs.validator_for(root).is_valid(row)


# --- the docs page (Swagger UI) ---------------------------------------------------------------


def test_docs_page_serves_swagger_ui_from_this_app(client):
    resp = client.get("/api/v1/docs")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "unsafe" not in csp
    page = resp.get_data(as_text=True)
    assert 'data-url="/api/v1/openapi.json"' in page
    assert "http://" not in page and "https://" not in page  # no CDN, nothing external
    assert "<script>" not in page and "style=" not in page  # nothing inline
    for asset, mimetype in (
        ("/swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        ("/swagger-ui/swagger-ui.css", "text/css"),
        ("/static/api-docs.js", "text/javascript"),
    ):
        assert f'src="{asset}"' in page or f'href="{asset}"' in page, asset
        with client.get(asset) as got:  # a file response: closed here
            assert got.status_code == 200 and got.mimetype == mimetype, asset
            assert len(got.data) > 100
    # Only the files the page uses; nothing else of the package, no path tricks.
    for path in ("/swagger-ui/index.html", "/swagger-ui/../openapi.py", "/swagger-ui/"):
        with client.get(path) as got:
            assert got.status_code == 404, path


def test_site_navigation_opens_the_docs_page(client):
    page = client.get("/").get_data(as_text=True)
    assert '<a href="/api/v1/docs">API</a>' in page
    docs = client.get("/api/v1/docs").get_data(as_text=True)
    assert '<a href="/api/v1/docs" aria-current="page">API</a>' in docs
