"""Helpers shared by the tests (and the benchmarks in ``bench/``).

- :mod:`support.paths`: the repository and the shared market data folder;
- :mod:`support.net`: a free TCP port;
- :mod:`support.env`: the ``LIQUIDITY_*`` environment, and ``Settings``, for a test folder;
- :mod:`support.database`: a fresh database on SQLite or PostgreSQL.

Inside ``tests/`` import them as ``support.<module>`` (pytest puts ``tests/`` on ``sys.path``);
``bench/`` imports them as ``tests.support.<module>`` from the repository root. The modules
import nothing from ``conftest`` so that both work.
"""
