"""`make run`'s script, for real: Airflow standalone + gunicorn on embedded defaults.

Waits for the demo drops to be ingested by the DAG, a retrain to promote the first model
and a prediction over HTTP; then sends SIGINT to the supervisor's process group (what a
terminal's Ctrl-C does) and checks that everything stops within :data:`STOP_BUDGET`
seconds, leaving no process and no listening port behind.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from support.net import free_port
from support.paths import REPO

pytestmark = pytest.mark.slow

#: Seconds from Ctrl-C until the supervisor and everything it started are gone.
STOP_BUDGET = 10.0


def _post_json(url: str, body) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except OSError:
        return 0, {}


def _ours(var_dir: Path) -> list[psutil.Process]:
    """Live (not zombie) processes whose environment names ``var_dir``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if env.get("LIQUIDITY_VAR_DIR") == str(var_dir):
            found.append(proc)
    return found


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_promotes_a_model_and_serves_it(tmp_path):
    var_dir = tmp_path / "var"
    web_port, airflow_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIQUIDITY_"))}
    env.update(
        LIQUIDITY_VAR_DIR=str(var_dir),
        LIQUIDITY_WEB_PORT=str(web_port),
        LIQUIDITY_AIRFLOW_PORT=str(airflow_port),
        LIQUIDITY_FILE_SETTLE_SECONDS="1",
    )
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:
        stack = subprocess.Popen(
            [sys.executable, "-m", "devtools.local_stack"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        answer = None
        while time.monotonic() < deadline and stack.poll() is None:
            if (var_dir / "models" / "current.json").exists():
                status, body = _post_json(
                    f"http://127.0.0.1:{web_port}/api/v1/predict",
                    {
                        "price": 2.5,
                        "1h": 0.01,
                        "24h": -0.02,
                        "7d": 0.05,
                        "24h_volume": 1.2e7,
                        "mkt_cap": 3.4e8,
                    },
                )
                if status == 200:
                    answer = body
                    break
            time.sleep(3)
        text = log.read_text(errors="replace")
        assert answer is not None, f"no prediction within the time limit:\n{text[-5000:]}"
        assert answer["predicted_turnover"] > 0
        assert answer["liquidity_level"] in {"Low", "Medium", "High"}
        assert "Airflow UI:" in text and "password" in text
        assert "triggered one liquidity_retrain run" in text
        processed = list((var_dir / "ingest" / "processed").glob("*.csv"))
        assert processed, "the ingest DAG moved the drops to processed/"
        # gunicorn and Airflow's api-server rename themselves (setproctitle), which can hide
        # their environment: the descendants are also followed by pid.
        family = psutil.Process(stack.pid).children(recursive=True)
        started = time.monotonic()
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=STOP_BUDGET)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - started
        left = []
        for proc in {*family, *_ours(var_dir)}:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append((proc.pid, proc.cmdline()))
            except psutil.Error:
                pass
        ports_open = [port for port in (web_port, airflow_port) if _listening(port)]
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()
        for proc in _ours(var_dir):  # clean up after a failure
            try:
                proc.kill()
            except psutil.Error:
                pass
    text = log.read_text(errors="replace")
    assert took < STOP_BUDGET, f"stopping took {took:.1f} s:\n{text[-3000:]}"
    assert left == [], left
    assert ports_open == [], "a server still listens after the stack stopped"
    assert stack.returncode == 0, text[-3000:]
