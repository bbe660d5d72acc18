"""Development tools: not part of the runtime package (the Docker image does not ship them).

- ``local_stack`` -- ``make run``'s supervisor (``python -m devtools.local_stack``).
- ``airflow_env`` -- the environment of an Airflow process serving this repo's DAGs
  (used by ``make run``, the tests and the benchmarks).
- ``scratch_schema`` -- a throwaway PostgreSQL schema for tests and benchmarks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from liquidity_core.settings import PROJECT_ROOT, Settings
from liquidity_core.store.db import dispose_probe_engine, get_engine, schema_url

__all__ = ["airflow_env", "scratch_schema"]


def airflow_env(home: Path, settings: Settings | None = None, **overrides: str) -> dict[str, str]:
    """Environment for an Airflow process with its own ``home`` serving this repo's DAGs.

    The caller's ``AIRFLOW_*`` and ``LIQUIDITY_*`` variables are left out, so nothing from
    the shell leaks in; Airflow gets its home, this repo's ``dags/`` and ``plugins/``, a
    SQLite metadata database and logs under ``home``, no examples, then ``settings``
    (as ``LIQUIDITY_*`` variables) and ``overrides``. Used by ``make run``, the tests and
    the benchmarks alike.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIQUIDITY_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(PROJECT_ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
    )
    if settings is not None:
        env.update(settings.as_env())
    env.update(overrides)
    return env


@contextmanager
def scratch_schema(base: str, prefix: str = "scratch") -> Iterator[tuple[str, str]]:
    """A new, empty PostgreSQL schema on the server of ``base``, dropped afterwards.

    Yields ``(url, schema)``, ``url`` being ``base`` pointed at the schema. The tests and
    the benchmarks each work in one, so they never touch each other's tables.
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(schema))  # SQLAlchemy quotes the name
    url = schema_url(base, schema)
    try:
        yield url, schema
    finally:
        get_engine(url).dispose()
        get_engine.cache_clear()
        dispose_probe_engine(url)
        with admin.begin() as conn:
            conn.execute(sa.schema.DropSchema(schema, cascade=True))
        admin.dispose()
