"""Property test of the live API against its own OpenAPI document (schemathesis).

gunicorn serves a trained model; ``schemathesis run`` reads ``/api/v1/openapi.json`` from
it and runs every phase (examples, coverage, fuzzing, and stateful where the document's
operations link up) with every check (``--checks all``): no 5xx; status codes, content
types, headers and bodies as documented; every request the document allows is answered
and every request it refuses gets a 4xx; and, against a server that requires API keys,
POSTs without a valid key are refused (``ignored_auth``). Nothing stored changes.

The budget is ``SCHEMATHESIS_MAX_EXAMPLES`` generated cases per operation and phase
(25 by default; ``make fuzz`` runs 1,000), the seed is fixed, so a run is repeatable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.webapp import (
    Gunicorn,
    database,
    http,
    model_dir_state,
    table_counts,
    trained_store,
)

from liquidity_core.store import db
from webapp import DEFAULTS
from webapp.apikeys import hash_key
from webapp.openapi import openapi_document

TESTS = Path(__file__).resolve().parents[2]
SEED = 20261207
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
API_KEY = "fuzz-key-0123456789abcdef"

# Expected answers of the data checks. 413 is documented on POST /api/v1/predict: more
# rows than the array's maxItems (or more bytes than the limit) is refused with it.
CONFIG = """\
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]

[dictionaries.stored-symbols]
values = [{symbols}]

# Half the coin lookups ask for a stored coin (a 200 to check), half for generated ones.
[parameters."path.symbol"]
dictionary = "stored-symbols"
probability = 0.5
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    with database("sqlite", root) as url:
        yield trained_store(root, url)


@pytest.fixture(scope="module")
def live(store, tmp_path_factory):
    log = tmp_path_factory.mktemp("fuzz-open") / "gunicorn.log"
    with Gunicorn(store, log) as g:
        g.stored_before = (table_counts(store), model_dir_state(store))
        yield g


@pytest.fixture(scope="module")
def config(store, tmp_path_factory):
    with db.get_engine(store.database_url).connect() as conn:
        symbols = conn.execute(
            sa.text("SELECT DISTINCT symbol FROM market_snapshots ORDER BY symbol LIMIT 3")
        ).scalars()
        quoted = ", ".join(f'"{s}"' for s in symbols)
    path = tmp_path_factory.mktemp("fuzz-config") / "schemathesis.toml"
    path.write_text(CONFIG.format(symbols=quoted))
    return path


def schemathesis_run(url: str, config, *extra: str) -> subprocess.CompletedProcess:
    """``schemathesis run`` with every check and phase, this file's seed and budget."""
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        url + "/api/v1/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--mode",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--no-color",
        *extra,
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "support.schemathesis_hooks"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), str(TESTS.parent)) if p)
    # Run in the config file's folder: schemathesis keeps a cache (.schemathesis/) there.
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env=env,
        cwd=Path(config).parent,
    )


def _report(run: subprocess.CompletedProcess) -> str:
    out = run.stdout + run.stderr
    lines = [line[:400] for line in out.splitlines()]  # bodies can be megabytes long
    return "\n".join(lines[-150:])


def test_live_document_is_the_built_one(live):
    status, served, _ = http("GET", live.url + "/api/v1/openapi.json")
    assert status == 200 and served == openapi_document({**DEFAULTS, "SETTINGS": live.settings})


def test_api_conforms_with_every_check(live, config):
    """Every generated request, valid or not, is answered as documented."""
    run = schemathesis_run(live.url, config)
    report = _report(run)
    assert run.returncode == 0, report
    assert (table_counts(live.settings), model_dir_state(live.settings)) == live.stored_before


def test_api_with_keys_conforms_with_every_check(store, config, tmp_path):
    """With LIQUIDITY_API_KEYS set the document requires a key on POSTs; schemathesis
    sends the valid key, and ``ignored_auth`` checks that none or a wrong one is refused."""
    env = {"LIQUIDITY_API_KEYS": f"{hash_key(API_KEY)},{hash_key('another')}"}
    before = (table_counts(store), model_dir_state(store))
    with Gunicorn(store, tmp_path / "gunicorn.log", extra_env=env) as g:
        served = http("GET", g.url + "/api/v1/openapi.json")[1]
        assert served["paths"]["/api/v1/predict"]["post"]["security"] == [{"apiKey": []}]
        run = schemathesis_run(g.url, config, "--header", f"Authorization: Bearer {API_KEY}")
    report = _report(run)
    assert run.returncode == 0, report
    assert (table_counts(store), model_dir_state(store)) == before


def test_fuzzing_changed_nothing(live):
    # Nasty bodies, whatever ran before: each is refused, and nothing stored changed since
    # the server started.
    for body in (b"[" * 50000, b'{"price": 1e999}', b"\xff\xfe", b"[]", b"{}"):
        status, _, _ = http("POST", live.url + "/api/v1/predict", body)
        assert 400 <= status < 500, (body[:20], status)
    assert (table_counts(live.settings), model_dir_state(live.settings)) == live.stored_before
