"""A fixed sample of mutants of the decision core, each of which a targeted test must kill.

The full mutation run is ``make mutation`` (devtools/mutation.py, mutmut); this is its
cheap share of ``make test``. Each mutant below breaks a rule a user relies on; it is
applied to a copy of the project and only the tests that should catch it are run there.
The test fails when any mutant survives (its tests pass) or its source line is gone (then
the sample needs updating with the code).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.paths import REPO

pytestmark = pytest.mark.slow

COMPARE = "liquidity_core/training/compare.py"
CHALLENGER = "liquidity_core/training/challenger.py"
SPLITS = "liquidity_core/learn/splits.py"
ESTIMATORS = "liquidity_core/learn/estimators.py"
WINDOWS = "liquidity_core/features/windows.py"
INTERVALS = "liquidity_core/learn/intervals.py"
IDENTITY = "liquidity_core/store/identity.py"
LEDGER = "liquidity_core/ingest/ledger.py"

RULES = "tests/integration/training/test_decision_rules.py"
T_COMPARE = "tests/unit/training/test_decision.py"
T_SPLITS = "tests/unit/learn/test_splits_limits.py"
T_ESTIMATORS = "tests/unit/learn/test_estimators.py"
T_WINDOWS = "tests/unit/features/test_windows.py"
T_INTERVALS = "tests/unit/learn/test_interval_bounds.py"
T_IDENTITY = "tests/unit/store/test_identity_rules.py"
T_INGEST = "tests/unit/ingest/test_ingest.py"

#: (name, file, original text, mutated text, tests that must fail).
MUTANTS = [
    (
        "a later challenger need not beat persistence",
        COMPARE,
        "ok = beats_champion and beats_persistence",
        "ok = beats_champion",
        [f"{RULES}::test_a_later_challenger_that_does_not_beat_persistence_is_rejected[sqlite]"],
    ),
    (
        "the search's folds lose their gap",
        CHALLENGER,
        "PanelTimeSeriesSplit(settings.cv_splits, gap=GAP)",
        "PanelTimeSeriesSplit(settings.cv_splits, gap=0)",
        [f"{RULES}::test_the_search_folds_keep_the_gap[sqlite]"],
    ),
    (
        "equalling the champion plus the margin promotes",
        COMPARE,
        "ch > c_r2 + margin",
        "ch >= c_r2 + margin",
        [f"{T_COMPARE}::test_forecasting_exactly_as_the_champion_is_not_beating_it"],
    ),
    (
        "the first model need not beat persistence",
        COMPARE,
        "ok = r2 is not None and p_r2 is not None and r2 > p_r2",
        "ok = r2 is not None",
        [f"{T_COMPARE}::test_the_first_model_only_has_to_beat_persistence"],
    ),
    (
        "folds without a gap",
        SPLITS,
        "TimeSeriesSplit(n_splits=self.n_splits, gap=self.gap)",
        "TimeSeriesSplit(n_splits=self.n_splits, gap=0)",
        [T_SPLITS],
    ),
    (
        "tuning runs into the holdout",
        SPLITS,
        "has_target & (t < first_holdout - gap)",
        "has_target & (t < first_holdout)",
        [T_SPLITS],
    ),
    (
        "the anchor is not added back",
        ESTIMATORS,
        "return self.anchor_of(X) + self.blend * super().predict(X, **params)",
        "return self.blend * super().predict(X, **params)",
        [f"{T_ESTIMATORS}::test_without_a_base_no_change_forecasts_today"],
    ),
    (
        "the steps fit the level, not the change",
        ESTIMATORS,
        "super().fit(X, y - self.anchor_of(X), **params)",
        "super().fit(X, y, **params)",
        [f"{T_ESTIMATORS}::test_the_target_is_the_change_from_the_anchor"],
    ),
    (
        "a window one row too long",
        WINDOWS,
        'np.searchsorted(key, key[at] - (window - 1), side="left")',
        'np.searchsorted(key, key[at] - window, side="left")',
        [T_WINDOWS],
    ),
    (
        "ranks start at zero",
        WINDOWS,
        "out[idx] = first_equal - group_start + 1",
        "out[idx] = first_equal - group_start",
        [T_WINDOWS],
    ),
    (
        "the conformal quantile without its finite-sample correction",
        INTERVALS,
        "hi = min(n, math.ceil((n + 1) * (1.0 - tail)))",
        "hi = min(n, math.ceil(n * (1.0 - tail)))",
        [f"{T_INTERVALS}::test_few_residuals_give_their_extremes"],
    ),
    (
        "a tercile of exactly the minimum falls back",
        INTERVALS,
        "enough = counts[-1] >= MIN_BUCKET_ROWS",
        "enough = counts[-1] > MIN_BUCKET_ROWS",
        [f"{T_INTERVALS}::test_each_tercile_with_enough_rows_has_its_own_quantiles"],
    ),
    (
        "a market-cap jump of exactly the factor is no link",
        IDENTITY,
        'pairs["cap_ratio"] <= factor',
        'pairs["cap_ratio"] < factor',
        [T_IDENTITY],
    ),
    (
        "chains are not resolved to the root",
        IDENTITY,
        '"coin_id": [root(c) for c in pairs["coin_id"]]',
        '"coin_id": pairs["previous_id"].astype(str)',
        [T_IDENTITY],
    ),
    (
        "the same bytes load twice",
        LEDGER,
        "index_where=sa.text(\"status = 'loaded'\")",
        "index_where=sa.text(\"status = 'never'\")",
        [f"{T_INGEST}::test_samples_load_once_and_a_repeat_is_a_duplicate[sqlite]"],
    ),
]

COPY = ["liquidity_core", "tests", "devtools", "webapp", "plugins", "pyproject.toml"]


def project_copy(root: Path) -> Path:
    """A copy of the project at ``root/repo`` (the samples linked beside it, as here)."""
    repo = root / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=ignore)
        else:
            shutil.copy2(src, repo / name)
    shared = REPO.parent / "shared"
    if shared.exists():
        (root / "shared").symlink_to(shared)
    return repo


def run_mutant(repo: Path, mutant) -> tuple[str, str | None]:
    """Apply one mutant in ``repo``, run its tests, restore; (name, problem or None)."""
    name, path, original, mutated, tests = mutant
    source = repo / path
    text = source.read_text()
    if text.count(original) != 1:
        return name, f"{path} no longer has exactly one {original!r}: update the sample"
    source.write_text(text.replace(original, mutated))
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-x",
                "-q",
                "-p",
                "no:xdist",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=--strict-markers",
                *tests,
            ],  # fmt: skip
            cwd=repo,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        source.write_text(text)
    if proc.returncode == 1:
        return name, None  # a test failed: killed
    if proc.returncode == 0:
        return name, f"survived: {path}: {original!r} -> {mutated!r} ({' '.join(tests)})"
    return name, f"tests did not run (exit {proc.returncode}):\n{proc.stdout[-2000:]}"


def test_every_sampled_mutant_of_the_decision_core_is_killed(tmp_path):
    repos = [project_copy(tmp_path / f"w{i}") for i in range(2)]
    halves = [MUTANTS[0::2], MUTANTS[1::2]]

    def run_half(i):
        return [run_mutant(repos[i], m) for m in halves[i]]

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = [o for half in pool.map(run_half, range(2)) for o in half]
    assert len(outcomes) == len(MUTANTS)
    problems = [f"{name}: {problem}" for name, problem in outcomes if problem]
    assert not problems, "\n".join(problems)
