"""crypto-liquidity: forecast cryptocurrency liquidity and keep the forecast honest.

Every DAG task, CLI command and web route is a thin shell over a function in this
package. Modules, in the order data flows through them:

- ``settings``  -- the one place that reads the environment.
- ``errors``    -- the project's exception types (one line each, shown to users).
- ``schema``    -- the tables, declared once (SQLAlchemy Core); column lists derive from it.
- ``db``        -- engines, transactions, the storage-error classifier, the ``sql/``
  migration runner.
- ``ingest``    -- package, by step: ``pipeline`` (entry points), ``formats``, ``reader``,
  ``checks``, ``records``, ``ledger``, ``copy``, ``files`` (see its docstring).
- ``identity``  -- one coin through renames (``coin_aliases``).
- ``demo``      -- synthetic CoinGecko-format drops for demos, tests and benchmarks.
- ``model``     -- package: the panel and features, one module per training stage
  (``data``, ``challenger``, ``compare``, ``publish``, run by ``train``), the registry,
  ``predict`` and ``serving`` (see its docstring).
- ``history_view`` -- the model-history table; ``report`` -- the EDA and model report.
- ``dag_args``  -- what the DAG files share (their retry policy).
- ``cli``       -- package: the ``liquidity`` command line (``python -m liquidity_core.cli``).

``make run``'s supervisor and the test/bench helpers live in the top-level ``devtools``.
"""

__version__ = "0.1.0"
