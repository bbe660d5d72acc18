"""``serving.model_cache.ModelHolder`` on a real model store, with a controllable clock."""

from __future__ import annotations

import threading

import pytest
from support.webapp import copy_store, database, settings_for, trained_store

from liquidity_core.errors import ModelError
from liquidity_core.registry.champion import (
    load_verified_model,
    read_current_pointer,
    write_current_pointer,
)
from liquidity_core.serving.model_cache import ModelHolder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    with database("sqlite", root) as url:
        yield trained_store(root, url)


@pytest.fixture
def copy(store, tmp_path):
    """A private copy of the store (the tests rewrite its pointer)."""
    return copy_store(store, tmp_path)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    def __init__(self):
        self.calls = 0

    def __call__(self, settings):
        self.calls += 1
        return load_verified_model(settings)


def _break_pointer(settings) -> dict:
    good = read_current_pointer(settings.model_dir)
    write_current_pointer(
        settings.model_dir,
        version=good["version"],
        sha256="e" * 64,
        artifact_path=good["artifact_path"],
    )
    return good


def test_loads_the_champion_once(copy):
    loader, clock = CountingLoader(), Clock()
    holder = ModelHolder(copy, check_interval=2.0, loader=loader, clock=clock)
    model = holder.get()
    assert model.version == read_current_pointer(copy.model_dir)["version"]
    for _ in range(50):
        clock.now += 0.5
        assert holder.get() is model
    assert loader.calls == 1  # unchanged pointer: stat only, no reload
    status = holder.status()
    assert status.ready and status.model_version == model.version and status.reason is None


def test_checks_at_most_every_interval(copy):
    loader, clock = CountingLoader(), Clock()
    holder = ModelHolder(copy, check_interval=2.0, retry_interval=60.0, loader=loader, clock=clock)
    model = holder.get()
    _break_pointer(copy)
    clock.now += 1.9
    assert holder.get() is model and holder.status().ready  # not looked yet
    clock.now += 0.2
    assert holder.get() is model  # looked, failed, kept the old model
    status = holder.status()
    assert not status.ready and "sha256" in status.reason and model.version in status.reason
    assert loader.calls == 2
    for _ in range(10):  # the same broken pointer is not retried before retry_interval
        clock.now += 2.5
        holder.get()
    assert loader.calls == 2
    clock.now += 60
    holder.get()
    assert loader.calls == 3


def test_fixed_pointer_makes_it_ready_again(copy):
    holder = ModelHolder(copy, check_interval=0.0)
    model = holder.get()
    good = _break_pointer(copy)
    assert not holder.status().ready
    write_current_pointer(
        copy.model_dir, **{k: good[k] for k in ("version", "sha256", "artifact_path")}
    )
    status = holder.status()
    assert status.ready and status.reason is None
    assert holder.get() is model  # same version and sha256: not even reloaded


def test_no_model_published(tmp_path):
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    holder = ModelHolder(settings)
    with pytest.raises(ModelError, match="no model has been published"):
        holder.get()
    status = holder.status()
    assert not status.ready and status.model_version is None


def test_pointer_removed_keeps_serving(copy):
    holder = ModelHolder(copy, check_interval=0.0)
    model = holder.get()
    (copy.model_dir / "current.json").unlink()
    assert holder.get() is model
    assert "does not exist" in holder.status().reason


def test_threads_share_one_load(copy):
    loader = CountingLoader()
    holder = ModelHolder(copy, check_interval=0.0, loader=loader)
    got, errors = [], []

    def worker():
        try:
            for _ in range(50):
                got.append(holder.get().version)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 400 and len(set(got)) == 1
    assert loader.calls == 1
