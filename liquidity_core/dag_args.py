"""What the DAG files share: their tasks' retry policy (light: imported at parse time)."""

from __future__ import annotations

from datetime import timedelta


def retry_policy(retries: int, *, first: timedelta, most: timedelta) -> dict:
    """``default_args`` for a DAG: ``retries`` retries, the first after ``first``, each
    wait twice the one before, at most ``most``."""
    return {
        "retries": retries,
        "retry_delay": first,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": most,
    }
