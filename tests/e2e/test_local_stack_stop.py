"""`make run` stops promptly: Ctrl-C ends the whole stack in under 10 s, leaving nothing.

Starts the real stack (Airflow standalone + gunicorn), waits until both answer, then sends
SIGINT to the supervisor's process group (what a terminal's Ctrl-C does) and checks that
the supervisor exits within the budget and that no process it started is left.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
from support.net import free_port
from support.paths import REPO

pytestmark = pytest.mark.slow

#: Seconds from Ctrl-C until the supervisor and everything it started are gone.
STOP_BUDGET = 10.0


def _ours(var_dir) -> list[psutil.Process]:
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


def _web_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_ctrl_c_stops_everything_within_budget(tmp_path):
    var_dir = tmp_path / "var"
    web_port, airflow_port = free_port(), free_port()
    family: list[psutil.Process] = []
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
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and stack.poll() is None:
            if "Airflow UI:" in log.read_text(errors="replace") and _web_ok(web_port):
                break
            time.sleep(1)
        text = log.read_text(errors="replace")
        assert stack.poll() is None, f"the stack exited early:\n{text[-5000:]}"
        assert "Airflow UI:" in text, f"Airflow did not come up:\n{text[-5000:]}"
        assert _ours(var_dir), "the stack started no process"
        # gunicorn and Airflow's api-server rename themselves (setproctitle), which can hide
        # their environment: the descendants are also followed by pid.
        family = psutil.Process(stack.pid).children(recursive=True)
        assert len(family) >= 4, [p.cmdline() for p in family]

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
        for proc in {*family, *_ours(var_dir)}:  # clean up after a failure
            try:
                if proc.is_running():
                    proc.kill()
            except psutil.Error:
                pass
    text = log.read_text(errors="replace")
    assert took < STOP_BUDGET, f"stopping took {took:.1f} s:\n{text[-3000:]}"
    assert left == [], left
    assert ports_open == [], "a server still listens after the stack stopped"
    assert stack.returncode == 0, text[-3000:]
    print(f"stopped in {took:.1f} s")
