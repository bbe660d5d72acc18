"""Prometheus metrics (``GET /metrics``) through ``prometheus_client``.

Series:

- ``liquidity_http_requests_total{route,method,status}`` and
  ``liquidity_http_request_duration_seconds{route,method,status}`` (a histogram): every
  request, by URL rule (``/coins/<symbol>``, never the raw path; ``<unmatched>`` when no
  rule matched), method and status. The time runs from the first ``before_request`` hook to
  the last ``after_request`` hook: the rate limit, the key check and the view.
- ``liquidity_rate_limit_refusals_total``: requests refused by the rate limit (429).
- ``liquidity_model_info{version}``, ``liquidity_model_age_seconds`` (since the served
  version was trained), ``liquidity_model_ready``: the model this worker serves, read at
  scrape time.
- ``liquidity_data_info{ingest_files,newest_snapshot}``, ``liquidity_data_ingest_files``,
  ``liquidity_data_newest_snapshot_timestamp_seconds``: the store's data version (ingest
  ledger rows, newest snapshot time), one small query per scrape;
  ``liquidity_database_up`` is 0 when that query fails.

Several gunicorn workers: each keeps its own counts, so under gunicorn the counts go
through ``prometheus_client``'s multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` names a
folder the workers write their counts into and a scrape (answered by any one worker)
adds them up. :mod:`webapp.gunicorn_conf` sets that folder up (``gunicorn -c
python:webapp.gunicorn_conf``); the variable has to be set before the workers import
``prometheus_client``. Without it the app counts in a registry of its own process (the
development server, tests, one worker).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Latency buckets, in seconds: a one-row prediction takes about a millisecond.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Methods kept as a label value; any other becomes "other" (bounded label values).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"
#: Headers a reverse proxy adds: a request carrying one did not come from this host.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")

#: This process's metric objects. In multiprocess mode they write to files in
#: ``PROMETHEUS_MULTIPROC_DIR`` and a scrape reads the files of every worker instead.
REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "liquidity_http_requests",
    "HTTP requests answered, by URL rule, method and status.",
    ("route", "method", "status"),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "liquidity_http_request_duration_seconds",
    "Time to answer a request inside the app, by URL rule, method and status.",
    ("route", "method", "status"),
    buckets=BUCKETS,
    registry=REGISTRY,
)
REFUSALS = Counter(
    "liquidity_rate_limit_refusals",
    "Requests refused by the API rate limit (429).",
    registry=REGISTRY,
)

#: (route, method, status) -> (counter child, histogram child): ``labels()`` takes a lock
#: and builds its key on every call; a dict lookup is cheaper per request.
_children: dict[tuple, tuple[Any, Any]] = {}
_START = "liquidity.metrics.start"


def multiprocess_dir() -> str | None:
    """The multiprocess folder when multiprocess mode is on (as prometheus_client decided
    at import), else None."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def count_refusal() -> None:
    """Count one request refused by the rate limit."""
    REFUSALS.inc()


def _start_timer() -> None:
    request.environ[_START] = time.perf_counter()


def _record(response):
    start = request.environ.get(_START)
    if start is None:  # a hook before ours answered; nothing to time
        return response
    rule = request.url_rule
    method = request.method
    key = (
        rule.rule if rule is not None else UNMATCHED,
        method if method in METHODS else "other",
        response.status_code,
    )
    children = _children.get(key)
    if children is None:
        labels = (key[0], key[1], str(key[2]))
        children = _children[key] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
    children[0].inc()
    children[1].observe(time.perf_counter() - start)
    return response


