"""`make run`'s script, for real: Airflow standalone + gunicorn on embedded defaults.

Waits for the demo drops to be ingested by the DAG, a retrain to promote the first model
and a prediction over HTTP; then stops the stack with SIGINT and checks that no process
it started is left behind.
"""

import json
import os
import signal
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
    found = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if env.get("LIQUIDITY_VAR_DIR") == str(var_dir):
            found.append(proc)
    return found


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
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()
    time.sleep(1)
    left = _ours(var_dir)
    assert left == [], [p.cmdline() for p in left]
    assert stack.returncode == 0, log.read_text(errors="replace")[-3000:]
