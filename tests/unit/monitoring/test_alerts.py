"""The one alert hook: logged always, POSTed to the configured webhook (a real HTTP server)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from support.env import make_settings
from support.net import free_port

from liquidity_core.monitoring import alerts


def _receiver():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Content-Type"], json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def test_notify_posts_the_message_to_the_webhook(tmp_path, caplog):
    server, received = _receiver()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        settings = make_settings(tmp_path, "sqlite://", LIQUIDITY_ALERT_WEBHOOK=url)
        with caplog.at_level(logging.ERROR, logger="liquidity.alerts"):
            assert alerts.notify("skill -0.2 < 0", settings=settings) is True
    finally:
        server.shutdown()
        server.server_close()
    assert received == [("application/json", {"text": "crypto-liquidity alert: skill -0.2 < 0"})]
    assert "ALERT: skill -0.2 < 0" in caplog.text


def test_notify_without_webhook_logs_and_a_dead_webhook_is_logged(tmp_path, caplog):
    quiet = make_settings(tmp_path, "sqlite://")
    dead = make_settings(
        tmp_path, "sqlite://", LIQUIDITY_ALERT_WEBHOOK=f"http://127.0.0.1:{free_port()}/x"
    )
    with caplog.at_level(logging.ERROR, logger="liquidity.alerts"):
        assert alerts.notify("coverage 55%", settings=quiet) is False
        assert alerts.notify("coverage 55%", settings=dead) is False
    assert caplog.text.count("ALERT: coverage 55%") == 2
    assert "alert webhook failed" in caplog.text


def test_on_task_failure_names_the_task_and_the_error(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("LIQUIDITY_ALERT_WEBHOOK", raising=False)

    class TI:
        dag_id, task_id = "liquidity_forecast", "monitor"

    with caplog.at_level(logging.ERROR, logger="liquidity.alerts"):
        alerts.on_task_failure({"task_instance": TI(), "exception": ValueError("skill -1")})
    assert "liquidity_forecast.monitor failed: skill -1" in caplog.text
