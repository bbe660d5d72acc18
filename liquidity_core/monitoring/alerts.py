"""The one hook every alert goes through: :func:`notify`.

The forecast DAG's monitor task fails when the champion's realized skill or interval
coverage crosses its threshold (:mod:`liquidity_core.monitoring.accuracy`); its
``on_failure_callback`` calls :func:`on_task_failure`, which calls :func:`notify` with the
reason. :func:`notify` always logs the message (logger ``liquidity.alerts``, level
ERROR), and when ``LIQUIDITY_ALERT_WEBHOOK`` is set it POSTs ``{"text": message}`` there:
the payload a Slack, Mattermost or Microsoft Teams incoming webhook accepts, and what a
mail gateway (or any HTTP-to-mail relay) can forward. Pointing alerts somewhere else is
one setting; replacing the transport is this one function.
"""

from __future__ import annotations

import json
import logging
import urllib.request

from liquidity_core.settings import Settings, load_settings

log = logging.getLogger("liquidity.alerts")

#: Seconds before a webhook call gives up.
TIMEOUT = 10.0


def notify(message: str, *, settings: Settings | None = None) -> bool:
    """Send an alert: log it, and POST it to the configured webhook if any.

    Parameters
    ----------
    message : str
        What happened, with the numbers.
    settings : Settings, default=None
        Default :func:`~liquidity_core.settings.load_settings`.

    Returns
    -------
    bool
        True when a webhook accepted the message; False when none is configured or the
        call failed (the failure is logged: an alert hook must not hide the alert).
    """
    settings = settings or load_settings()
    log.error("ALERT: %s", message)
    url = settings.alert_webhook
    if not url:
        return False
    body = json.dumps({"text": f"crypto-liquidity alert: {message}"}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return 200 <= response.status < 300
    except OSError as exc:
        log.error("alert webhook failed (%s); the alert is in this log only", exc)
        return False


def on_task_failure(context) -> None:
    """An Airflow ``on_failure_callback``: :func:`notify` with the task and its error."""
    ti = context.get("task_instance") or context.get("ti")
    where = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}"
    notify(f"{where} failed: {context.get('exception')}")
