"""A champion trained on demo drops through the real ingest and training paths."""

from __future__ import annotations

from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import write_demo_drops
from liquidity_core.training.cycle import run_training_cycle


def train_on_demo(settings, tmp_path, *, coins=30, snapshots=24, seed=5):
    """Ingest demo drops and train a champion on them (fast grid)."""
    drops = tmp_path / "drops"
    write_demo_drops(drops, coins=coins, snapshots=snapshots, seed=seed, start="2024-01-01")
    results = ingest_paths([drops], settings=settings)
    assert all(r.status == "loaded" for r in results)
    result = run_training_cycle(settings, grid="fast", candidates=False)
    assert result["promoted"], result["reason"]
    return result
