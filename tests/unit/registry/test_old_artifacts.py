"""Models published under an earlier layout of the package still load and predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
from support.paths import DATA_DIR

from liquidity_core.learn.estimators import AnchoredPipeline
from liquidity_core.registry.artifacts import MOVED_MODULES, unpickle_model


def test_model_pickled_under_the_old_layout_loads_and_predicts_the_same():
    data = (DATA_DIR / "old_layout_model.pkl").read_bytes()
    assert b"liquidity_core.model.target" in data  # really written under the old path

    model = unpickle_model(data)

    assert isinstance(model, AnchoredPipeline)
    rows = pd.read_csv(DATA_DIR / "old_layout_rows.csv")
    expected = np.loadtxt(DATA_DIR / "old_layout_predictions.txt")
    np.testing.assert_allclose(model.predict(rows), expected, rtol=1e-12)


def test_every_old_path_names_a_module_that_exists():
    import importlib

    for new in MOVED_MODULES.values():
        importlib.import_module(new)
