"""The exit codes: one constant each, every project exception in the table, documented."""

from __future__ import annotations

import inspect
import re

from support.paths import REPO

from liquidity_core import errors
from liquidity_core.cli import EXIT_CODES, ExitCode, commands
from liquidity_core.cli.commands import exit_code_for


def test_each_outcome_has_its_own_code():
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0,
        "FAILURE": 1,
        "USAGE": 2,
        "INPUT_REJECTED": 3,
        "STORAGE_UNAVAILABLE": 4,
        "ALERT": 5,
        "CONFIG": 6,
    }


def test_every_project_exception_is_in_the_table():
    classes = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.LiquidityError)
    }
    assert classes == set(EXIT_CODES)
    assert exit_code_for(errors.DatabaseUnavailable("x")) == ExitCode.STORAGE_UNAVAILABLE
    assert exit_code_for(errors.InputError("x")) == ExitCode.INPUT_REJECTED
    assert exit_code_for(errors.MonitoringAlert("x")) == ExitCode.ALERT

    class Unlisted(errors.NotFound):
        pass

    assert exit_code_for(Unlisted("x")) == ExitCode.INPUT_REJECTED  # nearest listed class


def test_the_codes_are_documented_where_users_read():
    documented = dict(re.findall(r"^(\d)\s+([a-z_]+)\s", commands.__doc__, re.M))
    assert documented == {str(int(c)): c.name.lower() for c in ExitCode}
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for code in ExitCode:
        words = code.name.lower().replace("_", " ")
        assert re.search(rf"^\| {int(code)} \| {words}\b", readme, re.M), words
