"""The panel's time axis: snapshot times as int64 UTC nanoseconds, coded 0 (oldest) on.

Features are computed on plain integer arrays; the times go back to pandas (in the unit
they came in) only in the frames :func:`liquidity_core.features.build.build_features` returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liquidity_core.errors import InputError

#: NaT as int64 nanoseconds.
NAT_NS = np.iinfo(np.int64).min


def time_codes(ts_ns: np.ndarray, times) -> tuple[np.ndarray, np.ndarray]:
    """Each row's code on the time axis (0 = oldest), and the axis as UTC nanoseconds."""
    if times is None:
        return pd.factorize(ts_ns, sort=True)
    axis = np.unique(ns_and_unit(np.asarray(times, dtype="datetime64[ns]"))[0])
    t_code = np.searchsorted(axis, ts_ns)
    off = (t_code >= len(axis)) | (axis[np.minimum(t_code, len(axis) - 1)] != ts_ns)
    if len(ts_ns) and off.any():
        when = pd.Timestamp(int(ts_ns[np.flatnonzero(off)[0]]), tz="UTC")
        raise InputError(f"snapshot_ts {when} of a panel row is not on the given time axis")
    return t_code, axis


def ns_and_unit(stamps) -> tuple[np.ndarray, str]:
    """Snapshot times as int64 UTC nanoseconds, and the time unit to give them back in."""
    if isinstance(stamps, np.ndarray) and stamps.dtype.kind == "M":
        return stamps.astype("datetime64[ns]").view(np.int64), "ns"
    if not (isinstance(stamps.dtype, pd.DatetimeTZDtype) and str(stamps.dtype.tz) == "UTC"):
        stamps = pd.to_datetime(stamps, utc=True)
    index = pd.DatetimeIndex(stamps)
    return index.as_unit("ns").asi8, index.unit


def utc_times(ns: np.ndarray, unit: str) -> pd.DatetimeIndex:
    """UTC times (``unit``) from int64 nanoseconds (NaT where ``NAT_NS``)."""
    return pd.DatetimeIndex(ns.view("datetime64[ns]"), tz="UTC").as_unit(unit)
