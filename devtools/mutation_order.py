"""pytest plugin for the mutation runs (``make mutation``): each mutant's tests, fastest first.

mutmut runs a mutant's tests with ``-x``, in no particular order, and stops at the first
failure. Running them by the durations mutmut measured in its clean run (cheap ones
first) makes a killed mutant stop sooner; a surviving one runs them all either way.
Outside a mutmut run (no durations) the order is left alone.
"""

from __future__ import annotations


def pytest_collection_modifyitems(items) -> None:
    try:
        from mutmut.state import state
    except ImportError:  # pragma: no cover - mutmut is a dev dependency
        return
    durations = state().duration_by_test
    if durations:
        items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
