"""The ``LIQUIDITY_*`` environment of a test (or benchmark) store kept under one folder."""

from __future__ import annotations

from pathlib import Path

from liquidity_core.settings import Settings, load_settings


def liquidity_env(root: Path, database_url: str, **overrides) -> dict[str, str]:
    """``LIQUIDITY_*`` variables with every folder under ``root``, on ``database_url``.

    Files settle at once (``LIQUIDITY_FILE_SETTLE_SECONDS=0``) and the API is not
    rate-limited (``LIQUIDITY_API_RATE_LIMIT=off``: the load tests and the benchmarks send
    thousands of requests from one address; tests of the limit set one). Models are
    published as scored, not refitted on their holdout (``LIQUIDITY_REFIT=0``): tests
    retrain on the same synthetic snapshot times, which a refitted champion has seen, so
    every later comparison would be refused; the refit has tests of its own. ``overrides``
    are extra or replaced variables, given by their full name (``LIQUIDITY_N_JOBS=1``). A value of
    ``None`` drops the variable.
    """
    env = {
        "LIQUIDITY_DATABASE_URL": database_url,
        "LIQUIDITY_VAR_DIR": str(root / "var"),
        "LIQUIDITY_INGEST_DIR": str(root / "ingest"),
        "LIQUIDITY_MODEL_DIR": str(root / "models"),
        "LIQUIDITY_FILE_SETTLE_SECONDS": "0",
        "LIQUIDITY_API_RATE_LIMIT": "off",
        "LIQUIDITY_REFIT": "0",
    }
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def make_settings(root: Path, database_url: str, **overrides) -> Settings:
    """``Settings`` of :func:`liquidity_env`, with the ingest and model folders created."""
    settings = load_settings(liquidity_env(root, database_url, **overrides))
    settings.ingest_dir.mkdir(parents=True, exist_ok=True)
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    return settings
