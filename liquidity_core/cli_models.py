"""``liquidity`` commands for models: train, models, rollback, predict, report.

Kept apart from ``cli.py`` so the ingestion and model sides grow without touching each
other; importing this module registers the commands.
"""
