"""Progress on long work, the global options anywhere on the line, and errors as JSON.

The commands run as processes: under a pseudo-terminal (Python's ``pty``) stderr gets the
live ``rich`` display; through a pipe it gets plain lines, rate-limited; ``--quiet``
leaves stderr empty; stdout stays one valid JSON object with ``--json`` either way.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest
from support.paths import REPO

from liquidity_core import progress
from liquidity_core.cli import ExitCode, main

STYLE = re.compile(r"\x1b\[[0-9;]*m")  # colours and bold
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")  # cursor moves


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITY_")}
    env.update(
        LIQUIDITY_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        LIQUIDITY_MODEL_DIR=str(tmp_path / "models"),
        LIQUIDITY_INGEST_DIR=str(tmp_path / "ingest"),
        LIQUIDITY_VAR_DIR=str(tmp_path / "var"),
        LIQUIDITY_N_JOBS="1",
        TERM="xterm-256color",
    )
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        env.pop(name, None)
    return env


@pytest.fixture
def drops(env, tmp_path):
    out = tmp_path / "drops"
    _pipe(env, "demo-data", "--out", str(out), "--coins", "30", "--snapshots", "24")
    _pipe(env, "db", "upgrade")
    return out


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "liquidity_core.cli", *args]


def _pipe(env, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        _command(*args), cwd=str(REPO), env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _pty(env, *args: str, timeout: float = 600) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal; (exit code, stdout, stderr without ANSI)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(
        _command(*args),
        cwd=str(REPO),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        out = proc.stdout.read().decode()
        code = proc.wait(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    text = b"".join(chunks).decode("utf-8", "replace")
    return code, out, CONTROL.sub("\n", STYLE.sub("", text))


def test_on_a_terminal_ingest_and_training_show_their_progress(env, drops):
    code, out, err = _pty(env, "ingest", str(drops), "--json")
    assert code == 0, err
    assert json.loads(out)["ok"] is True  # stdout is the JSON object, nothing else
    assert "rows/s" in err and "ETA" in err and "coin_gecko_2024-01-01.csv" in err, err

    code, out, err = _pty(env, "--json", "train", "--grid", "fast", "--no-candidates")
    assert code == 0, err
    assert json.loads(out)["promoted"] is True
    for stage in ("1/4: prepare data", "2/4: train challenger", "3/4: compare", "4/4: publish"):
        assert f"training {stage}" in err, err
    folds = re.findall(r"forest fold (\d+): r2 -?\d\.\d{4} on [\d,]+ rows in \d+\.\ds", err)
    assert len(folds) >= 3, err
    assert re.search(r"done training 1/4: prepare data in \d+\.\ds", err), err


def test_quiet_shows_no_progress_even_on_a_terminal(env, drops):
    code, out, err = _pty(env, "ingest", "--quiet", str(drops))
    assert code == 0 and "loaded" in out
    assert err.strip() == "", err


def test_through_a_pipe_progress_is_plain_rate_limited_lines(env, drops):
    _pipe(env, "ingest", str(drops))
    every = 0.5
    proc = _pipe(
        env, "train", "--grid", "fast", "--no-candidates", "--progress-every", str(every), "--json"
    )
    assert json.loads(proc.stdout)["promoted"] is True
    assert "\x1b[" not in proc.stderr  # no terminal codes in a log
    lines = proc.stderr.splitlines()
    stamps = []
    for line in lines:
        found = re.fullmatch(r"liquidity train: \[\s*(\d+\.\d)s\] (.+)", line)
        assert found, line
        stamps.append(float(found.group(1)))
    assert len(stamps) >= 2, proc.stderr
    assert any("fold" in line for line in lines), proc.stderr
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= every - 0.1, stamps  # the stamps are rounded to 0.1 s
    assert stamps[0] >= every - 0.1  # short work prints nothing

    quiet = _pipe(env, "train", "--grid", "fast", "--no-candidates", "-q", "--progress-every", "0")
    assert quiet.stderr == ""


def test_the_global_options_go_anywhere_and_errors_are_json(env, tmp_path, capsys, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    missing = str(tmp_path / "missing.csv")
    for argv in (["--json", "ingest", missing], ["ingest", missing, "--json"]):
        assert main(argv) == ExitCode.INPUT_REJECTED
        out, err = capsys.readouterr()
        error = json.loads(out)
        assert err == "" and error == {
            "error": "input_rejected",
            "message": f"no such file or folder: {missing}",
            "errors": [],
            "exit_code": 3,
        }
    assert main(["ingest", "--json"]) == ExitCode.USAGE == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["error"] == "usage" and "paths" in json.loads(out)["message"]
    assert main(["--json", "--no-such-option", "models"]) == 2
    assert json.loads(capsys.readouterr().out)["exit_code"] == 2
    assert main(["ingest"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "liquidity ingest: error:" in err and "usage:" in err


def test_version_prints_the_package_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"liquidity {version('crypto-liquidity')}"


def test_the_library_logs_progress_when_nobody_listens(caplog, monkeypatch):
    monkeypatch.setattr(progress, "_default", progress._LogDefault())  # a fresh rate limit
    with caplog.at_level(logging.INFO, logger="liquidity.progress"):
        with progress.task("a.csv", total=100) as task:
            assert task is not None
            progress.update(done=50, rows=10)
        progress.stage("training 1/4: prepare data")  # within LOG_EVERY: dropped
    assert [r.name for r in caplog.records] == ["liquidity.progress"]
    assert "a.csv, 10 rows" in caplog.records[0].getMessage()


def test_the_library_calls_do_nothing_when_nobody_listens(caplog):
    with caplog.at_level(logging.WARNING, logger="liquidity.progress"):
        with progress.task("a.csv", total=100) as task:
            assert task is None
            progress.update(done=50, rows=10)
            progress.step("fold 1")
    with progress.listen(progress.SILENT), progress.task("b.csv") as task:
        assert task is None
    assert caplog.records == []


def test_line_sink_rate_limit():
    lines: list[str] = []
    sink = progress.LineSink(lines.append, every=0.2)
    with progress.listen(sink):
        progress.stage("s")  # before the first interval: dropped
        time.sleep(0.25)
        progress.step("one")
        progress.step("two")  # within the interval: dropped
        time.sleep(0.25)
        with progress.task("f.csv", total=10):
            progress.update(done=5, rows=3)
    texts = [line.split("] ", 1)[1] for line in lines]
    assert len(texts) == 2 and texts[0] == "s: one", texts
    assert texts[1].startswith("f.csv, 3 rows, ") and "rows/s, 50%, ETA" in texts[1], texts
