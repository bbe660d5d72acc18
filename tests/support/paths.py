"""Where things are: the repository checkout and the real market data beside it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The root of the repository checkout."""

SHARED_DATA = REPO.parent / "shared" / "data"
"""The real CoinGecko samples (``../shared/data``); never copied into the repository."""

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Small files the tests ship: a model pickled under an earlier layout of the package."""
