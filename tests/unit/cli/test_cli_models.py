import json

import pytest

from liquidity_core.cli import ExitCode, main
from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import write_demo_drops
from liquidity_core.store import db
from liquidity_core.store.snapshots import load_snapshots


@pytest.fixture
def cli_env(settings, engine, monkeypatch):
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    return settings


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_models_predict_rollback(cli_env, tmp_path, capsys):
    write_demo_drops(tmp_path / "drops", coins=30, snapshots=24, seed=5, start="2024-01-01")
    ingest_paths([tmp_path / "drops"], settings=cli_env)

    code, out, err = run(capsys, "train", "--json", "--grid", "fast", "--no-candidates")
    assert code == 0, err
    first = json.loads(out)
    assert {
        "version",
        "promoted",
        "holdout_r2",
        "champion_holdout_r2",
        "persistence_r2",
        "holdout_skill",
        "snapshots_beating_persistence",
        "reason",
    } <= set(first)
    assert first["promoted"] is True and first["champion_holdout_r2"] is None
    assert 0.0 <= first["snapshots_beating_persistence"] <= 1.0

    code, out, err = run(
        capsys, "train", "--json", "--no-promote", "--grid", "fast", "--no-candidates"
    )
    second = json.loads(out)
    assert code == 0 and second["promoted"] is False
    assert second["champion_holdout_r2"] is not None
    assert "promotion disabled" in second["reason"]

    code, out, _ = run(capsys, "models", "--json")
    models = json.loads(out)
    assert [v["version"] for v in models["versions"]] == [second["version"], first["version"]]
    assert models["current"]["version"] == first["version"]
    code, out, _ = run(capsys, "models")
    assert first["version"] in out and "champion" in out

    symbol = load_snapshots(db.get_engine(cli_env.database_url))["symbol"].iloc[-1]
    code, out, err = run(capsys, "predict", "--symbol", symbol, "--json")
    assert code == 0, err
    one = json.loads(out)
    assert one["model_version"] == first["version"] and one["liquidity_level"]

    rows = tmp_path / "rows.json"
    rows.write_text(
        json.dumps(
            [
                {"price": 2, "24h_volume": 1e6, "mkt_cap": 1e8},
                {"Price": "$3", "Volume (24h)": "10", "Market Cap": "$1,000"},
            ]
        )
    )
    code, out, err = run(capsys, "predict", "--input", str(rows), "--json")
    assert code == 0, err
    assert len(json.loads(out)["predictions"]) == 2

    rows.write_text(json.dumps({"price": "abc", "24h_volume": 1, "mkt_cap": 1}))
    code, out, err = run(capsys, "predict", "--input", str(rows))
    assert code == ExitCode.INPUT_REJECTED == 3 and out == ""
    assert "price" in err and "row 0" in err

    code, out, err = run(capsys, "rollback")
    assert code == ExitCode.INPUT_REJECTED == 3 and "no earlier champion" in err


def test_train_on_the_two_real_samples_says_not_enough_data(cli_env, sample_files, capsys):
    ingest_paths(sample_files, settings=cli_env)
    code, out, err = run(capsys, "train")
    assert code == ExitCode.FAILURE == 1 and out == ""
    assert "2 snapshots" in err and "needs at least" in err, err
    # With --json the error is the JSON object on stdout, and stderr stays empty.
    code, out, err = run(capsys, "train", "--json")
    error = json.loads(out)
    assert code == 1 and err == "" and error["exit_code"] == 1
    assert error["error"] == "failure" and "2 snapshots" in error["message"]
    code, out, _ = run(capsys, "models", "--json")
    assert json.loads(out)["versions"] == []
