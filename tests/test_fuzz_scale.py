"""Fuzzing at scale: every input surface, seeded, with a budget (tests/fuzz_support.py).

``make fuzz`` runs this file with ``FUZZ_BUDGET=10000`` generated inputs per target
(``FUZZ_SEED`` picks them; the same seed gives the same inputs). A normal test run uses a
small budget, so CI fuzzes a little every time. Every target expects 0 crashes, 0 5xx
and nothing stored changed by a rejected input; the figures are printed (``-s``).
"""

from __future__ import annotations

import os

import pytest
from fuzz_support import fuzz_csv, fuzz_http, fuzz_web, report
from support.env import make_settings
from webapp_support import Gunicorn, database, trained_store

BUDGET = int(os.environ.get("FUZZ_BUDGET") or 150)
SEED = int(os.environ.get("FUZZ_SEED") or 16)
FIGURES: list = []


@pytest.fixture(scope="module", autouse=True)
def _print_figures():
    yield
    if FIGURES:
        print("\n" + report(FIGURES, seed=SEED, budget=BUDGET))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_web")
    with database("sqlite", root) as url:
        yield trained_store(root, url)


def _assert_clean(outcomes) -> None:
    FIGURES.extend(outcomes)
    failed = [o for o in outcomes if o.failure_count]
    assert not failed, report(outcomes, seed=SEED, budget=BUDGET)


def test_csv_files_through_ingest(tmp_path):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'fuzz.db'}")
    _assert_clean([fuzz_csv(settings, seed=SEED, budget=BUDGET)])


def test_api_bodies_forms_and_paths_in_process(store, make_app):
    _assert_clean(fuzz_web(make_app(store), store, seed=SEED, budget=BUDGET))


def test_api_bodies_and_paths_over_http(store, tmp_path):
    with Gunicorn(store, tmp_path / "gunicorn.log", workers=1, threads=2) as server:
        outcome = fuzz_http(server.url, store, seed=SEED, budget=max(50, BUDGET // 10))
    _assert_clean([outcome])
