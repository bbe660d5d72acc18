"""Benchmarks of ingest, retraining and serving, each beside a reference measured in the
same run.

``python -m bench`` (``make bench``) runs them and prints one line per figure::

    name: value unit (ratio vs reference)

and writes every figure to ``bench/results.json`` (``BENCH_RESULTS`` overrides the path).

Environment:

- ``BENCH_SCALE``: ``full`` (default, the sizes of the issue: a 1,000,000-row ingest,
  retraining at 300k/1M rows, 30 s of load), ``small`` (a few minutes), ``tiny``
  (seconds; the smoke test) or ``huge`` (only :mod:`bench.huge`: ``liquidity ingest``,
  ``train`` and ``report`` as processes on 1M/10M/50M-row panels; an hour or more, not
  in CI; ``BENCH_HUGE_SIZES=1m,10m`` picks sizes).
- ``BENCH_ONLY``: comma-separated areas among ``ingest,serving,skill,search,refit,loop,retrain``.
- ``BENCH_NAIVE``: ``measured`` or ``estimated``: how the naive retrain figure is had
  (default: measured at ``tiny`` scale, estimated from timed trees above it).
- ``BENCH_DATABASE_URL``: the PostgreSQL server to use (a schema of its own is created
  and dropped); default ``TEST_DATABASE_URL``, else
  ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``.

Each area is a module (:mod:`bench.ingest`, :mod:`bench.retrain`, :mod:`bench.serving`)
with ``run(scale, out)``; :mod:`bench.common` has the shared pieces.
"""

#: In the order they run: the longest last.
AREAS = ("ingest", "serving", "skill", "search", "refit", "loop", "retrain")


def expected_figures(scale_name: str, areas=AREAS) -> list[str]:
    """Names of the figures a run of ``areas`` at ``scale_name`` records."""
    import importlib

    from .common import get_scale

    scale = get_scale(scale_name)
    names: list[str] = []
    for area in areas:
        names += importlib.import_module(f"bench.{area}").figure_names(scale)
    return names