def _timestamp(value: Any) -> float | None:
    """Seconds since the epoch of a stored time (datetime or ISO text; naive is UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class ServingCollector:
    """The served model and the store's data version, read when a scrape happens."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        holder = self.app.extensions.get("liquidity_models")
        if holder is not None:
            yield from self._model(holder)
        yield from self._data(self.app.config["SETTINGS"])

    @staticmethod
    def _model(holder):
        status = holder.status()
        ready = GaugeMetricFamily(
            "liquidity_model_ready", "1 when a verified model is loaded and current, else 0."
        )
        ready.add_metric([], 1.0 if status.ready else 0.0)
        yield ready
        if status.model_version is None:
            return
        yield InfoMetricFamily(
            "liquidity_model", "The model version served.", value={"version": status.model_version}
        )
        try:
            model = holder.get()
        except Exception:  # noqa: BLE001 - a scrape reports what it can
            return
        created = _timestamp((getattr(model, "metadata", None) or {}).get("created_at"))
        if created is not None:
            age = GaugeMetricFamily(
                "liquidity_model_age_seconds", "Seconds since the served model was trained."
            )
            age.add_metric([], max(0.0, time.time() - created))
            yield age

    @staticmethod
    def _data(settings):
        from liquidity_core.store import db
        from liquidity_core.store.snapshots import DATA_VERSION

        up = GaugeMetricFamily(
            "liquidity_database_up", "1 when the data version query answered, else 0."
        )
        try:
            row = db.probe_row(settings.database_url, DATA_VERSION)
        except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
            log.debug("metrics: data version unavailable: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        files, newest = row if row is not None else (0, None)
        yield InfoMetricFamily(
            "liquidity_data",
            "The store's data version: ingest ledger rows and newest snapshot time.",
            value={"ingest_files": str(files or 0), "newest_snapshot": str(newest or "")},
        )
        count = GaugeMetricFamily("liquidity_data_ingest_files", "Rows of the ingest ledger.")
        count.add_metric([], float(files or 0))
        yield count
        stamp = _timestamp(newest)
        if stamp is not None:
            newest_gauge = GaugeMetricFamily(
                "liquidity_data_newest_snapshot_timestamp_seconds",
                "Newest stored snapshot time, in seconds since the epoch.",
            )
            newest_gauge.add_metric([], stamp)
            yield newest_gauge


def generate_latest(app: Flask) -> bytes:
    """The exposition text of every series, for this process or all the workers."""
    registry = CollectorRegistry(auto_describe=False)
    folder = multiprocess_dir()
    if folder:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=folder)
    else:
        registry.register(REGISTRY)
    registry.register(app.extensions["liquidity_metrics"])
    return _generate_latest(registry)


def _is_local() -> bool:
    """True for a request from this host that no reverse proxy forwarded."""
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
    return loopback and not any(h in request.headers for h in FORWARDING_HEADERS)


@bp.get("/metrics")
def metrics():
    """Prometheus metrics of the web app (text exposition format).

    Who may read them: when ``LIQUIDITY_API_KEYS`` is set, a request needs
    ``Authorization: Bearer <key>`` with a listed key, exactly as the API's POSTs do
    (401 without one, 403 for an unknown key). Without keys only this host may read
    them: the client address must be loopback and the request must not carry a
    forwarding header (``Forwarded``, ``X-Forwarded-For``, ``X-Real-IP``), so a reverse
    proxy on the same host does not publish them; anything else gets a 403. The series
    show traffic, the model and the data version, nothing secret, but they are an
    operator's view, not a public page.
    """
    from webapp.apikeys import check_bearer
    from webapp.errors import ApiError

    ring = current_app.extensions.get("liquidity_api_keys")
    if ring is not None:
        refused = check_bearer(ring)
        if refused is not None:
            return refused
    elif not _is_local():
        raise ApiError(
            403,
            "forbidden",
            "/metrics is served to this host only; set LIQUIDITY_API_KEYS to scrape it with a key",
        )
    return Response(generate_latest(current_app), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Time and count every request of ``app`` and serve ``/metrics``.

    Call it before the other extensions register their hooks, so that the timer starts
    first and the recording runs last.
    """
    app.extensions["liquidity_metrics"] = ServingCollector(app)
    app.before_request(_start_timer)
    app.after_request(_record)
    app.register_blueprint(bp)
    if multiprocess_dir() is None and "gunicorn" in sys.modules:
        log.warning(
            "%s is not set: /metrics shows this gunicorn worker's counts only; start "
            "gunicorn with -c python:webapp.gunicorn_conf",
            MULTIPROC_ENV,
        )
