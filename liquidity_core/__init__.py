"""crypto-liquidity: forecast cryptocurrency liquidity and keep the forecast honest.

Every DAG task, CLI command and web route is a thin shell over a function in this
package. Modules, in the order data flows through them:

- ``settings``  -- the one place that reads the environment.
- ``errors``    -- the project's exception types (one line each, shown to users).
- ``db``        -- engines, transactions and the ``sql/`` migration runner.
- ``ingest``    -- package: ``formats`` (CSV format detection and row checks, three input
  formats), ``pipeline`` (loading files into ``market_snapshots`` exactly once, the
  ``ingest_files`` ledger), ``copy`` (COPY and upserts), ``files`` (moves afterwards).
- ``demo``      -- synthetic CoinGecko-format drops for demos, tests and benchmarks.
- ``model``     -- package: ``snapshots`` (the panel), ``features``, ``splits``, ``train``
  (the retraining cycle), ``registry`` (versions, the champion pointer), ``predict`` and
  ``serving`` (the web app's model cache), ``forecasts`` (stored forecasts of each new
  snapshot), ``monitoring`` (their realized accuracy, the alert) and ``drift`` (PSI).
- ``alerts``    -- the one alert hook (``notify``).
- ``report``    -- the EDA and model report (one HTML file).
- ``cli``       -- package: the ``liquidity`` command line (``python -m liquidity_core.cli``).

``make run``'s supervisor and the test/bench helpers live in the top-level ``devtools``.
"""

__version__ = "0.1.0"
