"""Property test of the live API against its own OpenAPI document (schemathesis).

gunicorn serves a trained model; schemathesis reads ``/api/v1/openapi.json`` from it and
sends generated requests, valid and invalid, to every operation. No response may be a
5xx, and every response must match the document (status, content type, schema).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from support.webapp import (
    Gunicorn,
    database,
    http,
    model_dir_state,
    table_counts,
    trained_store,
)

from webapp import DEFAULTS
from webapp.openapi import openapi_document

EXAMPLES = 40  # per operation; the whole file stays well under a minute


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    with database("sqlite", root) as url:
        store = trained_store(root, url)
        with Gunicorn(store, root / "gunicorn.log") as g:
            g.stored_before = (table_counts(store), model_dir_state(store))
            yield g


# The document the app serves with its default limits (built in-process, no I/O);
# test_live_document_is_the_one_fuzzed checks the live server serves exactly this.
DOCUMENT = openapi_document(DEFAULTS)
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_live_document_is_the_one_fuzzed(live):
    status, served, _ = http("GET", live.url + "/api/v1/openapi.json")
    assert status == 200 and served == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms(case, live):
    """Every generated request conforms, and changes nothing stored."""
    case.call_and_validate(
        base_url=live.url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=30,
    )
    assert (table_counts(live.settings), model_dir_state(live.settings)) == live.stored_before


def test_fuzzing_changed_nothing(live):
    # Nasty bodies, whatever ran before: each is refused, and nothing stored changed since
    # the server started (test_api_conforms checks the same after each generated case).
    for body in (b"[" * 50000, b'{"price": 1e999}', b"\xff\xfe", b"[]", b"{}"):
        status, _, _ = http("POST", live.url + "/api/v1/predict", body)
        assert 400 <= status < 500, (body[:20], status)
    assert (table_counts(live.settings), model_dir_state(live.settings)) == live.stored_before
