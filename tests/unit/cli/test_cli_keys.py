"""``liquidity keys issue|revoke|list``: the keys file the web app reads, from the CLI.

The file handling lives in ``liquidity_core.access``; ``python -m webapp.apikeys`` is an
alias of the command.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.paths import REPO

from liquidity_core.access import KeyRing, hash_key
from liquidity_core.cli import ExitCode, main


@pytest.fixture(autouse=True)
def _no_keys_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("LIQUIDITY_API_KEYS", raising=False)
    monkeypatch.setenv("LIQUIDITY_VAR_DIR", str(tmp_path / "var"))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_issue_list_revoke(tmp_path, capsys):
    keys = tmp_path / "keys.txt"
    code, out, err = run(capsys, "keys", "issue", "--file", str(keys), "--name", "alice")
    assert code == 0, err
    key = out.strip()
    assert len(key) >= 40 and key not in keys.read_text()
    assert oct(keys.stat().st_mode)[-3:] == "600"
    assert KeyRing(str(keys)).knows(key)

    code, out, _ = run(capsys, "--json", "keys", "issue", "--file", str(keys), "--name", "bob")
    bob = json.loads(out)
    assert code == 0 and bob["name"] == "bob" and KeyRing(str(keys)).knows(bob["key"])

    code, out, _ = run(capsys, "keys", "list", "--file", str(keys), "--json")
    listed = json.loads(out)["keys"]
    assert listed == [
        {"hash": hash_key(key), "name": "alice"},
        {"hash": hash_key(bob["key"]), "name": "bob"},
    ]

    code, out, _ = run(capsys, "keys", "revoke", "--file", str(keys), "--name", "alice")
    assert code == 0 and "revoked 1" in out
    ring = KeyRing(str(keys))
    assert not ring.knows(key) and ring.knows(bob["key"])


def test_refusals_have_the_input_exit_code(tmp_path, capsys):
    keys = tmp_path / "keys.txt"
    assert run(capsys, "keys", "issue", "--file", str(keys), "--name", "a")[0] == 0
    code, out, err = run(capsys, "keys", "issue", "--file", str(keys), "--name", "a")
    assert code == ExitCode.INPUT_REJECTED and out == "" and "exists already" in err
    code, out, err = run(capsys, "keys", "revoke", "--file", str(keys), "--name", "nobody")
    assert code == ExitCode.INPUT_REJECTED and "no key named 'nobody'" in err
    code, out, err = run(capsys, "keys", "issue", "--file", str(keys), "--name", "a b")
    assert code == ExitCode.INPUT_REJECTED and "key name" in err
    code, out, err = run(capsys, "keys", "issue", "--file", str(keys))
    assert code == ExitCode.INPUT_REJECTED and "--name" in err
    code, out, err = run(capsys, "keys", "list")  # no file named anywhere
    assert code == ExitCode.INPUT_REJECTED and "--file" in err
    code, out, err = run(capsys, "keys", "grant", "--json")
    assert code == ExitCode.USAGE and json.loads(out)["error"] == "usage" and err == ""


def test_the_keys_file_defaults_to_the_setting(tmp_path, capsys, monkeypatch):
    keys = tmp_path / "keys.txt"
    monkeypatch.setenv("LIQUIDITY_API_KEYS", str(keys))
    code, out, _ = run(capsys, "keys", "issue", "--name", "carol")
    assert code == 0 and hash_key(out.strip()) in keys.read_text()


def test_the_webapp_module_is_an_alias(tmp_path):
    keys = tmp_path / "keys.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "webapp.apikeys", "issue", "--file", str(keys), "--name", "d"],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert KeyRing(str(keys)).knows(proc.stdout.strip())
