import json
import os

import pytest
import sqlalchemy as sa
from support.panels import make_learnable_panel

from liquidity_core.errors import InputError, ModelError, NotFound
from liquidity_core.registry import champion as registry
from liquidity_core.training.cycle import run_training_cycle

FAST = {"grid": "fast", "candidates": False}


@pytest.fixture
def two_champions(settings, engine):
    """Two promoted versions: the second replaced the first."""
    first = run_training_cycle(settings, panel=make_learnable_panel(coins=30), **FAST)
    changed = make_learnable_panel(coins=30, seed=1, sign=-1.0)
    second = run_training_cycle(settings, panel=changed, **FAST)
    assert first["promoted"] and second["promoted"]
    return first["version"], second["version"]


def test_load_verified_model_follows_the_pointer(settings, two_champions):
    _first, second = two_champions
    loaded = registry.load_verified_model(settings)
    assert loaded.version == second
    assert loaded.sha256 == registry.read_current_pointer(settings.model_dir)["sha256"]
    assert loaded.feature_names[0] == "log_price"
    assert len(loaded.band_edges) == 2
    assert hasattr(loaded.pipeline, "predict")


def test_tampered_artifact_is_refused_before_unpickling(settings, two_champions):
    first, _ = two_champions
    row = registry.get_version(registry.db.get_engine(settings.database_url), first)
    path = settings.model_dir / row["artifact_path"]
    # A pickle that would run code if it were ever unpickled.
    path.write_bytes(b"cos\nsystem\n(S'touch /tmp/pwned-by-pickle'\ntR.")
    with pytest.raises(ModelError, match=rf"model {first} has sha256 .* but model_versions"):
        registry.load_verified_model(settings, first)
    assert not os.path.exists("/tmp/pwned-by-pickle")


def test_artifact_outside_model_dir_is_refused(settings, engine, two_champions, tmp_path):
    first, _ = two_champions
    with registry.db.transaction(engine) as conn:
        conn.execute(
            sa.text("UPDATE model_versions SET artifact_path = :p WHERE version = :v"),
            {"p": "../outside/model.pkl", "v": first},
        )
    with pytest.raises(ModelError, match="outside the model folder"):
        registry.load_verified_model(settings, first)


def test_pointer_errors(settings, engine):
    with pytest.raises(ModelError, match="no model has been published"):
        registry.load_verified_model(settings)
    (settings.model_dir / "current.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        registry.load_verified_model(settings)
    (settings.model_dir / "current.json").write_text(json.dumps({"version": "nope", "sha256": "0"}))
    with pytest.raises(ModelError, match="'nope' is not recorded"):
        registry.load_verified_model(settings)


def test_reconcile_repairs_a_pointer_left_behind_by_a_crash(settings, engine, two_champions):
    first, second = two_champions
    old = registry.get_version(engine, first)
    # Simulate a kill between the database commit and the pointer switch.
    registry.write_current_pointer(
        settings.model_dir,
        version=first,
        sha256=old["artifact_sha256"],
        artifact_path=old["artifact_path"],
    )
    assert registry.reconcile_pointer(settings) == "rewritten"
    pointer = registry.read_current_pointer(settings.model_dir)
    assert pointer["version"] == second
    assert registry.reconcile_pointer(settings) == "ok"
    # A training run does the same at its start.
    registry.write_current_pointer(
        settings.model_dir,
        version=first,
        sha256=old["artifact_sha256"],
        artifact_path=old["artifact_path"],
    )
    run_training_cycle(settings, panel=make_learnable_panel(coins=30, seed=1, sign=-1.0), **FAST)
    assert registry.read_current_pointer(settings.model_dir)["version"] == second


def test_no_temp_files_left_and_pointer_matches_file(settings, two_champions):
    pointer = registry.read_current_pointer(settings.model_dir)
    path = settings.model_dir / pointer["artifact_path"]
    assert registry.sha256_file(path) == pointer["sha256"]
    assert not [p for p in settings.model_dir.rglob("*.tmp")]


def test_rollback_to_previous_champion_and_back(settings, engine, two_champions):
    first, second = two_champions
    result = registry.rollback(settings)
    assert result["version"] == first and result["previous"] == second
    assert registry.get_champion(engine)["version"] == first
    assert registry.read_current_pointer(settings.model_dir)["version"] == first
    assert registry.load_verified_model(settings).version == first
    events = [(e["version"], e["event"]) for e in registry.list_events(engine)][:2]
    assert events == [(first, "rolled_back"), (second, "retired")]
    # Default again: the champion before the current one is now `second`.
    assert registry.rollback(settings)["version"] == second
    assert registry.rollback(settings, first)["version"] == first


def test_rollback_errors(settings, engine, two_champions):
    first, second = two_champions
    with pytest.raises(InputError, match="already the champion"):
        registry.rollback(settings, second)
    with pytest.raises(NotFound, match="'nope' does not exist"):
        registry.rollback(settings, "nope")
    rejected = run_training_cycle(
        settings, panel=make_learnable_panel(coins=30), promote=False, **FAST
    )["version"]
    with pytest.raises(InputError, match="was never champion"):
        registry.rollback(settings, rejected)
    # A corrupt artifact is refused and nothing changes.
    row = registry.get_version(engine, first)
    (settings.model_dir / row["artifact_path"]).write_bytes(b"garbage")
    with pytest.raises(ModelError):
        registry.rollback(settings, first)
    assert registry.get_champion(engine)["version"] == second


def test_rollback_without_history(settings, engine):
    with pytest.raises(NotFound, match="no earlier champion"):
        registry.rollback(settings)
