"""The liquidity web app: a prediction form, the model history and a JSON API.

``create_app()`` builds the Flask app from :func:`liquidity_core.settings.load_settings`;
gunicorn serves it as ``gunicorn 'webapp:create_app()'``. The app only reads: models from
``MODEL_DIR`` (hot-reloaded by :class:`liquidity_core.serving.model_cache.ModelHolder`) and the
database through ``liquidity_core``; it never writes either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from liquidity_core.settings import Settings, load_settings

#: Defaults; each can be overridden with an environment variable
#: ``LIQUIDITY_WEB_<NAME>`` (JSON-parsed, e.g. ``LIQUIDITY_WEB_MAX_BATCH_ROWS=2000``) or by
#: ``test_config``.
DEFAULTS: dict[str, Any] = {
    # Largest request body accepted, in bytes; bigger bodies get a 413 JSON error.
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    # Most rows one POST /api/v1/predict may carry.
    "MAX_BATCH_ROWS": 5000,
    # Seconds between two cheap stat() checks of MODEL_DIR/current.json.
    "MODEL_CHECK_INTERVAL": 2.0,
    # Seconds a checked data version of the store is trusted before it is asked again (one
    # database round trip): a new ingest is served at most this long after it commits.
    "DATA_CHECK_INTERVAL": 1.0,
    # Seconds before a pointer that failed to load is tried again unchanged.
    "MODEL_RETRY_INTERVAL": 30.0,
    # Import the model libraries and load the champion when the app is created, so a
    # worker's first request does not pay for them (a failure is kept for /readyz).
    "PRELOAD_MODEL": True,
    # Form fields are short; no page needs more than this many of them.
    "MAX_FORM_PARTS": 100,
    "JSON_SORT_KEYS": False,
    # Seconds over which rate-limit refusals of one client are summed into one log line.
    "RATE_LIMIT_LOG_WINDOW": 60.0,
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the web app.

    Parameters
    ----------
    test_config : mapping, default=None
        Config values that override the defaults and the environment. The key
        ``SETTINGS`` may hold a :class:`~liquidity_core.settings.Settings` to use
        instead of ``load_settings()``.

    Returns
    -------
    flask.Flask
    """
    from liquidity_core.serving import recent
    from liquidity_core.serving.model_cache import ModelHolder
    from webapp import api, apikeys, errors, limits, logs, metrics, views

    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env(prefix="LIQUIDITY_WEB")
    if test_config is not None:
        app.config.from_mapping(test_config)
    settings: Settings = app.config.get("SETTINGS") or load_settings()
    app.config["SETTINGS"] = settings
    app.config["MAX_FORM_MEMORY_SIZE"] = app.config["MAX_CONTENT_LENGTH"]
    app.json.sort_keys = bool(app.config["JSON_SORT_KEYS"])
    if not app.debug:  # before the model loads, so that its messages are formatted too
        logs.install(logging.INFO)  # a no-op when logging is configured already

    holder = ModelHolder(
        settings,
        check_interval=float(app.config["MODEL_CHECK_INTERVAL"]),
        retry_interval=float(app.config["MODEL_RETRY_INTERVAL"]),
    )
    app.extensions["liquidity_models"] = holder
    recent.set_check_interval(float(app.config["DATA_CHECK_INTERVAL"]))
    if app.config["PRELOAD_MODEL"]:
        import liquidity_core.serving.predict  # noqa: F401 - pandas and scikit-learn, once

        holder.refresh()

    metrics.init_app(app)  # first: its timer starts before, and records after, the others
    errors.init_app(app)
    limits.init_app(app)  # before the key check: failed attempts count too
    apikeys.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    return app
